// Command activityprice measures what one activity costs the local stack's
// Temporal server, started eagerly and through the task queue: a workflow
// runs -activities activities that do nothing, one after another, on a task
// queue of its own, and the server's CPU time over the workflow (from
// /proc, the stack's pid file) is divided by them. Rounds alternate the
// two ways, and which goes first. docs/performance.md has its figures.
//
//	eval "$(bin/stackctl env)"
//	go run ./deploy/local/activityprice -activities 300 -rounds 4
//
// An activity goes through the queue when its options ask for that
// (DisableEagerExecution) or when the server does not start activities
// eagerly (system.enableActivityEagerExecution, on in the stack's dev
// server); against a server without it, both ways measure the queue. The
// server's own background work counts too: run it on an otherwise idle
// stack and compare rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/procfs"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/flowproof/flowproof/internal/localstack"
)

func main() {
	activities := flag.Int("activities", 300, "activities per workflow")
	rounds := flag.Int("rounds", 4, "rounds, each one workflow of each way")
	flag.Parse()
	if err := run(*activities, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "activityprice:", err)
		os.Exit(1)
	}
}

// sequence runs n activities that do nothing, one after another.
func sequence(ctx workflow.Context, n int, throughQueue bool) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second, DisableEagerExecution: throughQueue,
	})
	for range n {
		if err := workflow.ExecuteActivity(ctx, "Nothing").Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

func run(activities, rounds int) error {
	server, err := temporalProcess()
	if err != nil {
		return err
	}
	addrs := localstack.FromEnv()
	c, err := client.Dial(client.Options{HostPort: addrs.TemporalAddress, Namespace: addrs.TemporalNamespace,
		Logger: tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	if err != nil {
		return err
	}
	defer c.Close()
	taskQueue := fmt.Sprintf("activityprice_%d", time.Now().UnixNano())
	w := worker.New(c, taskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(sequence, workflow.RegisterOptions{Name: "ActivitySequence"})
	w.RegisterActivityWithOptions(func(context.Context) error { return nil }, activity.RegisterOptions{Name: "Nothing"})
	if err := w.Start(); err != nil {
		return err
	}
	defer w.Stop()

	fmt.Printf("the Temporal server's CPU per activity, %d activities in a row per workflow\n", activities)
	for round := 1; round <= rounds; round++ {
		order := []bool{false, true}
		if round%2 == 0 {
			order = []bool{true, false}
		}
		for _, throughQueue := range order {
			before, err := server.Stat()
			if err != nil {
				return err
			}
			started := time.Now()
			wf, err := c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: taskQueue},
				"ActivitySequence", activities, throughQueue)
			if err != nil {
				return err
			}
			if err := wf.Get(context.Background(), nil); err != nil {
				return fmt.Errorf("workflow %s: %w", wf.GetID(), err)
			}
			took := time.Since(started)
			after, err := server.Stat()
			if err != nil {
				return err
			}
			cpu := after.CPUTime() - before.CPUTime()
			way := "eagerly      "
			if throughQueue {
				way = "through queue"
			}
			fmt.Printf("round %d, %s: %5.1f ms of server CPU and %5.1f ms of time per activity (%.2f CPU s in %s)\n",
				round, way, cpu*1000/float64(activities), took.Seconds()*1000/float64(activities), cpu, took.Round(time.Millisecond))
		}
	}
	return nil
}

// temporalProcess is the stack's Temporal server, from its pid file.
func temporalProcess() (procfs.Proc, error) {
	procs, err := localstack.StackProcs("temporal")
	if err != nil {
		return procfs.Proc{}, err
	}
	return procs[0], nil
}
