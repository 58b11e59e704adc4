// Package temporalui builds links into the Temporal Web UI.
package temporalui

import (
	"net/url"
	"strings"
)

// WorkflowLink is the Temporal Web UI page of one Temporal run's history.
// Ids may hold any character, so each path segment is escaped.
func WorkflowLink(uiBase, namespace, workflowID, temporalRunID string) string {
	base := strings.TrimRight(uiBase, "/")
	return base + "/namespaces/" + url.PathEscape(namespace) +
		"/workflows/" + url.PathEscape(workflowID) + "/" + url.PathEscape(temporalRunID) + "/history"
}

// ScheduleLink is the Temporal Web UI page of a schedule.
func ScheduleLink(uiBase, namespace, scheduleID string) string {
	base := strings.TrimRight(uiBase, "/")
	return base + "/namespaces/" + url.PathEscape(namespace) + "/schedules/" + url.PathEscape(scheduleID)
}
