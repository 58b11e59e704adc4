package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestReportWantsOneRunAndAnHTMLFile(t *testing.T) {
	for _, args := range [][]string{{"report", "some-run"}, {"report", "--html", "r.html"}} {
		var stdout, stderr bytes.Buffer
		if code := execute(context.Background(), args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "Run 'starter report --help'") {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}
