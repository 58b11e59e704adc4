// Package grafana holds flowproof's Grafana dashboard (flowproof.json:
// import it into Grafana with a Prometheus data source that scrapes what
// deploy/prometheus/prometheus.yml lists) and reads its queries, so that
// tests can check each one against a live Prometheus.
package grafana

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

//go:embed flowproof.json
var dashboardJSON []byte

// Dashboard is the part of Grafana's dashboard model the checks read.
type Dashboard struct {
	UID    string  `json:"uid"`
	Title  string  `json:"title"`
	Panels []Panel `json:"panels"`
}

// Panel is one panel; rows are panels of type "row" that only group others.
type Panel struct {
	ID      int      `json:"id"`
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Targets []Target `json:"targets"`
}

// Target is one PromQL query of a panel.
type Target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

// IsRow reports whether p only groups the panels below it.
func (p Panel) IsRow() bool { return p.Type == "row" }

// Load parses the committed dashboard.
func Load() (Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return Dashboard{}, fmt.Errorf("parse flowproof.json: %w", err)
	}
	return d, nil
}

// Query is a panel's query ready for Prometheus' HTTP API.
type Query struct {
	Panel string
	RefID string
	Expr  string
}

// Queries returns every panel's queries with Grafana's range variables
// ($__range, $__rate_interval) set to window, as Grafana would for a
// dashboard whose time range is that long.
func (d Dashboard) Queries(window time.Duration) []Query {
	duration := fmt.Sprintf("%ds", int(window.Seconds()))
	vars := strings.NewReplacer("$__rate_interval", duration, "$__range", duration)
	var out []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: vars.Replace(t.Expr)})
		}
	}
	return out
}
