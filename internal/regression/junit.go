package regression

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// The JUnit XML elements CI systems read (Jenkins, GitLab, GitHub
// actions' reporters): testsuites > testsuite > testcase, with a failure
// or skipped child.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Skipped   *junitSkipped `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type junitSkipped struct {
	Message string `xml:"message,attr"`
}

// WriteJUnit writes reports as JUnit XML: one test suite per run, with a
// test case for the run's status, one per compared figure (failed when it
// regressed, skipped without data) and one per threshold.
func WriteJUnit(w io.Writer, reports []Report) error {
	doc := junitSuites{Name: "flowproof"}
	for _, r := range reports {
		suite := junitSuite{Name: "flowproof run " + r.RunID, Properties: []junitProperty{
			{Name: "run_id", Value: r.RunID}, {Name: "status", Value: r.Status},
			{Name: "input_hash", Value: r.InputHash}, {Name: "baseline_runs", Value: strings.Join(r.BaselineRuns, ",")},
		}}
		class := "flowproof." + r.RunID
		status := junitCase{Name: "status", Classname: class, SystemOut: "status " + r.Status}
		if r.Status != "Succeeded" {
			status.Failure = &junitFailure{Message: "run ended " + r.Status, Type: "status", Text: "the run did not succeed: " + r.Status}
		}
		suite.Cases = append(suite.Cases, status)
		for _, c := range r.Figures {
			tc := junitCase{Name: "figure " + c.Figure, Classname: class, SystemOut: c.String()}
			switch c.Verdict {
			case Regressed:
				tc.Failure = &junitFailure{Message: c.What + " regressed", Type: "regression", Text: c.String()}
			case NoData:
				tc.Skipped = &junitSkipped{Message: c.String()}
			}
			suite.Cases = append(suite.Cases, tc)
		}
		for _, t := range r.Thresholds {
			tc := junitCase{Name: "threshold " + t.Field, Classname: class, SystemOut: t.String()}
			if !t.Passed {
				tc.Failure = &junitFailure{Message: "threshold broken: " + t.String(), Type: "threshold", Text: t.String()}
			}
			suite.Cases = append(suite.Cases, tc)
		}
		for _, tc := range suite.Cases {
			suite.Tests++
			if tc.Failure != nil {
				suite.Failures++
			}
			if tc.Skipped != nil {
				suite.Skipped++
			}
		}
		doc.Tests += suite.Tests
		doc.Failures += suite.Failures
		doc.Skipped += suite.Skipped
		doc.Suites = append(doc.Suites, suite)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write JUnit XML: %w", err)
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// String reads "end-to-end throughput 480 msg/s vs baseline 3100 msg/s
// (-84.5%), limit >= 2480 msg/s (tolerance 20%): regressed".
func (c Comparison) String() string {
	if c.Verdict == NoData {
		return fmt.Sprintf("%s: no data (the run or its baseline did not measure it)", c.What)
	}
	op := "<="
	if c.HigherIsBetter {
		op = ">="
	}
	return fmt.Sprintf("%s %s %s vs baseline %s %s (%+.1f%%), limit %s %s %s (tolerance %.0f%%, slack %s %s): %s",
		c.What, FormatValue(c.Run), c.Unit, FormatValue(c.Baseline), c.Unit, c.Change*100,
		op, FormatValue(c.Limit), c.Unit, c.Tolerance*100, FormatValue(c.Slack), c.Unit, c.Verdict)
}

// FormatValue writes a figure with as many decimals as it needs.
func FormatValue(v float64) string {
	switch {
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}
