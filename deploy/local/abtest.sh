#!/usr/bin/env bash
# Side-by-side A/B of two revisions of the worker on the running local stack:
#   bash deploy/local/abtest.sh REV_A REV_B [MESSAGES] [ROUNDS]
# builds bin/worker of each revision, runs each on a task queue of its own,
# and alternates runs (A then B, ROUNDS times, 300,000 messages by default),
# printing each run's status and the stack's CPU per message (stackctl usage
# around each run). Changes that live in the worker's activities, such as the
# Flink jobs' properties, compare this way; broker settings do not. The two
# workers run outside the stack: the report counts them among other processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
rev_a=$1 rev_b=$2 messages=${3:-300000} rounds=${4:-2}
out=$(mktemp -d)
go build -o bin/ ./deploy/local/stackctl ./starter
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; git worktree remove --force "$out/src-a" 2>/dev/null || true; git worktree remove --force "$out/src-b" 2>/dev/null || true; }
trap cleanup EXIT
key="${FLOWPROOF_STACK_DIR:-$HOME/.local/share/flowproof/stack}/data/worker/token.key"
for v in a b; do
  rev_var="rev_$v"
  git worktree add --detach "$out/src-$v" "${!rev_var}" >/dev/null
  (cd "$out/src-$v" && go build -o "$out/worker-$v" ./worker)
  "$out/worker-$v" --task-queue "abtest-$v" --metrics-addr "" --token-key-file "$key" \
    --reference-endpoint-url "${FLOWPROOF_ENDPOINT_URL:-http://127.0.0.1:18091}" >"$out/worker-$v.log" 2>&1 &
  pids+=($!)
done
sleep 3
for round in $(seq "$rounds"); do
  for v in a b; do
    d="$out/$v-$round"; mkdir -p "$d"
    bin/stackctl usage --json --reset-peak >"$d/before.json"
    bin/starter run --task-queue "abtest-$v" --messages "$messages" --id "abtest-$v-$round-$(date +%s)" \
      --progress-every 60s --result-file "$d/result.json" >"$d/run.txt" 2>&1 || true
    bin/stackctl usage --since "$d/before.json" --result "$d/result.json" >"$d/usage.txt" 2>&1 || true
    echo "== $v ($(git rev-parse --short "${rev_a}"):a $(git rev-parse --short "${rev_b}"):b) round $round: $(grep -m1 '^status' "$d/run.txt" | tr -s ' ') | $(grep -m1 'per message' "$d/usage.txt")"
    grep -E '^(kafka|flink|worker|temporal) ' "$d/usage.txt" || true
  done
done
echo "(runs and usage reports in $out)"
