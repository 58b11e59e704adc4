package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Progress is what the `progress` query returns while a run goes on; the
// starter's progress bar and the UI's current details are drawn from it.
type Progress struct {
	Stage         string `json:"stage"`
	Messages      int64  `json:"messages"`
	Produced      int64  `json:"produced"`
	Delivered     int64  `json:"delivered"`
	Verified      int64  `json:"verified"`
	TokenRenewals int    `json:"token_renewals"`
	Lag           int64  `json:"lag"`
	Held          bool   `json:"held"`
	// RatePerSecond is the production rate of the last chunk.
	RatePerSecond float64 `json:"rate_per_second"`
	// LagSeconds is the largest consumer lag in seconds, of the group
	// LagGroup draining DrainRate messages a second, or, with DrainRate 0,
	// told by the age of its oldest unconsumed record; unset while unknown
	// (no threshold in seconds, or neither known yet).
	LagSeconds float64 `json:"lag_seconds,omitempty"`
	LagGroup   string  `json:"lag_group,omitempty"`
	DrainRate  float64 `json:"drain_rate,omitempty"`
}

// ProgressQuery is the name of the query that returns Progress.
const ProgressQuery = "progress"

// progressSignal is the signal children send to PipelineWorkflow.
const progressSignal = "child-progress"

// progressSignals is about how many progress signals a child sends its
// parent over a whole run, whatever the message count.
const progressSignals = 100

// childProgress is the payload of progressSignal.
type childProgress struct {
	Source        string  `json:"source"` // "produce" or "deliver"
	Produced      int64   `json:"produced,omitempty"`
	Delivered     int64   `json:"delivered,omitempty"`
	Lag           int64   `json:"lag,omitempty"`
	Held          bool    `json:"held,omitempty"`
	RatePerSecond float64 `json:"rate_per_second,omitempty"`
	TokenRenewals int     `json:"token_renewals,omitempty"`
	LagSeconds    float64 `json:"lag_seconds,omitempty"`
	LagGroup      string  `json:"lag_group,omitempty"`
	DrainRate     float64 `json:"drain_rate,omitempty"`
}

// signalParent reports progress to PipelineWorkflow. Progress is advisory,
// so a failed signal (a parent that already ended) is logged, not fatal.
func signalParent(ctx workflow.Context, parentID string, p childProgress) {
	if parentID == "" {
		return
	}
	err := workflow.SignalExternalWorkflow(ctx, parentID, "", progressSignal, p).Get(ctx, nil)
	var canceled *temporal.CanceledError
	if err != nil && !errors.As(err, &canceled) {
		workflow.GetLogger(ctx).Warn("progress signal to parent failed", "error", err)
	}
}
