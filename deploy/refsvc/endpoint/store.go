package endpoint

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flowproof/flowproof/internal/endpointapi"
)

// DefaultKeyPrefix starts every key the endpoint writes to Redis.
const DefaultKeyPrefix = "refsvc:endpoint:"

// maxCountedSeq bounds the seqs a run's figures count: each run keeps a
// bitmap of the seqs it saw, up to maxCountedSeq/8 bytes (4 MiB). A seq
// beyond it is accepted but makes the run's figures incomplete.
const maxCountedSeq = 1 << 25

// store is the endpoint's state in Redis: the answer to every accepted batch
// by Idempotency-Key, every token's used quota, the batch number and the
// figures of each run. Every key but the batch number expires, so memory
// stays bounded, and the process keeps nothing of it: a restarted endpoint
// (even after SIGKILL) answers retries and counts runs as before.
type store struct {
	client *redis.Client
	prefix string
	ttl    time.Duration
}

// acceptance is what a batch needs from the store to be accepted or replayed.
type acceptance struct {
	scopedKey   string // "" without an Idempotency-Key: nothing is kept for replay
	fingerprint [32]byte
	tokenID     string
	quota       int64
	quotaTTL    time.Duration // until the token expires, leeway included
	instance    string
	runID       string // "" when the key names no run
	seqs        []int64
}

// outcome is the store's verdict on one batch.
type outcome int

const (
	accepted outcome = iota
	replayed
	keyReused
	quotaExhausted
)

// verdict is the outcome with what the answer is built from: the batch
// number and the sending-id instance of the first acceptance (also for a
// replay), or the token's used quota when it is exhausted.
type verdict struct {
	outcome     outcome
	batchNumber int64
	instance    string
	quotaUsed   int64
}

// acceptScript checks the Idempotency-Key, charges the quota, draws the
// batch number and records the batch in one atomic step: two retries of one
// batch cannot both be accepted, and there is no moment in which a batch is
// accepted but not yet stored. Its first write is the quota's INCRBY, the
// only point where Redis may refuse for lack of memory, so a refusal leaves
// nothing half done.
//
// KEYS: idempotency entry, quota, batch number, run figures, run seqs seen,
// run seqs seen twice. ARGV: has key, fingerprint, messages, quota, quota
// ttl ms, entry ttl ms, instance, counts for a run, seqs beyond the bitmap,
// then the seqs.
var acceptScript = redis.NewScript(`
local has_key = ARGV[1] == '1'
if has_key then
  local stored = redis.call('HMGET', KEYS[1], 'fp', 'number', 'instance')
  if stored[1] then
    if stored[1] ~= ARGV[2] then return {'reused'} end
    return {'replayed', tonumber(stored[2]), stored[3]}
  end
end
local n = tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if used + n > tonumber(ARGV[4]) then return {'quota', used} end
redis.call('INCRBY', KEYS[2], n)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local number = redis.call('INCR', KEYS[3])
if has_key then
  redis.call('HSET', KEYS[1], 'fp', ARGV[2], 'number', number, 'instance', ARGV[7])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  if ARGV[8] == '1' then
    redis.call('HINCRBY', KEYS[4], 'batches', 1)
    redis.call('HINCRBY', KEYS[4], 'messages', n)
    redis.call('HINCRBY', KEYS[4], 'overflow', ARGV[9])
    for i = 10, #ARGV do
      if redis.call('SETBIT', KEYS[5], ARGV[i], 1) == 1 then
        redis.call('SETBIT', KEYS[6], ARGV[i], 1)
      end
    end
    for k = 4, 6 do
      redis.call('PEXPIRE', KEYS[k], ARGV[6])
    end
  end
end
return {'accepted', number, ARGV[7]}
`)

func (s *store) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

func (s *store) runKeys(runID string) (figures, seen, seenTwice string) {
	return s.key("run", runID, "figures"), s.key("run", runID, "seen"), s.key("run", runID, "seen-twice")
}

// accept runs acceptScript for a.
func (s *store) accept(ctx context.Context, a acceptance) (verdict, error) {
	figures, seen, seenTwice := s.runKeys(a.runID)
	keys := []string{s.key("idempotency", a.scopedKey), s.key("quota", a.tokenID), s.key("batch-number"), figures, seen, seenTwice}
	args := make([]any, 0, 9+len(a.seqs))
	args = append(args, flag(a.scopedKey != ""), a.fingerprint[:], len(a.seqs), a.quota,
		max(a.quotaTTL.Milliseconds(), 1), s.ttl.Milliseconds(), a.instance, flag(a.runID != ""))
	overflowAt := len(args)
	args = append(args, 0)
	overflow := 0
	for _, seq := range a.seqs {
		if seq >= maxCountedSeq {
			overflow++
			continue
		}
		args = append(args, seq)
	}
	args[overflowAt] = overflow
	reply, err := acceptScript.Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return verdict{}, fmt.Errorf("store: accept batch: %w", err)
	}
	return parseVerdict(reply)
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// parseVerdict reads acceptScript's answer.
func parseVerdict(reply []any) (verdict, error) {
	kind, _ := reply[0].(string)
	number := func(i int) int64 {
		if i < len(reply) {
			n, _ := reply[i].(int64)
			return n
		}
		return 0
	}
	text := func(i int) string {
		if i < len(reply) {
			s, _ := reply[i].(string)
			return s
		}
		return ""
	}
	switch kind {
	case "accepted":
		return verdict{outcome: accepted, batchNumber: number(1), instance: text(2)}, nil
	case "replayed":
		return verdict{outcome: replayed, batchNumber: number(1), instance: text(2)}, nil
	case "reused":
		return verdict{outcome: keyReused}, nil
	case "quota":
		return verdict{outcome: quotaExhausted, quotaUsed: number(1)}, nil
	default:
		return verdict{}, fmt.Errorf("store: unexpected answer %v", reply)
	}
}

