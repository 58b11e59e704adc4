package endpoint

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// assertOneAcceptancePerKey releases copies of one batch at the same moment,
// round after round, straight into the store: exactly one copy per round may
// be accepted, every other one must be a replay of it.
func assertOneAcceptancePerKey(t *testing.T, s *store) {
	t.Helper()
	const rounds, copies = 100, 8
	ctx := context.Background()
	for round := range rounds {
		a := acceptance{
			scopedKey: fmt.Sprintf("race-%d", round), fingerprint: [32]byte{byte(round)},
			tokenID: fmt.Sprintf("race-token-%d", round), quota: 1000, quotaTTL: time.Minute,
			instance: "race", runID: "race-run", seqs: []int64{int64(round)},
		}
		verdicts := make([]verdict, copies)
		errs := make([]error, copies)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range copies {
			wg.Go(func() {
				<-start
				verdicts[i], errs[i] = s.accept(ctx, a)
			})
		}
		close(start)
		wg.Wait()
		acceptances := 0
		for i, v := range verdicts {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if v.outcome == accepted {
				acceptances++
			}
			if v.batchNumber != verdicts[0].batchNumber || (v.outcome != accepted && v.outcome != replayed) {
				t.Fatalf("round %d: verdicts %+v: copies of one batch got different answers", round, verdicts)
			}
		}
		if acceptances != 1 {
			t.Fatalf("round %d: %d of %d copies accepted, want exactly 1", round, acceptances, copies)
		}
	}
}

func TestStoreAcceptsOneOfConcurrentCopies(t *testing.T) {
	mr := miniredis.RunT(t)
	assertOneAcceptancePerKey(t, &store{client: redisClient(mr), prefix: DefaultKeyPrefix, ttl: time.Hour})
}
