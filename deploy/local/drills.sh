#!/usr/bin/env bash
# Every fault drill on the local stack, one after the other, at 200,000
# messages each (MESSAGES=n for another size, DRILL_NAMES="kill-broker ..." for a
# subset), and one table at the end: drill, injected at, recovery time,
# status, per-hop missing/duplicated. The stack, its worker and its drill
# worker stay up afterwards; `make down` stops them. docs/drills.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

go build -o bin/ ./deploy/local/stackctl ./starter
bin/stackctl up --taskmanagers "${TASKMANAGERS:-3}" --with-worker --with-drills

names=(--all)
if [ -n "${DRILL_NAMES:-}" ]; then
  read -r -a names <<<"$DRILL_NAMES"
fi
out="${TMPDIR:-/tmp}/flowproof-drills.txt"
set +e
bin/starter drill --messages "${MESSAGES:-200000}" "${names[@]}" | tee "$out"
code=${PIPESTATUS[0]}
set -e
echo "(table saved in $out)"
exit "$code"
