package notify

import (
	"fmt"
	"strings"

	"github.com/flowproof/flowproof/internal/temporalui"
)

// SlackMessage is the webhook's JSON: text for notifications and clients
// without blocks, blocks for Slack's layout.
type SlackMessage struct {
	Text   string  `json:"text"`
	Blocks []Block `json:"blocks,omitempty"`
}

// Block is a Slack layout block (section or context) of mrkdwn text.
type Block struct {
	Type     string      `json:"type"`
	Text     *BlockText  `json:"text,omitempty"`
	Elements []BlockText `json:"elements,omitempty"`
}

// BlockText is a mrkdwn text object.
type BlockText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// Message is f's notice; uiBase (the Temporal Web UI) makes the link.
func Message(f Failure, uiBase string) SlackMessage {
	headline := fmt.Sprintf("flowproof run %s %s", f.RunID, strings.ToLower(f.Status))
	if f.FailedStage != "" {
		headline += " in stage " + f.FailedStage
	}
	lines := []string{headline}
	if f.FailureMessage != "" {
		lines = append(lines, "Reason: "+f.FailureMessage)
	}
	for _, t := range f.BrokenThresholds {
		lines = append(lines, "Broken threshold: "+t)
	}
	if f.Messages > 0 {
		lines = append(lines, fmt.Sprintf("Verified %d of %d messages", f.Verified, f.Messages))
	}
	link := RunLink(uiBase, f.Namespace, f.WorkflowID, f.TemporalRunID)
	if link != "" {
		lines = append(lines, "Run in Temporal: "+link)
	}
	report := ReportCommand(f.WorkflowID)
	lines = append(lines, "Report: "+report)

	// Slack's mrkdwn reads <, > and & as markup; the plain text needs no
	// escaping.
	section := "*" + mrkdwnEscape(headline) + "*"
	for _, line := range lines[1:] {
		switch {
		case link != "" && line == "Run in Temporal: "+link:
			section += "\n<" + link + "|Run in Temporal>"
		case line == "Report: "+report:
		default:
			section += "\n" + mrkdwnEscape(line)
		}
	}
	return SlackMessage{
		Text: strings.Join(lines, "\n"),
		Blocks: []Block{
			{Type: "section", Text: &BlockText{Type: "mrkdwn", Text: section}},
			{Type: "context", Elements: []BlockText{{Type: "mrkdwn", Text: "Report: `" + report + "`"}}},
		},
	}
}

var mrkdwnEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

// RunLink is the Temporal Web UI page of one run's history; "" without a
// UI base, which the worker is not told to assume.
func RunLink(uiBase, namespace, workflowID, temporalRunID string) string {
	if strings.TrimSpace(uiBase) == "" || workflowID == "" {
		return ""
	}
	return temporalui.WorkflowLink(uiBase, namespace, workflowID, temporalRunID)
}

// ReportCommand is the command that writes the run's HTML report.
func ReportCommand(workflowID string) string {
	return "starter report " + shellQuote(workflowID) + " --html report.html"
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe
// characters.
func shellQuote(s string) string {
	safe := s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/@", r))
	}) < 0
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