// runStats reads a run's figures in one transaction.
func (s *store) runStats(ctx context.Context, runID string) (endpointapi.RunStats, error) {
	figures, seen, seenTwice := s.runKeys(runID)
	var counts *redis.SliceCmd
	var unique, duplicated *redis.IntCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		counts = p.HMGet(ctx, figures, "batches", "messages", "overflow")
		unique = p.BitCount(ctx, seen, nil)
		duplicated = p.BitCount(ctx, seenTwice, nil)
		return nil
	})
	if err != nil {
		return endpointapi.RunStats{}, fmt.Errorf("store: run figures: %w", err)
	}
	field := func(i int) int64 {
		text, _ := counts.Val()[i].(string)
		n, _ := strconv.ParseInt(text, 10, 64)
		return n
	}
	return endpointapi.RunStats{
		RunID:            runID,
		Batches:          field(0),
		AcceptedMessages: field(1),
		UniqueSeqs:       unique.Val(),
		DuplicatedSeqs:   duplicated.Val(),
		Complete:         field(2) == 0,
		WindowSeconds:    int64(s.ttl.Seconds()),
	}, nil
}

// check answers whether Redis serves this client (PING after AUTH), how many
// keys it holds and how much of its memory they use. A Redis that refuses
// writes when full (noeviction) and is nearly full fails the check: a run
// started against it would be refused part way through. A Redis that does
// not report its memory (some hosted ones restrict INFO) passes on PING: a
// full one still refuses batches with 507.
func (s *store) check(ctx context.Context) (string, error) {
	addr := s.client.Options().Addr
	if err := s.client.Ping(ctx).Err(); err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	keys, err := s.client.DBSize(ctx).Result()
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", addr, err)
	}
	detail := fmt.Sprintf("redis %s, %d keys", addr, keys)
	use, err := s.memoryUse(ctx)
	if err != nil {
		return detail + ", memory not reported", nil
	}
	detail += ", " + use.String()
	if use.nearlyFull() {
		return "", fmt.Errorf("%s: nearly full, and a full store refuses batches until accepted batches' keys expire (after %s) or its operator clears it", detail, s.ttl)
	}
	return detail, nil
}

// fullShare is the share of maxmemory at which a store that refuses writes
// when full counts as nearly full. The rest is what a run of a million
// messages needs a few times over (about 3 MB at 100 messages a batch).
const fullShare = 0.95

// memoryUse is what Redis's INFO memory says about its bound.
type memoryUse struct {
	used, max int64 // bytes; max 0 is no bound
	policy    string
}

// memoryUse reads INFO memory.
func (s *store) memoryUse(ctx context.Context) (memoryUse, error) {
	info, err := s.client.InfoMap(ctx, "memory").Result()
	if err != nil {
		return memoryUse{}, fmt.Errorf("INFO memory: %w", err)
	}
	section := info["Memory"]
	var use memoryUse
	if use.used, err = strconv.ParseInt(section["used_memory"], 10, 64); err != nil {
		return memoryUse{}, fmt.Errorf("INFO memory: used_memory: %w", err)
	}
	if use.max, err = strconv.ParseInt(section["maxmemory"], 10, 64); err != nil {
		return memoryUse{}, fmt.Errorf("INFO memory: maxmemory: %w", err)
	}
	use.policy = section["maxmemory_policy"]
	return use, nil
}

func (u memoryUse) nearlyFull() bool {
	return u.max > 0 && u.policy == "noeviction" && float64(u.used) >= fullShare*float64(u.max)
}

func (u memoryUse) String() string {
	const mib = 1 << 20
	if u.max == 0 {
		return fmt.Sprintf("%.1f MiB used, no maxmemory", float64(u.used)/mib)
	}
	return fmt.Sprintf("%.1f of %.1f MiB used (%s)", float64(u.used)/mib, float64(u.max)/mib, u.policy)
}

// runOfBatch is the run of a batch id "<run>-p<partition>-o<first>-<last>"
// (docs/message-contract.md), or "" for any other id. The suffix holds only
// digits between its dashes, so reading from the right finds the run even
// when the run id has dashes of its own.
func runOfBatch(batchID string) string {
	rest, last, ok := cutLast(batchID, "-")
	if !ok || !allDigits(last) {
		return ""
	}
	rest, first, ok := cutLast(rest, "-o")
	if !ok || !allDigits(first) {
		return ""
	}
	run, partition, ok := cutLast(rest, "-p")
	if !ok || !allDigits(partition) {
		return ""
	}
	return run
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
