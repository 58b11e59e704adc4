#!/usr/bin/env bash
# The main job on the local stack: bring the stack up, start a worker, run
# the default pipeline (1,000,000 messages, or MESSAGES=n) to a verified
# result, and print it. The stack stays up afterwards so the run can be
# looked at in the Temporal UI (http://127.0.0.1:18233); `make down` stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."

go build -o bin/ ./deploy/local/stackctl ./worker ./starter
bin/stackctl up --taskmanagers "${TASKMANAGERS:-3}"

stack_dir="${FLOWPROOF_STACK_DIR:-$HOME/.local/share/flowproof/stack}"
mkdir -p "$stack_dir/logs"
worker_log="$stack_dir/logs/worker.log"
bin/worker >>"$worker_log" 2>&1 &
worker_pid=$!
trap 'kill -TERM "$worker_pid" 2>/dev/null; wait "$worker_pid" 2>/dev/null || true' EXIT
echo "worker started (pid $worker_pid, log $worker_log)"

args=()
if [ -n "${MESSAGES:-}" ]; then
  args+=(--messages "$MESSAGES")
fi
bin/starter run "${args[@]}" ${STARTER_FLAGS:-}
