//go:build integration

package verify

import (
	"fmt"
	"os"
	"testing"

	"github.com/flowproof/flowproof/activities"
	"github.com/flowproof/flowproof/activities/internal/activitytest"
)

// BenchmarkVerifyKeptRun verifies a finished run again, every hop, on its
// kept topics: the verify stage of a run without the wait for its last
// records. The run is named by FLOWPROOF_BENCH_RUN and its message count
// by FLOWPROOF_BENCH_MESSAGES (default 1,000,000); make one with
// `bin/starter run --keep-topics`, then
//
//	FLOWPROOF_BENCH_RUN=<run id> go test -tags integration -run '^$' \
//	  -bench VerifyKeptRun -benchtime 3x ./activities/verify/
func BenchmarkVerifyKeptRun(b *testing.B) {
	run := os.Getenv("FLOWPROOF_BENCH_RUN")
	if run == "" {
		b.Skip("FLOWPROOF_BENCH_RUN names no kept run")
	}
	messages := int64(1_000_000)
	if s := os.Getenv("FLOWPROOF_BENCH_MESSAGES"); s != "" {
		if _, err := fmt.Sscan(s, &messages); err != nil {
			b.Fatalf("FLOWPROOF_BENCH_MESSAGES=%q: %v", s, err)
		}
	}
	names := activities.RunNamesOf(run)
	acts := New(activitytest.EnvConn(b))
	for b.Loop() {
		res, err := activitytest.Execute[Result](b, activitytest.Env(acts), acts.Verify,
			Input{Names: names, Messages: messages, IdleTimeoutMillis: 10_000})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Passed() {
			b.Fatalf("run %s did not pass verification: %v", run, res.Problems)
		}
	}
}
