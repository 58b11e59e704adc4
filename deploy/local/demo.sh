#!/usr/bin/env bash
# The main job on the local stack: bring the stack up, start a worker, run
# the default pipeline (1,000,000 messages, or MESSAGES=n) to a verified
# result, and print it. The stack stays up afterwards so the run can be
# looked at in the Temporal UI (http://127.0.0.1:18233); `make down` stops it.
# After the result comes what the run cost: CPU seconds and peak RSS per
# component of the stack, and CPU per message (stackctl usage, from /proc).
# PROFILE=secure runs it on the secure profile (Kafka with SASL_SSL and
# SCRAM, Temporal with TLS), in a stack dir of its own (see stackprofile.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

go build -o bin/ ./deploy/local/stackctl ./starter
. deploy/local/stackprofile.sh
# Both profiles' stacks use the same ports.
if stack_running "$other_stack_dir"; then
  echo "make demo PROFILE=$stack_profile: a stack of the other profile runs in $other_stack_dir; stop it first (FLOWPROOF_STACK_DIR=$other_stack_dir bin/stackctl down; its data stays)" >&2
  exit 1
fi
# A worker that was already running (make up WORKER=1) stays; one started
# here (stackctl builds bin/worker) is stopped again when the demo ends.
worker_started_here=0
if ! bin/stackctl status --only worker >/dev/null 2>&1; then
  worker_started_here=1
fi
stop_worker() {
  if [ "$worker_started_here" = 1 ]; then
    bin/stackctl down --only worker || true
  fi
}
usage_dir=$(mktemp -d)
pace_pid=
stop_pace() {
  if [ -n "$pace_pid" ]; then
    kill "$pace_pid" 2>/dev/null || true
    wait "$pace_pid" 2>/dev/null || true
    pace_pid=
  fi
}
cleanup() {
  stop_pace
  rm -rf "$usage_dir"
  stop_worker
}
trap cleanup EXIT
# The cores' pace through the run, sampled every 5 s (stackctl pace): started
# this early so that its one-time set-up is done before the run starts.
bin/stackctl pace --out "$usage_dir/pace.jsonl" &
pace_pid=$!
# One TaskManager (4 slots: the two jobs at up to parallelism 2) unless
# TASKMANAGERS says otherwise: each TaskManager JVM compiles the same job code
# for itself, and on a fresh stack that JIT work is most of Flink's CPU. Two
# fresh-stack runs of each, alternating: Flink 50-51 CPU s with one against
# 81 with three, the run 3m5s-3m21s against 3m30s (docs/performance.md).
bin/stackctl up --profile "$stack_profile" --taskmanagers "${TASKMANAGERS:-1}" --with-worker
# The starter connects as the profile says (Temporal's TLS in the secure one).
stack_env=$(bin/stackctl env)
eval "$stack_env"

args=()
if [ -n "${MESSAGES:-}" ]; then
  args+=(--messages "$MESSAGES")
fi
# The snapshot resets the processes' peak RSS, so the report's peaks are the run's.
bin/stackctl usage --json --reset-peak >"$usage_dir/before.json"
status=0
bin/starter run "${args[@]}" --result-file "$usage_dir/result.json" ${STARTER_FLAGS:-} || status=$?
stop_pace
if [ -s "$usage_dir/result.json" ]; then
  bin/stackctl usage --since "$usage_dir/before.json" --result "$usage_dir/result.json" --pace "$usage_dir/pace.jsonl" || true
fi
exit "$status"
