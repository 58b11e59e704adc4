//go:build integration

package main

import (
	"testing"
)

// TestLiveStackListensOnLoopbackOnly reads (never changes) the sockets of
// every running process of the local stack.
func TestLiveStackListensOnLoopbackOnly(t *testing.T) {
	s, err := newStack()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range append(coreComponents(s), optionalComponents()...) {
		names = append(names, c.processes(s)...)
	}
	seen := 0
	for _, name := range names {
		pid, ok := s.running(name)
		if !ok {
			continue
		}
		listeners, err := processListeners(name, pid)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, l := range listeners {
			t.Logf("%s", l)
		}
		seen += len(listeners)
	}
	if seen == 0 {
		t.Fatal("no listeners found: is the stack up (bin/stackctl status)?")
	}
	for _, l := range s.exposedListeners(names) {
		t.Errorf("listens beyond loopback: %s", l)
	}
}
