package main

import (
	"net/url"
	"strings"
)

// workflowLink is the Temporal Web UI page of one run's history. Ids may hold
// any character, so each path segment is escaped.
func workflowLink(uiBase, namespace, workflowID, runID string) string {
	base := strings.TrimRight(uiBase, "/")
	return base + "/namespaces/" + url.PathEscape(namespace) +
		"/workflows/" + url.PathEscape(workflowID) + "/" + url.PathEscape(runID) + "/history"
}

// scheduleLink is the Temporal Web UI page of a schedule.
func scheduleLink(uiBase, namespace, scheduleID string) string {
	base := strings.TrimRight(uiBase, "/")
	return base + "/namespaces/" + url.PathEscape(namespace) + "/schedules/" + url.PathEscape(scheduleID)
}
