package grafana

import (
	"strings"
	"testing"
	"time"
)

// TestDashboardParsesAndEveryPanelHasAQuery: Grafana imports the file, each
// panel draws something, and ids and titles tell panels apart.
func TestDashboardParsesAndEveryPanelHasAQuery(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both needed for a stable import", d.UID, d.Title)
	}
	ids, titles := map[int]bool{}, map[string]bool{}
	graphs := 0
	for _, p := range d.Panels {
		if p.ID == 0 || ids[p.ID] {
			t.Errorf("panel %q: id %d is missing or taken", p.Title, p.ID)
		}
		if p.Title == "" || titles[p.Title] {
			t.Errorf("panel %d: title %q is missing or taken", p.ID, p.Title)
		}
		ids[p.ID], titles[p.Title] = true, true
		if p.IsRow() {
			continue
		}
		graphs++
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refIDs := map[string]bool{}
		for _, target := range p.Targets {
			if strings.TrimSpace(target.Expr) == "" {
				t.Errorf("panel %q target %q has an empty expr", p.Title, target.RefID)
			}
			if target.RefID == "" || refIDs[target.RefID] {
				t.Errorf("panel %q: refId %q is missing or taken", p.Title, target.RefID)
			}
			refIDs[target.RefID] = true
		}
	}
	if graphs < 10 {
		t.Errorf("%d panels with queries; the dashboard shows runs, last success, hops, latency, lag, holds, renewals, Kafka, Flink and Temporal", graphs)
	}
}

func TestQueriesSetGrafanasRangeVariables(t *testing.T) {
	d, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	queries := d.Queries(90 * time.Second)
	if len(queries) == 0 {
		t.Fatal("no queries")
	}
	rangeVars := 0
	for _, q := range queries {
		if strings.Contains(q.Expr, "$") {
			t.Errorf("%s/%s keeps a variable: %s", q.Panel, q.RefID, q.Expr)
		}
		rangeVars += strings.Count(q.Expr, "[90s]")
	}
	if rangeVars == 0 {
		t.Error("no query uses the range window")
	}
}
