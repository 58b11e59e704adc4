package main

import "github.com/flowproof/flowproof/internal/temporalui"

// workflowLink and scheduleLink are the Temporal Web UI pages of a run and
// of a schedule (the failure notices of activities/notify link the same way).
var (
	workflowLink = temporalui.WorkflowLink
	scheduleLink = temporalui.ScheduleLink
)
