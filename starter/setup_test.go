package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
)

// A refused registration says which permission is missing and gives the
// commands to run instead; any other error is passed on as it is.
func TestExplainRegisterErrorOnRefusal(t *testing.T) {
	denied := fmt.Errorf("add search attributes: %w", serviceerror.NewPermissionDenied("Request unauthorized.", ""))
	got := explainRegisterError(denied, "team-ns")
	for _, want := range []string{
		"Request unauthorized.", "namespace admin", "AddSearchAttributes",
		"temporal operator search-attribute create --namespace team-ns --name FlowproofStage --name FlowproofStatus --name FlowproofInputHash --type Keyword",
		"temporal operator search-attribute create --namespace team-ns --name FlowproofMessageCount --type Int",
		"'starter setup' again",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("explanation does not say %q:\n%s", want, got)
		}
	}
	other := fmt.Errorf("connection reset")
	if got := explainRegisterError(other, "team-ns"); got != "connection reset" {
		t.Errorf("other error explained as %q", got)
	}
}

func TestSetupScheduleFlagsNeedSchedule(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), []string{"setup", "--cron", "0 3 * * *"}, &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--cron: a schedule flag, which needs --schedule") {
		t.Fatalf("exit %d, stderr %q; want 2 and the flag named", code, stderr.String())
	}
	code = execute(context.Background(), []string{"setup", "--schedule", "--cron", ""}, &stdout, &stderr)
	if code != 2 {
		t.Fatalf("setup --schedule with an empty cron: exit %d, want 2", code)
	}
}
