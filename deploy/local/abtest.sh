#!/usr/bin/env bash
# Side-by-side comparison of revisions of the worker on the running local stack:
#   [MESSAGES=300000] [ROUNDS=2] [FLAGS_a=... FLAGS_b=...] bash deploy/local/abtest.sh REV_A REV_B [REV_C ...]
# builds bin/worker of each revision, runs each on a task queue of its own,
# and alternates runs (A, B, ... then again, ROUNDS times), printing each
# run's status and the stack's CPU per message (stackctl usage around each
# run). Changes that live in the worker's activities and workflows, such as
# the Flink jobs' properties or the topics' partitions, compare this way;
# broker settings do not. FLAGS_a, FLAGS_b, ... are extra starter flags of
# each arm, so one revision can be compared with itself under two inputs.
# The workers run outside the stack: the report counts them among other
# processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
(($# >= 2)) || { echo "usage: [MESSAGES=n] [ROUNDS=n] $0 REV_A REV_B [REV_C ...]" >&2; exit 2; }
revs=("$@") messages=${MESSAGES:-300000} rounds=${ROUNDS:-2}
labels=(a b c d e f g h)
out=$(mktemp -d)
go build -o bin/ ./deploy/local/stackctl ./starter
pids=()
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  for i in "${!revs[@]}"; do git worktree remove --force "$out/src-${labels[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
key="${FLOWPROOF_STACK_DIR:-$HOME/.local/share/flowproof/stack}/data/worker/token.key"
names=""
for i in "${!revs[@]}"; do
  v=${labels[$i]}
  git worktree add --detach "$out/src-$v" "${revs[$i]}" >/dev/null
  (cd "$out/src-$v" && go build -o "$out/worker-$v" ./worker)
  "$out/worker-$v" --task-queue "abtest-$v" --metrics-addr "" --token-key-file "$key" \
    --reference-endpoint-url "${FLOWPROOF_ENDPOINT_URL:-http://127.0.0.1:18091}" >"$out/worker-$v.log" 2>&1 &
  pids+=($!)
  names+="$(git rev-parse --short "${revs[$i]}"):$v "
done
sleep 3
for round in $(seq "$rounds"); do
  for i in "${!revs[@]}"; do
    v=${labels[$i]}
    d="$out/$v-$round"; mkdir -p "$d"
    bin/stackctl usage --json --reset-peak >"$d/before.json"
    flags_var="FLAGS_$v"
    # shellcheck disable=SC2086 # the flags are words
    bin/starter run --task-queue "abtest-$v" --messages "$messages" --id "abtest-$v-$round-$(date +%s)" ${!flags_var:-} \
      --progress-every 60s --result-file "$d/result.json" >"$d/run.txt" 2>&1 || true
    bin/stackctl usage --since "$d/before.json" --result "$d/result.json" >"$d/usage.txt" 2>&1 || true
    echo "== $v (${names% }) round $round: $(grep -m1 '^status' "$d/run.txt" | tr -s ' ') | $(grep -m1 'per message' "$d/usage.txt")"
    # The run's stage table: each stage's name and duration on one line.
    echo "   $(grep -m1 '^total time' "$d/run.txt" | tr -s ' '); stages: $(awk '/^ +stage +messages/ {f = 1; next} f && NF == 0 {exit} f {printf "%s %s  ", $1, $(NF - 1)}' "$d/run.txt")"
    grep -E '^(kafka|flink|worker|temporal) |^machine busy|^core (speed|pace)' "$d/usage.txt" || true
  done
done
echo "(runs and usage reports in $out)"
