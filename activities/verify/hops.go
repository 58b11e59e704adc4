package verify

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/bits"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/activities"
)

// Hops of a run, in the order a message passes them.
const (
	HopRaw      = "raw"
	HopEnriched = "enriched"
	// HopEndpoint is what the endpoint accepted, counted from the run's
	// accepted topic.
	HopEndpoint = "endpoint"
	// HopEndpointOwnCount is the reference endpoint's own per-run count, a
	// cross-check of HopEndpoint that does not rely on flowproof's records.
	HopEndpointOwnCount = "endpoint (own count)"
	HopFinal            = "final"
)

// HopCount is one hop of the run, counted per seq from the data itself.
// Duplicated counts records (or acceptances) repeating a seq already
// counted at that hop, so Records = Unique + Duplicated + BadRecords.
type HopCount struct {
	Hop string `json:"hop"`
	// Source is where the hop was counted: a topic, or the endpoint.
	Source          string  `json:"source"`
	Records         int64   `json:"records"`
	Unique          int64   `json:"unique"`
	Missing         int64   `json:"missing"`
	Duplicated      int64   `json:"duplicated"`
	BadRecords      int64   `json:"bad_records"`
	FirstMissing    []int64 `json:"first_missing,omitempty"`
	FirstDuplicated []int64 `json:"first_duplicated,omitempty"`
	// Skipped hops were not counted (a run recorded before the hop was, an
	// endpoint without a per-run count) and are not judged; Note says why.
	Skipped bool   `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Exact is true when every expected message passed the hop once and
// intact, or the hop was not counted.
func (h HopCount) Exact(expected int64) bool {
	return h.Skipped || (h.Unique == expected && h.Missing == 0 && h.Duplicated == 0 && h.BadRecords == 0)
}

// maxHopProblems bounds the record-level problem lines kept per hop.
const maxHopProblems = 5

// seqTally counts one hop per seq: a bit per expected seq (125 KB for a
// million messages) and the counts the hop row shows.
type seqTally struct {
	expected        int64
	seen            []uint64
	records         int64
	unique          int64
	duplicated      int64
	bad             int64
	firstDuplicated []int64
	problems        []string
	problemCount    int64
}

func newSeqTally(expected int64) seqTally {
	return seqTally{expected: expected, seen: make([]uint64, (expected+63)/64)}
}

// count records one occurrence of seq, which the caller checked is in
// 0..expected-1.
func (t *seqTally) count(seq int64) {
	t.records++
	word, bit := seq/64, uint64(1)<<(seq%64)
	if t.seen[word]&bit != 0 {
		t.duplicated++
		if len(t.firstDuplicated) < maxFirstMissing {
			t.firstDuplicated = append(t.firstDuplicated, seq)
		}
		return
	}
	t.seen[word] |= bit
	t.unique++
}

// reject records one bad record (or entry) and why.
func (t *seqTally) reject(format string, args ...any) {
	t.records++
	t.bad++
	t.problemCount++
	if len(t.problems) < maxHopProblems {
		t.problems = append(t.problems, fmt.Sprintf(format, args...))
	}
}

func (t *seqTally) firstMissing(limit int) []int64 { return firstUnset(t.seen, t.expected, limit) }

// firstUnset returns up to limit seqs below expected whose bit in seen is
// not set, ascending.
func firstUnset(seen []uint64, expected int64, limit int) []int64 {
	var missing []int64
	for word, bitsSeen := range seen {
		for unseen := ^bitsSeen; unseen != 0 && len(missing) < limit; unseen &= unseen - 1 {
			seq := int64(word)*64 + int64(bits.TrailingZeros64(unseen))
			if seq >= expected {
				return missing
			}
			missing = append(missing, seq)
		}
		if len(missing) == limit {
			break
		}
	}
	return missing
}

func (t *seqTally) hopCount(hop, source string) HopCount {
	h := HopCount{
		Hop: hop, Source: source,
		Records: t.records, Unique: t.unique, Missing: t.expected - t.unique,
		Duplicated: t.duplicated, BadRecords: t.bad, FirstDuplicated: t.firstDuplicated,
	}
	if h.Missing > 0 {
		h.FirstMissing = t.firstMissing(maxFirstMissing)
	}
	return h
}

// Field patterns of the contract's compact JSON. Inside a JSON string a
// quote is escaped, so `"seq":` can only be the key seq.
var (
	seqField           = []byte(`"seq":`)
	runIDField         = []byte(`"run_id":"`)
	correlationIDField = []byte(`"correlation_id":"`)
)

// intField reads the integer after pattern; false when it is absent or
// not plain digits (a negative seq, whitespace), which the caller then
// decodes the slow way.
func intField(value, pattern []byte) (int64, bool) {
	at := bytes.Index(value, pattern)
	if at < 0 {
		return 0, false
	}
	digits := value[at+len(pattern):]
	var n int64
	i := 0
	for ; i < len(digits) && i < 18 && digits[i] >= '0' && digits[i] <= '9'; i++ {
		n = n*10 + int64(digits[i]-'0')
	}
	if i == 0 || (i < len(digits) && digits[i] >= '0' && digits[i] <= '9') {
		return 0, false
	}
	return n, true
}

