package main

import (
	"net"
	"os"
	"testing"
)

func TestExposedListenersFindsAWildcardListener(t *testing.T) {
	s := testStack(t)
	wildcard, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = wildcard.Close() }()
	loopback, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = loopback.Close() }()
	// This test's own process stands in for a process of the stack.
	if err := writePidFile(s.pidFile("probe"), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	exposed := s.exposedListeners([]string{"probe"})
	wildPort := wildcard.Addr().(*net.TCPAddr).Port
	if len(exposed) != 1 || exposed[0].port != uint64(wildPort) {
		t.Fatalf("exposed listeners %v, want only the wildcard one on port %d", exposed, wildPort)
	}
	if !listensOn(os.Getpid(), loopback.Addr().(*net.TCPAddr).Port) {
		t.Error("listensOn misses the loopback listener")
	}
}
