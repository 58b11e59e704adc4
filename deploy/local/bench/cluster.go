package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// cluster creates the benchmark's topics and remembers every topic and
// consumer group the run created, so deleteAll can remove them whatever
// step failed.
type cluster struct {
	client *kgo.Client
	admin  *kadm.Client

	mu     sync.Mutex
	topics []string
	groups []string
}

func newCluster(brokers []string) (*cluster, error) {
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return &cluster{client: client, admin: kadm.NewClient(client)}, nil
}

func (c *cluster) close() { c.client.Close() }

// track records topics created by someone else (PrepareTopics, Kafka's
// tools) for deletion.
func (c *cluster) track(topics ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range topics {
		if t != "" && !slices.Contains(c.topics, t) {
			c.topics = append(c.topics, t)
		}
	}
}

func (c *cluster) trackGroup(group string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.groups = append(c.groups, group)
}

// createTopic creates topic with replication factor 3, like a run's topics,
// and waits until its partitions have leaders.
func (c *cluster) createTopic(ctx context.Context, topic string, partitions int) error {
	c.track(topic)
	resp, err := c.admin.CreateTopic(ctx, int32(partitions), 3, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", topic, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		details, err := c.admin.ListTopics(ctx, topic)
		if err == nil {
			if d, ok := details[topic]; ok && d.Err == nil && len(d.Partitions) == partitions && d.Partitions.NumReplicas() == 3 && allLed(d) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s: partitions without leaders after 30s", topic)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func allLed(d kadm.TopicDetail) bool {
	for _, p := range d.Partitions {
		if p.Leader < 0 || p.Err != nil {
			return false
		}
	}
	return true
}

// deleteTopics deletes topics now (and forgets them); a topic already gone
// is fine.
func (c *cluster) deleteTopics(ctx context.Context, topics ...string) error {
	if len(topics) == 0 {
		return nil
	}
	resp, err := c.admin.DeleteTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("delete topics %v: %w", topics, err)
	}
	var errs []error
	for _, r := range resp.Sorted() {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("delete topic %s: %w", r.Topic, r.Err))
		}
	}
	c.mu.Lock()
	c.topics = slices.DeleteFunc(c.topics, func(t string) bool { return slices.Contains(topics, t) })
	c.mu.Unlock()
	return errors.Join(errs...)
}

// deleteAll deletes every topic and group the run created and has not
// deleted yet.
func (c *cluster) deleteAll(ctx context.Context) error {
	c.mu.Lock()
	topics, groups := slices.Clone(c.topics), slices.Clone(c.groups)
	c.groups = nil
	c.mu.Unlock()
	var errs []error
	if len(groups) > 0 {
		resp, err := c.admin.DeleteGroups(ctx, groups...)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete groups %v: %w", groups, err))
		}
		for _, r := range resp.Sorted() {
			if r.Err != nil && !errors.Is(r.Err, kerr.GroupIDNotFound) {
				errs = append(errs, fmt.Errorf("delete group %s: %w", r.Group, r.Err))
			}
		}
	}
	if err := c.deleteTopics(ctx, topics...); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 && (len(topics) > 0 || len(groups) > 0) {
		fmt.Printf("cleanup: deleted %d topics and %d consumer groups\n", len(topics), len(groups))
	}
	return errors.Join(errs...)
}

// otherWork describes what else uses the stack: topics that are not this
// run's, and Flink jobs running. The figures of a run that shared the stack
// with a pipeline run or a test are not comparable with a quiet one, and
// the summary says so.
func otherWork(ctx context.Context, c *cluster, flinkURL, runID string) string {
	var parts []string
	topics, err := c.admin.ListTopics(ctx)
	if err != nil {
		parts = append(parts, fmt.Sprintf("topics unknown (%v)", err))
	} else {
		others, partitions := 0, 0
		for name, detail := range topics {
			if !strings.Contains(name, runID) {
				others++
				partitions += len(detail.Partitions)
			}
		}
		parts = append(parts, fmt.Sprintf("%d other topics (%d partitions)", others, partitions))
	}
	if jobs, err := runningFlinkJobs(ctx, flinkURL); err == nil {
		parts = append(parts, fmt.Sprintf("%d Flink jobs running", jobs))
	} else {
		parts = append(parts, "Flink not answering")
	}
	return strings.Join(parts, ", ")
}

func runningFlinkJobs(ctx context.Context, flinkURL string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, flinkURL+"/jobs/overview", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var overview struct {
		Jobs []struct {
			State string `json:"state"`
		} `json:"jobs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&overview); err != nil {
		return 0, err
	}
	running := 0
	for _, j := range overview.Jobs {
		if j.State == "RUNNING" {
			running++
		}
	}
	return running, nil
}
