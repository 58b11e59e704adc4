package kafkaadmin

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// batch is a record batch of records records from baseOffset, as a broker
// stores it, with the header fields firstReadableTimestamp reads.
func batch(baseOffset int64, records int32, firstTimestamp, maxTimestamp, producerID int64, attributes int16) []byte {
	b := kmsg.RecordBatch{
		FirstOffset:     baseOffset,
		Magic:           2,
		Attributes:      attributes,
		LastOffsetDelta: records - 1,
		FirstTimestamp:  firstTimestamp,
		MaxTimestamp:    maxTimestamp,
		ProducerID:      producerID,
		NumRecords:      records,
		Records:         make([]byte, 20*records), // stand-in record bytes: only the header is read
	}
	b.Length = int32(49 + len(b.Records))
	return b.AppendTo(nil)
}

func TestFirstReadableTimestamp(t *testing.T) {
	const (
		transactional = 0x10
		control       = 0x20 | transactional
		logAppendTime = 0x08
	)
	concat := func(bs ...[]byte) []byte {
		var all []byte
		for _, b := range bs {
			all = append(all, b...)
		}
		return all
	}
	aborted := func(producerID, firstOffset int64) kmsg.FetchResponseTopicPartitionAbortedTransaction {
		a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		a.ProducerID, a.FirstOffset = producerID, firstOffset
		return a
	}
	cases := []struct {
		name    string
		batches []byte
		from    int64
		aborted []kmsg.FetchResponseTopicPartitionAbortedTransaction
		want    int64
		wantOK  bool
	}{
		{"no batches", nil, 0, nil, 0, false},
		{"one batch", batch(0, 10, 1000, 1090, 7, transactional), 0, nil, 1000, true},
		// The fetch answers with the batch holding from: its first record
		// is the one told, at most its linger older.
		{"from inside a batch", batch(0, 10, 1000, 1090, 7, transactional), 5, nil, 1000, true},
		// A group that committed the offset of a commit marker: the
		// marker is skipped and the next transaction's batch tells.
		{"commit marker first", concat(batch(10, 1, 1100, 1100, 7, control), batch(11, 5, 1200, 1240, 7, transactional)), 10, nil, 1200, true},
		{"only a commit marker", batch(10, 1, 1100, 1100, 7, control), 10, nil, 0, false},
		// A retried chunk's aborted attempt is not read by read_committed
		// consumers; the records after its abort marker are.
		{"aborted transaction skipped", concat(
			batch(0, 5, 900, 940, 3, transactional),
			batch(5, 1, 950, 950, 3, control),
			batch(6, 5, 1000, 1040, 8, transactional)),
			0, []kmsg.FetchResponseTopicPartitionAbortedTransaction{aborted(3, 0)}, 1000, true},
		// The abort marker ends producer 3's aborted transaction: its next
		// transaction is read.
		{"producer's next transaction read", concat(
			batch(0, 5, 900, 940, 3, transactional),
			batch(5, 1, 950, 950, 3, control),
			batch(6, 5, 1000, 1040, 3, transactional)),
			0, []kmsg.FetchResponseTopicPartitionAbortedTransaction{aborted(3, 0)}, 1000, true},
		// An aborted transaction of another producer that begins later
		// does not hide this one.
		{"later abort of another producer", concat(
			batch(0, 5, 900, 940, 4, transactional),
			batch(5, 5, 1000, 1040, 3, transactional)),
			0, []kmsg.FetchResponseTopicPartitionAbortedTransaction{aborted(3, 5)}, 900, true},
		{"log append time", batch(0, 10, 1000, 1500, -1, logAppendTime), 0, nil, 1500, true},
		// A broker cuts the last batch short at the partition's byte
		// limit; its header is still whole, a shorter piece tells nothing.
		{"cut after the header", batch(0, 10, 1000, 1090, 7, 0)[:recordBatchHeaderBytes], 0, nil, 1000, true},
		{"cut inside the header", batch(0, 10, 1000, 1090, 7, 0)[:recordBatchHeaderBytes-1], 0, nil, 0, false},
		{"control batch cut short", concat(batch(10, 1, 1100, 1100, 7, control), batch(11, 5, 1200, 1240, 7, 0))[:70], 10, nil, 0, false},
	}
	for _, c := range cases {
		got, ok := firstReadableTimestamp(c.batches, c.from, c.aborted)
		if got != c.want || ok != c.wantOK {
			t.Errorf("%s: got %d, %v; want %d, %v", c.name, got, ok, c.want, c.wantOK)
		}
	}
}
