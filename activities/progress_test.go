package activities

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/log"
)

func TestHeartbeatEveryBeatsUntilStopped(t *testing.T) {
	var beats atomic.Int32
	rep := Reporter{Heartbeat: func(details any) {
		if details != "progress" {
			t.Errorf("details = %v", details)
		}
		beats.Add(1)
	}}
	stop := rep.HeartbeatEvery(context.Background(), func() any { return "progress" })
	time.Sleep(heartbeatInterval + 200*time.Millisecond)
	stop()
	got := beats.Load()
	if got < 1 {
		t.Fatalf("%d heartbeats after more than one interval", got)
	}
	time.Sleep(heartbeatInterval + 200*time.Millisecond)
	if beats.Load() != got {
		t.Fatal("a heartbeat after stop")
	}
}

func TestHeartbeatEveryWithoutHeartbeatDoesNothing(t *testing.T) {
	stop := Reporter{}.HeartbeatEvery(context.Background(), func() any {
		t.Error("details read without a heartbeat")
		return nil
	})
	stop()
}

// warnings keeps the warnings logged to it.
type warnings struct {
	log.Logger
	mu    sync.Mutex
	lines []string
}

func (w *warnings) Warn(msg string, keyvals ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprint(append([]any{msg}, keyvals...)...))
}

func (w *warnings) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.lines...)
}

func TestWarnIfSlowDumpsTheGoroutinesOfAStepThatHangs(t *testing.T) {
	logged := &warnings{}
	rep := Reporter{Log: logged}
	done := rep.WarnIfSlow("closing", 20*time.Millisecond)
	time.Sleep(200 * time.Millisecond)
	done()
	lines := logged.all()
	if len(lines) != 2 || !strings.Contains(lines[0], "closing is taking long") ||
		!strings.Contains(lines[0], "TestWarnIfSlowDumpsTheGoroutinesOfAStepThatHangs") || !strings.Contains(lines[1], "closing was slow") {
		t.Fatalf("logged %q; want the goroutines, this test's among them, then the time taken", lines)
	}

	quick := &warnings{}
	Reporter{Log: quick}.WarnIfSlow("closing", time.Minute)()
	if lines := quick.all(); len(lines) != 0 {
		t.Fatalf("a quick step logged %q", lines)
	}
}
