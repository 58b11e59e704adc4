package produce

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/flowproof/flowproof/activities"
)

// logicalQueueName is the logical queue of seq: q- plus seq mod queues,
// zero-padded to four digits.
func logicalQueueName(seq int64, queues int) string {
	return fmt.Sprintf("q-%04d", seq%int64(queues))
}

// rawValue is the JSON value of a raw record.
type rawValue struct {
	RunID        string `json:"run_id"`
	Seq          int64  `json:"seq"`
	LogicalQueue string `json:"logical_queue"`
	ProducedAt   string `json:"produced_at"`
	Payload      string `json:"payload"`
}

// rawValueEncoder writes raw values without encoding/json: the run id and the
// payload are the same for every record of a run, so they are encoded once,
// and a record costs a few appends into a caller-provided buffer.
type rawValueEncoder struct {
	prefix []byte // {"run_id":"...","seq":
	suffix []byte // ","payload":"..."}
}

func newRawValueEncoder(runID string, payloadBytes int) rawValueEncoder {
	// json.Marshal of a string cannot fail; it escapes whatever a run id
	// holds.
	quotedRunID, _ := json.Marshal(runID)
	prefix := make([]byte, 0, len(`{"run_id":,"seq":`)+len(quotedRunID))
	prefix = append(prefix, `{"run_id":`...)
	prefix = append(prefix, quotedRunID...)
	prefix = append(prefix, `,"seq":`...)

	suffix := make([]byte, 0, len(`","payload":""}`)+payloadBytes)
	suffix = append(suffix, `","payload":"`...)
	suffix = appendPayloadFiller(suffix, payloadBytes)
	suffix = append(suffix, `"}`...)
	return rawValueEncoder{prefix: prefix, suffix: suffix}
}

// appendPayloadFiller appends n bytes of filler that needs no JSON escaping.
func appendPayloadFiller(dst []byte, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	for i := range n {
		dst = append(dst, alphabet[i%len(alphabet)])
	}
	return dst
}

// maxLen is an upper bound of an encoded value whose logical queue name has
// queueLen bytes.
func (e rawValueEncoder) maxLen(queueLen int) int {
	const seqDigits = 20
	return len(e.prefix) + seqDigits + len(`,"logical_queue":"`) + queueLen +
		len(`","produced_at":"`) + len(activities.ProducedAtLayout) + 8 + len(e.suffix)
}

// appendValue appends the value of message seq. logicalQueue must not need
// JSON escaping (queue names are q- and digits).
func (e rawValueEncoder) appendValue(dst []byte, seq int64, logicalQueue string, producedAt time.Time) []byte {
	dst = append(dst, e.prefix...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"logical_queue":"`...)
	dst = append(dst, logicalQueue...)
	dst = append(dst, `","produced_at":"`...)
	dst = producedAt.UTC().AppendFormat(dst, activities.ProducedAtLayout)
	dst = append(dst, e.suffix...)
	return dst
}

// valueSlab hands out value buffers carved from large blocks, so a chunk
// allocates one block per few thousand records instead of one per record.
// A value stays referenced by its record until the producer is done with it;
// the block is only garbage once every value in it is.
type valueSlab struct {
	block []byte
	size  int
}

func (s *valueSlab) next(maxLen int) []byte {
	if cap(s.block)-len(s.block) < maxLen {
		s.block = make([]byte, 0, max(s.size, maxLen))
	}
	return s.block[len(s.block):len(s.block)]
}

// commit records that the last buffer from next now holds value.
func (s *valueSlab) commit(value []byte) []byte {
	s.block = s.block[:len(s.block)+len(value)]
	return value[:len(value):len(value)]
}
