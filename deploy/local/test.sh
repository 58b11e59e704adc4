#!/usr/bin/env bash
# Runs flowproof's whole test suite: unit tests, then the integration tests
# against a real local stack on the default profile, then the secure
# profile's tests against a secure stack (Kafka with SASL_SSL and SCRAM,
# Temporal with TLS on PostgreSQL). Each stack is started once and stopped
# afterwards, also when a test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

go build -o bin/ ./deploy/local/stackctl

echo "== promtool (Debian's prometheus package) for the Prometheus configuration and alert rules"
if bin/stackctl install --only prometheus; then
  # The tests that run promtool fail rather than skip without it.
  export FLOWPROOF_REQUIRE_PROMTOOL=1
else
  echo "test.sh: promtool could not be installed (see above): the Prometheus configuration and alert rule tests are SKIPPED, NOT CHECKED" >&2
fi

echo "== chromium (Debian's package) for the HTML report's browser test"
if bin/stackctl install --only chromium; then
  # The report's browser test fails rather than skips without it.
  export FLOWPROOF_REQUIRE_CHROMIUM=1
else
  echo "test.sh: chromium could not be installed (see above): the HTML report's browser test is SKIPPED, NOT CHECKED" >&2
fi

# The secure profile's Temporal server is built from Go modules: about 12
# minutes on a fresh machine. It is built beside vet, lint and the unit
# tests, and waited for before the stack starts, so that it never competes
# with a pipeline run for the two cores.
secure_build_log="${TMPDIR:-/tmp}/flowproof-secure-build.log"
echo "== building the secure profile's Temporal server in the background (log: $secure_build_log)"
bin/stackctl install --profile secure --only temporal >"$secure_build_log" 2>&1 &
secure_build=$!

echo "== go vet"
go vet ./...
go vet -tags integration ./...
echo "== golangci-lint (.golangci.yml)"
bash deploy/local/lint.sh
echo "== workflowcheck (determinism of workflows/)"
go run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 ./workflows/...

echo "== unit tests"
go test -count=1 ./...

echo "== container image and Kubernetes manifests (deploy/cluster)"
make --no-print-directory test-cluster

echo "== waiting for the secure profile's Temporal server build"
if ! wait "$secure_build"; then
  cat "$secure_build_log" >&2
  echo "test.sh: building the secure profile's Temporal server failed (above)" >&2
  exit 1
fi
cat "$secure_build_log"

echo "== local stack, default profile"
started_here=0
# The components the tests need; a developer's worker that died does not
# make the stack one to stop afterwards.
if ! bin/stackctl status --only kafka,flink,temporal,refsvc >/dev/null 2>&1; then
  started_here=1
fi
stop_stack() {
  # A stack that was already up before the tests (a developer's) is left up.
  if [ "$started_here" = 1 ] && [ "${FLOWPROOF_KEEP_STACK:-0}" != 1 ]; then
    bin/stackctl down || true
  fi
}
trap stop_stack EXIT
# Most tests run their own workers on their own task queues; the drills
# (TestDrills) go through the stack's worker and drill worker, as make
# drills does. Prometheus scrapes the stack for the dashboard's query check
# (deploy/grafana).
bin/stackctl up --taskmanagers "${TASKMANAGERS:-3}" --with-worker --with-drills --with-prometheus

echo "== integration tests, default profile"
# -p 1: the packages share one stack on two cores; running them one at a
# time keeps their figures meaningful and their timeouts honest.
# TestEndToEnd runs on the secure profile below, where it covers every
# client's security as well; make test-integration runs it here too.
go test -tags integration -count=1 -p 1 -timeout 45m -skip '^TestEndToEnd$' ./... 2>&1 | tee "${TMPDIR:-/tmp}/flowproof-integration.log"

stop_stack
trap - EXIT
echo "== secure profile"
bash deploy/local/test-secure.sh
