#!/usr/bin/env bash
# Side-by-side comparison of revisions' producers on the running stack:
#   [PAIRS=3] [BENCH_FLAGS=...] bash deploy/local/benchab.sh REV_A REV_B
# Builds bin/bench of each revision in a worktree and runs its producer
# comparison (flowproof's ProduceChunk in chunks and as one chunk, Kafka's
# ProducerPerformance with and without transactions; no consumers, endpoint
# or pipeline run) PAIRS times, alternating which revision goes first, so
# both see the same brokers and the same neighbours. Each bench run is two
# rounds of its own (-rounds 2); the lines printed are flowproof's rounds
# (records/s, mean chunk time) and its summary's.
# Needs the stack's Kafka up (bin/stackctl up --only kafka).
set -euo pipefail
cd "$(dirname "$0")/../.."
(($# == 2)) || { echo "usage: [PAIRS=n] [BENCH_FLAGS=...] $0 REV_A REV_B" >&2; exit 2; }
out=$(mktemp -d)
cleanup() {
  for v in a b; do git worktree remove --force "$out/src-$v" 2>/dev/null || true; done
}
trap cleanup EXIT
revs=("$1" "$2") labels=(a b)
for i in 0 1; do
  v=${labels[$i]}
  git worktree add --detach "$out/src-$v" "${revs[$i]}" >/dev/null
  (cd "$out/src-$v" && go build -o "$out/bench-$v" ./deploy/local/bench)
done
for pair in $(seq "${PAIRS:-3}"); do
  order=(0 1)
  ((pair % 2 == 0)) && order=(1 0)
  for i in "${order[@]}"; do
    v=${labels[$i]}
    echo "== $v ($(git rev-parse --short "${revs[$i]}")) pair $pair, $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    # shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
    "$out/bench-$v" -consumers=false -endpoint-messages 0 -e2e-messages 0 -rounds 2 ${BENCH_FLAGS:-} 2>&1 |
      grep -E '^flowproof ProduceChunk:|^produce: flowproof|^chunked producer'
  done
done
