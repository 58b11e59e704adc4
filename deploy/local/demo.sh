#!/usr/bin/env bash
# The main job on the local stack: bring the stack up, start a worker, run
# the default pipeline (1,000,000 messages, or MESSAGES=n) to a verified
# result, and print it. The stack stays up afterwards so the run can be
# looked at in the Temporal UI (http://127.0.0.1:18233); `make down` stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."

go build -o bin/ ./deploy/local/stackctl ./starter
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
trap stop_worker EXIT
bin/stackctl up --taskmanagers "${TASKMANAGERS:-3}" --with-worker

args=()
if [ -n "${MESSAGES:-}" ]; then
  args+=(--messages "$MESSAGES")
fi
bin/starter run "${args[@]}" ${STARTER_FLAGS:-}
