package kafkaeos

import (
	"context"
	"fmt"
	"time"
)

// stablePollEvery is how often WaitStable asks for the offsets again.
const stablePollEvery = 100 * time.Millisecond

// WaitStable waits until every partition's last stable offset of topic has
// reached the high watermark the partition has when WaitStable is called.
// Every transaction that had written to topic by then has committed or
// aborted afterwards, so a read_committed reader (NewCommittedReader) sees
// everything committed before the call, also records that sit behind a
// transaction left open by another producer. Transactions begun later do
// not hold it up. It gives up after timeout, which should be the longest
// transaction timeout of topic's producers: the broker aborts an expired
// transaction by then.
func WaitStable(ctx context.Context, conn *Conn, topic string, timeout time.Duration) error {
	ends, err := conn.Admin.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("high watermarks of %s: %w", topic, err)
	}
	deadline := time.Now().Add(timeout)
	for {
		stable, err := conn.Admin.ListCommittedOffsets(ctx, topic)
		if err == nil {
			err = stable.Error()
		}
		var behind []string
		if err == nil {
			for _, end := range ends[topic] {
				if got, ok := stable.Lookup(topic, end.Partition); !ok || got.Offset < end.Offset {
					behind = append(behind, fmt.Sprintf("partition %d: last stable offset %d, high watermark %d", end.Partition, got.Offset, end.Offset))
				}
			}
			if len(behind) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("%s not stable after %s: %w", topic, timeout, err)
			}
			return fmt.Errorf("%s not stable after %s (a transaction still open): %v", topic, timeout, behind)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(stablePollEvery):
		}
	}
}
