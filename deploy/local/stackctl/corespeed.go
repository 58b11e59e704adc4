package main

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
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
	return sha256CPU(make([]byte, fixedTaskBytes), fixedTaskRounds)
}

// sha256CPU is the median of n timings of the fixed task over data
// (fixedTaskBytes long), which a sampler allocates once.
func sha256CPU(data []byte, n int) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	took := make([]time.Duration, 0, n)
	for range n {
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

// The memory chase follows chaseSteps links of a random cycle through
// chaseBytes of memory, far more than the caches hold: each step waits for
// memory. SHA-256 streams its data, which the prefetcher fetches ahead, so
// it misses what slows the stack's JVMs and Go servers when a neighbour
// fills the shared cache or the memory bus; the chase does not.
const (
	chaseBytes = 64 << 20
	chaseSteps = 1 << 17
)

// memoryChase holds the cycle: next[i] is the entry after i.
type memoryChase struct{ next []uint32 }

// newMemoryChase builds one cycle through every entry with Sattolo's
// shuffle, from a fixed seed so that every run chases the same path. It
// costs a few hundred ms of CPU, once.
func newMemoryChase() *memoryChase {
	next := make([]uint32, chaseBytes/4)
	for i := range next {
		next[i] = uint32(i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := len(next) - 1; i > 0; i-- {
		j := r.IntN(i)
		next[i], next[j] = next[j], next[i]
	}
	return &memoryChase{next: next}
}

// cpu is the CPU time one core takes for chaseSteps steps.
func (c *memoryChase) cpu() (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, err := threadCPU()
	if err != nil {
		return 0, err
	}
	i := uint32(0)
	for range chaseSteps {
		i = c.next[i]
	}
	end, err := threadCPU()
	if err != nil {
		return 0, err
	}
	runtime.KeepAlive(i) // the chase's end is its only result
	return end - start, nil
}

func threadCPU() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, fmt.Errorf("read this thread's CPU clock: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}
