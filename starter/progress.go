package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/flowproof/flowproof/internal/humanfmt"
	"github.com/flowproof/flowproof/workflows"
)

// progressView shows a run's progress while starter follows it.
type progressView interface {
	// update shows the latest answer of the progress query.
	update(p workflows.Progress)
	// waiting says why there is no progress to show.
	waiting(reason string)
	// finish ends the display before the result is printed.
	finish()
}

// newProgressView draws a bar when w is a terminal and prints a plain line
// every lineEvery otherwise (CI logs, pipes), so logs stay readable.
func newProgressView(w io.Writer, messages int64, lineEvery time.Duration) progressView {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return newBarView(f, messages)
	}
	return &lineView{w: w, every: lineEvery, started: time.Now()}
}

// pipelineWork is how far a run is, for the bar: every message is produced,
// delivered and verified once, so a run's total work is three times its
// messages and never goes backwards while stages overlap.
func pipelineWork(p workflows.Progress) int64 {
	return p.Produced + p.Delivered + p.Verified
}

// describeProgress is the one-line state of a run.
func describeProgress(p workflows.Progress) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s | produced %s delivered %s verified %s of %s",
		orDash(p.Stage), humanfmt.Commas(p.Produced), humanfmt.Commas(p.Delivered), humanfmt.Commas(p.Verified), humanfmt.Commas(p.Messages))
	if p.RatePerSecond > 0 {
		fmt.Fprintf(&b, " | %s msg/s", humanfmt.Commas(int64(p.RatePerSecond)))
	}
	if p.Lag > 0 {
		fmt.Fprintf(&b, " | lag %s", humanfmt.Commas(p.Lag))
		switch {
		case p.LagGroup != "" && p.DrainRate > 0:
			fmt.Fprintf(&b, " (%.1f s, %s at %s/s)", p.LagSeconds, p.LagGroup, humanfmt.Commas(int64(p.DrainRate)))
		case p.LagGroup != "":
			fmt.Fprintf(&b, " (%.1f s, %s's oldest record)", p.LagSeconds, p.LagGroup)
		}
	}
	if p.Held {
		b.WriteString(" | held (backpressure)")
	}
	if p.TokenRenewals > 0 {
		fmt.Fprintf(&b, " | tokens %d", p.TokenRenewals)
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type barView struct {
	w        io.Writer
	bar      *progressbar.ProgressBar
	messages int64
}

func newBarView(w io.Writer, messages int64) *barView {
	bar := progressbar.NewOptions64(3*messages,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionSetDescription("starting"),
	)
	return &barView{w: w, bar: bar, messages: messages}
}

func (v *barView) update(p workflows.Progress) {
	if p.Messages > 0 && p.Messages != v.messages {
		v.messages = p.Messages
		v.bar.ChangeMax64(3 * p.Messages)
	}
	v.bar.Describe(describeProgress(p))
	_ = v.bar.Set64(pipelineWork(p))
}

func (v *barView) waiting(reason string) { v.bar.Describe(reason) }

func (v *barView) finish() {
	_ = v.bar.Exit()
	fmt.Fprintln(v.w)
}

// lineView prints a line when the stage changes and otherwise at most once
// per every.
type lineView struct {
	w         io.Writer
	every     time.Duration
	started   time.Time
	lastLine  time.Time
	lastStage string
	lastWait  string
}

func (v *lineView) update(p workflows.Progress) {
	now := time.Now()
	if p.Stage == v.lastStage && now.Sub(v.lastLine) < v.every {
		return
	}
	percent := 0.0
	if p.Messages > 0 {
		percent = 100 * float64(pipelineWork(p)) / float64(3*p.Messages)
	}
	fmt.Fprintf(v.w, "[%s] %5.1f%% %s\n", now.Sub(v.started).Round(time.Second), percent, describeProgress(p))
	v.lastLine, v.lastStage, v.lastWait = now, p.Stage, ""
}

func (v *lineView) waiting(reason string) {
	now := time.Now()
	if reason == v.lastWait && now.Sub(v.lastLine) < v.every {
		return
	}
	fmt.Fprintf(v.w, "[%s] %s\n", now.Sub(v.started).Round(time.Second), reason)
	v.lastLine, v.lastWait = now, reason
}

func (v *lineView) finish() {}
