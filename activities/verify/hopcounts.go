package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/flowproof/flowproof/internal/kafkaeos"
)

// hopCounts counts the hops other than the final topic: each topic by a
// reader of its own, in parallel, and the reference endpoint's own count.
type hopCounts struct {
	in        Input
	raw       *messageHop
	enriched  *messageHop
	accepted  *acceptedHop // nil for a run recorded before the endpoint's hop was counted
	reference *referenceEndpoint
	ownCount  HopCount
}

func newHopCounts(in Input, reference *referenceEndpoint) *hopCounts {
	c := &hopCounts{
		in:        in,
		raw:       newMessageHop(in.Names.RunID, in.Messages, false),
		enriched:  newMessageHop(in.Names.RunID, in.Messages, true),
		reference: reference,
	}
	if in.Names.AcceptedTopic != "" {
		c.accepted = newAcceptedHop(in.Messages)
	}
	return c
}

// read counts every hop; records counts the records read so far.
func (c *hopCounts) read(ctx context.Context, kafka *kafkaeos.Conn, records *atomic.Int64) error {
	type topicHop struct {
		topic   string
		observe func(*kgo.Record)
		tally   *seqTally
	}
	topics := []topicHop{
		{c.in.Names.RawTopic, c.raw.observe, &c.raw.tally},
		{c.in.Names.EnrichedTopic, c.enriched.observe, &c.enriched.tally},
	}
	if c.accepted != nil {
		topics = append(topics, topicHop{c.in.Names.AcceptedTopic, c.accepted.observe, &c.accepted.tally})
	}
	settle := min(hopSettleTime, time.Duration(c.in.IdleTimeoutMillis)*time.Millisecond)
	errs := make([]error, len(topics))
	var wg sync.WaitGroup
	for i, t := range topics {
		wg.Go(func() { errs[i] = readHop(ctx, kafka, t.topic, t.observe, t.tally, settle, records) })
	}
	if c.reference != nil {
		wg.Go(func() { c.ownCount = c.reference.ownCount(ctx, c.in.Names.RunID, c.in.Messages) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// hopSettleTime bounds how long a hop that is short of messages is read
// for more. The writers of these topics finished before Verify began, but
// a transaction's commit markers reach its partitions after the commit
// returned, and until one has, a read_committed reader sees that
// partition's records of the transaction as not there yet.
const hopSettleTime = 10 * time.Second

// readHop passes every committed record of topic to observe: up to each
// partition's last stable offset, and, while tally is short of the
// expected messages, what becomes stable for up to settle more.
func readHop(ctx context.Context, kafka *kafkaeos.Conn, topic string, observe func(*kgo.Record), tally *seqTally, settle time.Duration, records *atomic.Int64) error {
	reader, err := kafkaeos.NewCommittedReader(ctx, kafka, topic)
	if err != nil {
		return fmt.Errorf("verify %s: %w", topic, err)
	}
	lastArrival := time.Now()
	for {
		// Caught up, every partition is asked again, to learn of offsets
		// that became stable since.
		n, err := reader.FetchRound(ctx, min(verifyMaxFetchWait, settle), !reader.CaughtUp(), observe)
		if err != nil {
			return fmt.Errorf("verify %s after %d records: %w", topic, tally.records, err)
		}
		records.Add(int64(n))
		if n > 0 {
			lastArrival = time.Now()
		}
		caughtUp := reader.CaughtUp()
		if caughtUp && (tally.unique == tally.expected || time.Since(lastArrival) >= settle) {
			return nil
		}
	}
}

// judge adds the hop table to the final topic's result, and a summary line
// for every hop that is not exact ahead of its problems.
func (c *hopCounts) judge(res Result) Result {
	names := c.in.Names
	hops := []HopCount{c.raw.hopCount(HopRaw, names.RawTopic), c.enriched.hopCount(HopEnriched, names.EnrichedTopic)}
	if c.accepted != nil {
		hops = append(hops, c.accepted.hopCount(names.AcceptedTopic))
	} else {
		hops = append(hops, HopCount{Hop: HopEndpoint, Skipped: true,
			Note: "not counted: the run has no accepted topic (it started before the endpoint's hop was recorded)"})
	}
	if c.reference != nil {
		own := c.ownCount
		if c.accepted != nil && !own.Skipped {
			own.Note = compareWithAccepted(own, hops[len(hops)-1])
		}
		hops = append(hops, own)
	}
	hops = append(hops, HopCount{
		Hop: HopFinal, Source: names.FinalTopic, Records: res.Records, Unique: res.Unique, Missing: res.Missing,
		Duplicated: res.Duplicates, BadRecords: res.BadRecords, FirstMissing: res.FirstMissing,
	})
	res.Hops = hops
	var delivered secondCounter
	if c.accepted != nil {
		delivered = c.accepted.perSecond
	}
	res.Series = newSeries(c.raw.perSecond, c.enriched.perSecond, delivered, res.verifiedPerSecond)

	var lines []string
	var more int64
	for i, h := range hops {
		if h.Exact(res.Expected) || h.Hop == HopFinal { // the final topic's lines are already there
			continue
		}
		lines = append(lines, hopSummary(h, res.Expected))
		if tally := c.tallyOf(i, h.Hop); tally != nil {
			for _, p := range tally.problems {
				lines = append(lines, h.Hop+": "+p)
			}
			more += tally.problemCount - int64(len(tally.problems))
		}
	}
	if len(lines) > 0 {
		final := res.Problems
		if res.problemsLeftOut > 0 { // its last line stands for those; capLines says it again
			final, more = final[:len(final)-1], more+res.problemsLeftOut
		}
		res.Problems = capLines(slices.Concat(lines, final), more)
	}
	return res
}

// tallyOf is the tally behind hop i, for its problem lines.
func (c *hopCounts) tallyOf(i int, hop string) *seqTally {
	switch {
	case hop == HopRaw:
		return &c.raw.tally
	case hop == HopEnriched:
		return &c.enriched.tally
	case hop == HopEndpoint && c.accepted != nil && i == 2:
		return &c.accepted.tally
	}
	return nil
}

// hopSummary says in one line how a hop is not exact.
func hopSummary(h HopCount, expected int64) string {
	line := fmt.Sprintf("hop %s (%s): %d of %d unique, %d missing, %d duplicated, %d bad records",
		h.Hop, h.Source, h.Unique, expected, h.Missing, h.Duplicated, h.BadRecords)
	if len(h.FirstMissing) > 0 {
		line += fmt.Sprintf("; first missing seqs %v", h.FirstMissing)
	}
	if len(h.FirstDuplicated) > 0 {
		line += fmt.Sprintf("; first duplicated seqs %v", h.FirstDuplicated)
	}
	if h.Note != "" {
		line += "; " + h.Note
	}
	return line
}

// capLines keeps at most maxProblemLines lines, the last saying how many
// more there were; more counts lines already left out.
func capLines(lines []string, more int64) []string {
	if int64(len(lines))+more <= maxProblemLines {
		return lines
	}
	total := int64(len(lines)) + more
	kept := lines[:min(len(lines), maxProblemLines-1)]
	return append(kept, fmt.Sprintf("... and %d more problems", total-int64(len(kept))))
}

// compareWithAccepted says whether the endpoint's own count agrees with the
// accepted topic's.
func compareWithAccepted(own, accepted HopCount) string {
	note := own.Note
	if own.Records == accepted.Records && own.Unique == accepted.Unique && own.Duplicated == accepted.Duplicated {
		return note + "; agrees with the accepted topic"
	}
	return note + fmt.Sprintf("; differs from the accepted topic: %d accepted, %d unique, %d duplicated there",
		accepted.Records, accepted.Unique, accepted.Duplicated)
}
