package main

import (
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/flowproof/flowproof/activities/wiring"
	"github.com/flowproof/flowproof/workflows"
)

// TestRegisterAcceptsEveryWorkflowAndActivity registers on a real SDK worker
// (its client is lazy and never dials): the SDK panics on a workflow or
// activity whose signature it cannot serve, which would otherwise first
// show when the worker binary starts.
func TestRegisterAcceptsEveryWorkflowAndActivity(t *testing.T) {
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := worker.New(c, "register-test", worker.Options{})
	workflows.Register(w, &wiring.Activities{})
}
