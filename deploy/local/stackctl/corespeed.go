package main

import (
	"crypto/sha256"
	"fmt"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// The fixed task: SHA-256 of fixedTaskBytes, repeated fixedTaskRounds times,
// about 10 ms a round on this machine's cores.
const (
	fixedTaskBytes  = 16 << 20
	fixedTaskRounds = 5
)

// fixedTaskCPU is the median CPU time one core takes for the fixed task,
// read from this thread's own CPU clock, so waiting for a core does not
// count. On a shared virtual machine a core can be slower for minutes (a
// busy neighbour on its sibling hyperthread, a host under load) without
// any steal time; the same task at both ends of a run says whether the
// cores ran at the same speed. Taking it costs about 50 ms of one core.
func fixedTaskCPU() (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	data := make([]byte, fixedTaskBytes)
	took := make([]time.Duration, 0, fixedTaskRounds)
	for range fixedTaskRounds {
		start, err := threadCPU()
		if err != nil {
			return 0, err
		}
		sha256.Sum256(data)
		end, err := threadCPU()
		if err != nil {
			return 0, err
		}
		took = append(took, end-start)
	}
	slices.Sort(took)
	return took[len(took)/2], nil
}

func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("read this thread's CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