// stringField returns the string after pattern, which ends in its opening
// quote; false when it is absent or holds an escape.
func stringField(value, pattern []byte) ([]byte, bool) {
	at := bytes.Index(value, pattern)
	if at < 0 {
		return nil, false
	}
	rest := value[at+len(pattern):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 || bytes.IndexByte(rest[:end], '\\') >= 0 {
		return nil, false
	}
	return rest[:end], true
}

// messageFields are the fields the raw and enriched hops check.
type messageFields struct {
	RunID         string `json:"run_id"`
	Seq           *int64 `json:"seq"`
	CorrelationID string `json:"correlation_id"`
}

// messageHop counts the raw or the enriched topic. Its hot path reads the
// few fields it needs straight from the value, without allocating.
type messageHop struct {
	runIDText string
	runID     []byte
	tally     seqTally
	perSecond secondCounter
	enrich    bool // check the correlation id (field and header) too
	hashBuf   []byte
	wantHex   [2 * md5.Size]byte
}

func newMessageHop(runID string, expected int64, enriched bool) *messageHop {
	return &messageHop{
		runIDText: runID, runID: []byte(runID), tally: newSeqTally(expected), perSecond: secondCounter{}, enrich: enriched,
		hashBuf: make([]byte, 0, len(runID)+21),
	}
}

func (m *messageHop) observe(rec *kgo.Record) {
	seq, runID, correlation, ok := m.fields(rec.Value)
	switch {
	case !ok:
		m.tally.reject("%s: value is not the contract's JSON or has no seq", where(rec))
		return
	case seq < 0 || seq >= m.tally.expected:
		m.tally.reject("%s: seq %d is outside 0..%d", where(rec), seq, m.tally.expected-1)
		return
	case !bytes.Equal(runID, m.runID):
		m.tally.reject("%s seq %d: belongs to run %q, not %q", where(rec), seq, runID, m.runID)
		return
	}
	if m.enrich {
		sum := correlationSum(m.hashBuf, m.runIDText, seq)
		hex.Encode(m.wantHex[:], sum[:])
		header, _ := recordHeader(rec, activities.HeaderCorrelationID)
		if !bytes.Equal(correlation, m.wantHex[:]) || !bytes.Equal(header, m.wantHex[:]) {
			m.tally.reject("%s seq %d: correlation id %q (header %q), want %s", where(rec), seq, correlation, header, m.wantHex[:])
			return
		}
	}
	m.perSecond.add(rec.Timestamp, 1)
	m.tally.count(seq)
}

// fields reads seq, run_id and correlation_id from value: straight from the
// bytes when the value is compact, through encoding/json otherwise.
func (m *messageHop) fields(value []byte) (seq int64, runID, correlation []byte, ok bool) {
	seq, seqOK := intField(value, seqField)
	runID, runOK := stringField(value, runIDField)
	correlation, corrOK := stringField(value, correlationIDField)
	if seqOK && runOK && (corrOK || !m.enrich) {
		return seq, runID, correlation, true
	}
	var f messageFields
	if err := json.Unmarshal(value, &f); err != nil || f.Seq == nil {
		return 0, nil, nil, false
	}
	return *f.Seq, []byte(f.RunID), []byte(f.CorrelationID), true
}

func (m *messageHop) hopCount(hop, topic string) HopCount {
	return m.tally.hopCount(hop, topic)
}

// acceptedHop counts the endpoint's hop from the accepted topic: the seqs
// of every batch id once. A batch id seen again (a replayed answer, the
// same answer recorded twice) adds nothing, so a retry that resends a
// batch under its id is not a duplicate, and one that cut the same
// messages into a batch with another id is. A batch id seen only as a
// replay still counts once: the endpoint accepted it, and the answer to
// that first request was lost.
type acceptedHop struct {
	tally     seqTally
	perSecond secondCounter   // seqs accepted, by the time they were recorded
	batches   map[string]bool // batch id -> a non-replayed record was seen
	replayed  int64           // records of replayed answers
	repeated  int64           // non-replayed records of a batch id counted before
	value     activities.AcceptedBatch
}

func newAcceptedHop(expected int64) *acceptedHop {
	return &acceptedHop{tally: newSeqTally(expected), perSecond: secondCounter{}, batches: make(map[string]bool)}
}

func (a *acceptedHop) observe(rec *kgo.Record) {
	a.value.BatchID, a.value.Replayed, a.value.Seqs = "", false, a.value.Seqs[:0]
	if err := json.Unmarshal(rec.Value, &a.value); err != nil || a.value.BatchID == "" {
		a.tally.reject("%s: not an accepted batch (%v)", where(rec), err)
		return
	}
	if a.value.Replayed {
		a.replayed++
	}
	counted, seen := a.batches[a.value.BatchID]
	switch {
	case seen && !a.value.Replayed && counted:
		a.repeated++
		return
	case seen:
		a.batches[a.value.BatchID] = counted || !a.value.Replayed
		return
	}
	a.batches[a.value.BatchID] = !a.value.Replayed
	a.perSecond.add(rec.Timestamp, int64(len(a.value.Seqs)))
	for _, seq := range a.value.Seqs {
		if seq < 0 || seq >= a.tally.expected {
			a.tally.reject("%s batch %s: seq %d is outside 0..%d", where(rec), a.value.BatchID, seq, a.tally.expected-1)
			continue
		}
		a.tally.count(seq)
	}
}

func (a *acceptedHop) hopCount(topic string) HopCount {
	h := a.tally.hopCount(HopEndpoint, topic)
	replayOnly := 0
	for _, counted := range a.batches {
		if !counted {
			replayOnly++
		}
	}
	h.Note = fmt.Sprintf("%d batches, %d replayed answers", len(a.batches), a.replayed)
	if replayOnly > 0 {
		h.Note += fmt.Sprintf(", %d batches seen only as replays (the first answer was lost)", replayOnly)
	}
	if a.repeated > 0 {
		h.Note += fmt.Sprintf(", %d batch ids recorded twice without a replay", a.repeated)
	}
	return h
}

// Verdict is the hop's verdict in a word or two, as the hop tables show it.
func (h HopCount) Verdict(expected int64) string {
	switch {
	case h.Skipped:
		return "not counted"
	case h.Exact(expected):
		return "exact"
	}
	return "NOT EXACT"
}
