package main

import (
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/flowproof/flowproof/internal/localstack"
)

// cpuMeter reads the CPU time spent by the stack's Kafka brokers and by the
// producing client of a side: this process for flowproof's sides, the tool's
// JVM (a waited-for child, its start and JIT included) for Kafka's. On two
// shared cores a producer's rate is bounded by the CPU each record costs, so
// these figures say where a side's time goes, which rates alone cannot.
type cpuMeter struct {
	brokers []procfs.Proc
	// brokersIdle is the brokers' CPU per second of wall time with no
	// producer running (replica fetchers, the controller's heartbeats),
	// taken off every side in proportion to its length.
	brokersIdle float64
}

// cpuReading is one reading of the meter.
type cpuReading struct {
	at       time.Time
	brokers  time.Duration
	self     time.Duration
	children time.Duration
}

// cpuSpent is the CPU a side used.
type cpuSpent struct {
	// brokers is net of their idle use over the same time.
	brokers time.Duration
	client  time.Duration
}

// The brokers' idle use is the lowest of idleWindows windows of
// idleWindow: brokers that were just started, or that still remove the
// topics of an earlier run, spend hundreds of ms a second for a while, and
// one such window taken as idle would be taken off every side.
const (
	idleWindow  = time.Second
	idleWindows = 4
)

// newCPUMeter finds the brokers from the stack's pid files and measures
// their idle use.
func newCPUMeter() (*cpuMeter, error) {
	brokers, err := localstack.StackProcs("kafka-*")
	if err != nil {
		return nil, fmt.Errorf("kafka brokers' CPU: %w", err)
	}
	m := &cpuMeter{brokers: brokers}
	first, err := m.read()
	if err != nil {
		return nil, err
	}
	readings := []cpuReading{first}
	for range idleWindows {
		time.Sleep(idleWindow)
		r, err := m.read()
		if err != nil {
			return nil, err
		}
		readings = append(readings, r)
	}
	m.brokersIdle = lowestBrokerUse(readings)
	return m, nil
}

// lowestBrokerUse is the brokers' lowest CPU per second of wall time between
// consecutive readings.
func lowestBrokerUse(readings []cpuReading) float64 {
	lowest := math.Inf(1)
	for i := 1; i < len(readings); i++ {
		wall := readings[i].at.Sub(readings[i-1].at)
		if wall <= 0 {
			continue
		}
		lowest = min(lowest, float64(readings[i].brokers-readings[i-1].brokers)/float64(wall))
	}
	if math.IsInf(lowest, 1) {
		return 0
	}
	return lowest
}

func (m *cpuMeter) read() (cpuReading, error) {
	brokers, err := localstack.CPUSeconds(m.brokers)
	if err != nil {
		return cpuReading{}, fmt.Errorf("kafka brokers' CPU: %w", err)
	}
	r := cpuReading{at: time.Now(), brokers: time.Duration(brokers * float64(time.Second))}
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		return cpuReading{}, fmt.Errorf("getrusage: %w", err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		return cpuReading{}, fmt.Errorf("getrusage: %w", err)
	}
	r.self = rusageCPU(self)
	r.children = rusageCPU(children)
	return r, nil
}

// since is the CPU spent from start to now, the client's being this
// process's (inProcess) or its children's.
func (m *cpuMeter) since(start cpuReading, inProcess bool) (cpuSpent, error) {
	end, err := m.read()
	if err != nil {
		return cpuSpent{}, err
	}
	idle := time.Duration(m.brokersIdle * float64(end.at.Sub(start.at)))
	spent := cpuSpent{brokers: max(0, end.brokers-start.brokers-idle), client: end.children - start.children}
	if inProcess {
		spent.client = end.self - start.self
	}
	return spent, nil
}

func rusageCPU(u syscall.Rusage) time.Duration {
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
