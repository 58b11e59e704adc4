package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/verify"
	"github.com/flowproof/flowproof/internal/humanfmt"
	"github.com/flowproof/flowproof/workflows"
)

// printResult writes a run's result for a person to read.
func printResult(w io.Writer, r workflows.PipelineResult) {
	m := r.Metrics
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "status\t%s\n", r.Status)
	if m.FailedStage != "" {
		fmt.Fprintf(tw, "failed in stage\t%s\n", m.FailedStage)
	}
	if m.FailureMessage != "" {
		fmt.Fprintf(tw, "failure\t%s\n", m.FailureMessage)
	}
	fmt.Fprintf(tw, "run id\t%s\n", orDash(m.RunID))
	fmt.Fprintf(tw, "messages\t%s (produced %s, delivered %s, verified %s)\n", humanfmt.Commas(m.Messages), humanfmt.Commas(m.Produced), humanfmt.Commas(m.Delivered), humanfmt.Commas(m.Verified))
	fmt.Fprintf(tw, "total time\t%s\n", humanfmt.Millis(m.TotalMillis))
	if m.Brokers > 0 {
		fmt.Fprintf(tw, "kafka brokers\t%d\n", m.Brokers)
	}
	v := m.Verification
	if m.ShownFigures().Verification {
		fmt.Fprintf(tw, "verification\t%s unique of %s expected; %s missing, %s duplicates, %s bad records\n",
			humanfmt.Commas(v.Unique), humanfmt.Commas(v.Expected), humanfmt.Commas(v.Missing), humanfmt.Commas(v.Duplicates), humanfmt.Commas(v.BadRecords))
		if len(v.FirstMissing) > 0 {
			fmt.Fprintf(tw, "first missing seqs\t%v\n", v.FirstMissing)
		}
		for _, p := range v.Problems {
			fmt.Fprintf(tw, "problem\t%s\n", p)
		}
		fmt.Fprintf(tw, "end-to-end latency\tp50 %.0f ms, p95 %.0f ms, p99 %.0f ms, p99.9 %.0f ms, max %.0f ms\n",
			m.Latency.P50, m.Latency.P95, m.Latency.P99, m.Latency.P999, m.Latency.Max)
		if m.EndToEndPerSecond > 0 {
			fmt.Fprintf(tw, "end-to-end throughput\t%s msg/s (first produced to last arrived: %s)\n",
				humanfmt.Commas(int64(m.EndToEndPerSecond)), humanfmt.Millis(m.Verification.FlowMillis))
		}
	} else {
		fmt.Fprintf(tw, "verification\tnot run: the run ended before its verify stage\n")
	}
	if m.ShownFigures().Delivery {
		fmt.Fprintf(tw, "http\t%s batches, %s retries\n", humanfmt.Commas(int64(m.HTTPBatches)), humanfmt.Commas(int64(m.HTTPRetries)))
		fmt.Fprintf(tw, "tokens\t%d renewals, %d rejected\n", m.TokenRenewals, m.TokenRejected)
	} else {
		fmt.Fprintf(tw, "http\tnot reported: delivery did not finish\n")
		fmt.Fprintf(tw, "tokens\t%d renewals by the last progress report\n", m.TokenRenewals)
	}
	if m.ShownFigures().Production {
		fmt.Fprintf(tw, "production chunks\t%d resumed\n", m.ChunksResumed)
		fmt.Fprintf(tw, "backpressure\t%s\n", describeBackpressure(m.Backpressure))
	} else {
		fmt.Fprintf(tw, "production\tchunks and backpressure not reported: production did not finish\n")
	}
	if m.FlinkJobs.EnrichJobID != "" || m.FlinkJobs.SplitJobID != "" {
		fmt.Fprintf(tw, "flink jobs\tenrich %s, split %s (running after %s)\n", orDash(m.FlinkJobs.EnrichJobID), orDash(m.FlinkJobs.SplitJobID), humanfmt.Millis(m.FlinkJobs.SubmitToRunningMillis))
	}
	_ = tw.Flush()

	if len(m.Stages) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "stage\tmessages\tduration\tmsg/s\t")
		for _, s := range m.Stages {
			rate := "-"
			if s.PerSecond > 0 {
				rate = humanfmt.Commas(int64(s.PerSecond))
			}
			count := "-"
			if s.Messages > 0 {
				count = humanfmt.Commas(s.Messages)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", s.Stage, count, humanfmt.Millis(s.DurationMillis), rate)
		}
		_ = tw.Flush()
	}
	printHops(w, m.Hops, m.Verification.Expected)
	printThresholds(w, m.Thresholds)
	if len(m.Health) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "health:")
		for _, h := range m.Health {
			fmt.Fprintln(w, "  "+strings.TrimSpace(h))
		}
	}
	printMessages(w, "first messages in the final topic:", m.Verification.First)
	printMessages(w, "last messages in the final topic:", m.Verification.Last)
}

