#!/usr/bin/env bash
# The integration tests that matter for the secure profile, on a secure
# stack of its own: Kafka with SASL_SSL and SCRAM (and Temporal with TLS),
# in a stack dir of its own (see stackprofile.sh), so the default stack's data
# survives. A default stack that runs is stopped first and started again
# afterwards (with its worker if it had one), also when a test fails; the
# secure stack is stopped afterwards if it was started here
# (FLOWPROOF_KEEP_STACK=1 keeps it).
set -euo pipefail
cd "$(dirname "$0")/../.."

go build -o bin/ ./deploy/local/stackctl
PROFILE=secure
. deploy/local/stackprofile.sh

restore_default=0
restore_flags=()
if stack_running "$default_stack_dir"; then
  restore_default=1
  if FLOWPROOF_STACK_DIR="$default_stack_dir" bin/stackctl status --only worker >/dev/null 2>&1; then
    restore_flags+=(--with-worker)
  fi
  echo "== stopping the default stack in $default_stack_dir (its data stays)"
  FLOWPROOF_STACK_DIR="$default_stack_dir" bin/stackctl down
fi
# A secure stack that was already up (a developer's) is left up.
started_here=0
if ! stack_running "$secure_stack_dir"; then
  started_here=1
fi
finish() {
  local secure_stopped=0
  if [ "$started_here" = 1 ] && [ "${FLOWPROOF_KEEP_STACK:-0}" != 1 ]; then
    echo "== stopping the secure stack"
    bin/stackctl down && secure_stopped=1
  fi
  # The default stack needs the ports the secure one holds.
  if [ "$restore_default" = 1 ] && [ "$secure_stopped" = 1 ]; then
    echo "== starting the default stack again"
    FLOWPROOF_STACK_DIR="$default_stack_dir" bin/stackctl up "${restore_flags[@]}" || true
  fi
}
trap finish EXIT

echo "== secure stack in $FLOWPROOF_STACK_DIR"
bin/stackctl up --profile secure --taskmanagers "${TASKMANAGERS:-3}"
# The clients' settings: Kafka's TLS and SCRAM (the local stack's own
# generated password), Temporal's TLS, FLOWPROOF_STACK_PROFILE=secure.
secure_env=$(bin/stackctl env)
eval "$secure_env"

echo "== secure-profile integration tests"
failed=()
run() {
  local pkg=$1 pattern=$2
  if ! go test -tags integration -count=1 -p 1 -timeout 30m -run "$pattern" "$pkg"; then
    failed+=("$pkg -run $pattern")
  fi
}
run ./deploy/local/stackctl/ 'TestSecureKafkaServes'
run ./deploy/local/stackctl/ 'TestSecureTemporal|TestSecureStackStatus'
run ./activities/preflight/ 'TestCheckHealthOfTheLocalStack'
run ./workflows/ '^TestEndToEnd$'
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED on the secure profile: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "== secure profile: all passed"
