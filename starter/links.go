package main

import (
	"net/url"
	"strings"
)

// workflowLink is the Temporal Web UI page of one Temporal run's history. Ids may hold
// any character, so each path segment is escaped.
func workflowLink(uiBase, namespace, workflowID, temporalRunID string) string {
	base := strings.TrimRight(uiBase, "/")
	return base + "/namespaces/" + url.PathEscape(namespace) +
		"/workflows/" + url.PathEscape(workflowID) + "/" + url.PathEscape(temporalRunID) + "/history"
}

// scheduleLink is the Temporal Web UI page of a schedule.
func scheduleLink(uiBase, namespace, scheduleID string) string {
	base := strings.TrimRight(uiBase, "/")
	return base + "/namespaces/" + url.PathEscape(namespace) + "/schedules/" + url.PathEscape(scheduleID)
}