// describeBackpressure is the summary line of backpressure: the holds, the
// largest lag in messages and, when a threshold in seconds applied, in
// seconds, with the drain rates production was measured against.
func describeBackpressure(b workflows.Backpressure) string {
	line := fmt.Sprintf("%d holds, %s held, max lag %s", b.Holds, humanfmt.Millis(b.HeldMillis), humanfmt.Commas(b.MaxLag))
	if b.MaxLagSeconds > 0 || b.DrainRates != (workflows.DrainRates{}) {
		line += fmt.Sprintf(", max %.1f s of lag; last drain rates enrich %s/s, deliver %s/s, split %s/s", b.MaxLagSeconds,
			humanfmt.Commas(int64(b.DrainRates.Enrich)), humanfmt.Commas(int64(b.DrainRates.Deliver)), humanfmt.Commas(int64(b.DrainRates.Split)))
	}
	return line
}

// printThresholds shows each threshold the run was held to, with what it
// measured, so a reader sees how close a passing run came, too.
func printThresholds(w io.Writer, checks []workflows.ThresholdCheck) {
	if len(checks) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "threshold\tmeasured\tlimit\tverdict")
	for _, c := range checks {
		verdict := "kept"
		if !c.Passed {
			verdict = "BROKEN"
		}
		fmt.Fprintf(tw, "%s (%s)\t%s\t%s\t%s\n", c.What, c.Field, c.MeasuredText(), c.LimitText(), verdict)
	}
	_ = tw.Flush()
}

// printHops shows the hop table: every hop of the run counted per seq, so
// a failed run says at which hop messages went missing or doubled.
func printHops(w io.Writer, hops []verify.HopCount, expected int64) {
	if len(hops) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "hop\trecords\tunique\tmissing\tduplicated\tbad\tverdict\tsource")
	var notes []string
	for _, h := range hops {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Hop, humanfmt.Commas(h.Records), humanfmt.Commas(h.Unique), humanfmt.Commas(h.Missing),
			humanfmt.Commas(h.Duplicated), humanfmt.Commas(h.BadRecords), h.Verdict(expected), orDash(h.Source))
		if h.Note != "" {
			notes = append(notes, h.Hop+": "+h.Note)
		}
	}
	_ = tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, "  "+n)
	}
}

// printMessages shows verified messages with their headers, so a reader
// sees what actually arrived, not only that the counts match.
func printMessages(w io.Writer, title string, msgs []activities.MessageView) {
	if len(msgs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "seq\tpartition@offset\tkey\tcorrelation.id\tsending.id\tbatch.number\tlogical.queue\tarrived\t")
	for _, v := range msgs {
		fmt.Fprintf(tw, "%d\t%d@%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", v.Seq, v.Partition, v.Offset, v.Key,
			v.Headers["correlation.id"], v.Headers["sending.id"], v.Headers["batch.number"], v.Headers["logical.queue"], v.ArrivedAt)
	}
	_ = tw.Flush() // a terminal that went away leaves nobody to tell
}
