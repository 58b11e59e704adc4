package drills

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/flinksql"
	"github.com/flowproof/flowproof/internal/drillapi"
	"github.com/flowproof/flowproof/internal/errtype"
)

// Process names of the stack (deploy/local/stackctl): Kafka node N runs as
// kafka-N, and a TaskManager's resource id is its process name.
const (
	kafkaProcessPrefix       = "kafka-"
	taskManagerProcessPrefix = "flink-taskmanager-"
)

// isrWaitTimeout bounds the wait for a restarted broker to be back in
// every ISR of the run's raw topic.
const isrWaitTimeout = 3 * time.Minute

func noTarget(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errtype.NoFaultTarget, nil)
}

// pickBroker picks the broker leading most partitions of the run's raw
// topic (the lowest node id among equals).
func pickBroker(ctx context.Context, f *Faults, req drillapi.FaultRequest) (injection, error) {
	topic := runNames(req).RawTopic
	leaders, total, err := partitionLeaders(ctx, f.Kafka, topic)
	if err != nil {
		return injection{}, err
	}
	node := mostLeading(leaders)
	process := kafkaProcessPrefix + strconv.Itoa(int(node))
	return injection{
		Target:    fmt.Sprintf("%s (leader of %d of %d partitions of %s)", process, leaders[node], total, topic),
		Process:   process,
		Component: "kafka",
	}, nil
}

// partitionLeaders counts the partitions of topic each broker leads.
func partitionLeaders(ctx context.Context, adm *kadm.Client, topic string) (map[int32]int, int, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, 0, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	detail, ok := details[topic]
	if !ok || errors.Is(detail.Err, kerr.UnknownTopicOrPartition) {
		return nil, 0, noTarget("the run's raw topic %s does not exist", topic)
	}
	if detail.Err != nil {
		return nil, 0, fmt.Errorf("metadata of %s: %w", topic, detail.Err)
	}
	leaders := map[int32]int{}
	for _, p := range detail.Partitions {
		if p.Leader >= 0 {
			leaders[p.Leader]++
		}
	}
	if len(leaders) == 0 {
		return nil, 0, fmt.Errorf("no partition of %s has a leader", topic)
	}
	return leaders, len(detail.Partitions), nil
}

// mostLeading is the key with the highest count, the lowest key among equals.
func mostLeading[K int32 | string](counts map[K]int) K {
	keys := slices.Sorted(maps.Keys(counts))
	best := keys[0]
	for _, k := range keys[1:] {
		if counts[k] > counts[best] {
			best = k
		}
	}
	return best
}

// restartBroker starts the killed broker, waits until it is back in every
// ISR of the cluster (internal topics included: transactions and offsets
// live there) and hands it back the leadership of its preferred
// partitions, so that the cluster is whole again and a later drill finds
// the leaders where they were. The whole cluster, not the run's topics: a
// run that ended during the hold has deleted them.
func restartBroker(ctx context.Context, f *Faults, req drillapi.FaultRequest, inj *injection) error {
	if err := restart(ctx, f, req, inj); err != nil {
		return err
	}
	began := time.Now()
	if err := waitFullISR(ctx, f.Kafka, *inj); err != nil {
		return err
	}
	inj.Detail += fmt.Sprintf("; every replica in sync %s later", time.Since(began).Round(time.Millisecond))
	// No partitions named: every partition of the cluster.
	results, err := f.Kafka.ElectLeaders(ctx, kadm.ElectPreferredReplica, nil)
	if err != nil {
		return fmt.Errorf("elect preferred leaders: %w", err)
	}
	for topic, partitions := range results {
		for _, r := range partitions {
			if r.Err != nil && !errors.Is(r.Err, kerr.ElectionNotNeeded) && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("elect preferred leader of %s partition %d: %w %s", topic, r.Partition, r.Err, r.ErrMessage)
			}
		}
	}
	return nil
}

// waitFullISR waits until every partition of the cluster has all its
// replicas in sync. Topics deleted meanwhile don't count.
func waitFullISR(ctx context.Context, adm *kadm.Client, inj injection) error {
	deadline := time.Now().Add(isrWaitTimeout)
	for {
		details, err := adm.ListTopicsWithInternal(ctx)
		lagging := 0
		for _, topic := range details {
			if topic.Err != nil {
				if !errors.Is(topic.Err, kerr.UnknownTopicOrPartition) && err == nil {
					err = fmt.Errorf("%s: %w", topic.Topic, topic.Err)
				}
				continue
			}
			for _, p := range topic.Partitions {
				if len(p.ISR) < len(p.Replicas) {
					lagging++
				}
			}
		}
		if err == nil && lagging == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d partitions still under-replicated %s after the restart (metadata error: %w)", lagging, isrWaitTimeout, err)
		}
		activity.RecordHeartbeat(ctx, inj)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// pickTaskManager picks the TaskManager running most subtasks of the run's
// Flink jobs.
func pickTaskManager(ctx context.Context, f *Faults, req drillapi.FaultRequest) (injection, error) {
	jobs := activities.FlinkJobsOf(runNames(req))
	names := []string{jobs.EnrichJobName, jobs.SplitJobName}
	summaries, err := f.Flink.Jobs(ctx)
	if err != nil {
		return injection{}, err
	}
	subtasks := map[string]int{}
	var running []string
	for _, job := range summaries {
		if !slices.Contains(names, job.Name) || job.State.Terminal() {
			continue
		}
		running = append(running, job.Name)
		if err := countSubtasks(ctx, f.Flink, job.ID, subtasks); err != nil {
			return injection{}, err
		}
	}
	if len(subtasks) == 0 {
		return injection{}, noTarget("no TaskManager runs a task of run %s: running jobs of the run %v, looked for %v", req.RunID, running, names)
	}
	tm := mostLeading(subtasks)
	if !strings.HasPrefix(tm, taskManagerProcessPrefix) {
		return injection{}, noTarget("TaskManager %q runs run %s's tasks but is no process of the local stack (%sN)", tm, req.RunID, taskManagerProcessPrefix)
	}
	total := 0
	for _, n := range subtasks {
		total += n
	}
	return injection{
		Target:    fmt.Sprintf("%s (%d of %d running subtasks of %s)", tm, subtasks[tm], total, strings.Join(running, ", ")),
		Process:   tm,
		Component: "flink",
	}, nil
}

// countSubtasks adds the job's deployed subtasks per TaskManager to counts.
func countSubtasks(ctx context.Context, jm *flinksql.JobManager, jobID string, counts map[string]int) error {
	job, err := jm.Job(ctx, jobID)
	if err != nil {
		return err
	}
	for _, v := range job.Vertices {
		subtasks, err := jm.Subtasks(ctx, jobID, v.ID)
		if err != nil {
			return err
		}
		for _, st := range subtasks {
			if st.TaskManagerID != "" && (st.Status == "RUNNING" || st.Status == "INITIALIZING" || st.Status == "DEPLOYING") {
				counts[st.TaskManagerID]++
			}
		}
	}
	return nil
}

// runNames are the names of the run req aims at.
func runNames(req drillapi.FaultRequest) activities.RunNames {
	if req.Names.RunID != "" {
		return req.Names
	}
	return activities.RunNamesOf(req.RunID)
}
