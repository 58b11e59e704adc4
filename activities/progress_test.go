package activities

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
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
