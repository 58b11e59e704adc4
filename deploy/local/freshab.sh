#!/usr/bin/env bash
# Side-by-side comparison of revisions of the whole local stack, each run on
# a stack started afresh, as on a new machine:
#   [PROFILE=secure] [MESSAGES=n] [ROUNDS=2] [TASKMANAGERS=1] [FLAGS_a=... FLAGS_b=...] bash deploy/local/freshab.sh REV_A REV_B [REV_C ...]
# Before every run it stops the stack and deletes the stack's Kafka data
# (its topics are a run's scratch; a fresh machine has none), then runs that
# revision's make demo (deploy/local/demo.sh) from a worktree, so the
# brokers, Flink and the worker of the revision start cold and Kafka's
# internal topics are created by its settings. Rounds alternate the order
# (A B, then B A). This is for what abtest.sh cannot compare: broker and
# Flink settings, the stack's own processes. FLAGS_a, FLAGS_b, ... are
# extra starter flags of each arm (the same revision twice with other
# inputs compares inputs on fresh stacks). Each run takes a few minutes.
# PROFILE=secure runs every arm on the secure profile, in its stack dir
# (deploy/local/stackprofile.sh; each arm's demo.sh finds it the same way:
# exported, it would make stackctl env ask the emptied stack for its Kafka
# password).
set -euo pipefail
cd "$(dirname "$0")/../.."
(($# >= 2)) || { echo "usage: [PROFILE=secure] [MESSAGES=n] [ROUNDS=n] $0 REV_A REV_B [REV_C ...]" >&2; exit 2; }
revs=("$@") rounds=${ROUNDS:-2}
labels=(a b c d e f g h)
go build -o bin/ ./deploy/local/stackctl
stack_dir=$(. deploy/local/stackprofile.sh && printf '%s' "$FLOWPROOF_STACK_DIR")
out=$(mktemp -d)
cleanup() {
  for i in "${!revs[@]}"; do git worktree remove --force "$out/src-${labels[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
names=""
for i in "${!revs[@]}"; do
  v=${labels[$i]}
  git worktree add --detach "$out/src-$v" "${revs[$i]}" >/dev/null
  # stackctl stops the stack before each run; demo.sh builds the rest.
  (cd "$out/src-$v" && go build -o bin/ ./deploy/local/stackctl)
  names+="$(git rev-parse --short "${revs[$i]}"):$v "
done
for round in $(seq "$rounds"); do
  order=("${!revs[@]}")
  if ((round % 2 == 0)); then
    mapfile -t order < <(printf '%s\n' "${order[@]}" | tac)
  fi
  for i in "${order[@]}"; do
    v=${labels[$i]}
    log="$out/$v-$round.log"
    (cd "$out/src-$v" && FLOWPROOF_STACK_DIR="$stack_dir" bin/stackctl down >/dev/null 2>&1) || true
    rm -rf "$stack_dir/data/kafka"
    worker_log_size=$(stat -c %s "$stack_dir/logs/worker.log" 2>/dev/null || echo 0)
    echo "== $v (${names% }) round $round, $(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    flags_var="FLAGS_$v"
    (cd "$out/src-$v" && TASKMANAGERS="${TASKMANAGERS:-1}" STARTER_FLAGS="${!flags_var:-}" bash deploy/local/demo.sh >"$log" 2>&1) || echo "(make demo failed: $log)"
    grep -E '^(status|total time|end-to-end latency|backpressure) |^ *(prepare|flink|produce|deliver|verify|cleanup) |^(kafka|flink|worker|temporal|other processes) |^machine busy|^core (speed|pace)|^CPU per message' "$log" || true
    # The worker log is appended to: this run's lines follow its size before.
    tail -c +$((worker_log_size + 1)) "$stack_dir/logs/worker.log" 2>/dev/null | python3 deploy/local/step_times.py || true
  done
done
(cd "$out/src-${labels[0]}" && FLOWPROOF_STACK_DIR="$stack_dir" bin/stackctl down >/dev/null 2>&1) || true
echo "(make demo logs in $out)"
