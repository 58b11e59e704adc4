#!/usr/bin/env bash
# Runs flowproof's whole test suite: unit tests, then the integration and
# end-to-end tests against a real local stack that is started once for the
# whole run and stopped afterwards, also when a test fails.
set -euo pipefail
cd "$(dirname "$0")/../.."

echo "== go vet"
go vet ./...
go vet -tags integration ./...
echo "== golangci-lint (.golangci.yml)"
bash deploy/local/lint.sh
echo "== workflowcheck (determinism of workflows/)"
go run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 ./workflows/...

echo "== promtool (Debian's prometheus package) for the Prometheus configuration and alert rules"
go build -o bin/ ./deploy/local/stackctl
if bin/stackctl install --only prometheus; then
  # The tests that run promtool fail rather than skip without it.
  export FLOWPROOF_REQUIRE_PROMTOOL=1
else
  echo "test.sh: promtool could not be installed (see above): the Prometheus configuration and alert rule tests are SKIPPED, NOT CHECKED" >&2
fi

echo "== unit tests"
go test -count=1 ./...

echo "== container image and Kubernetes manifests (deploy/cluster)"
make --no-print-directory test-cluster

echo "== local stack"
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

echo "== integration and end-to-end tests"
# -p 1: the packages share one stack on two cores; running them one at a
# time keeps their figures meaningful and their timeouts honest.
go test -tags integration -count=1 -p 1 -timeout 45m ./... 2>&1 | tee "${TMPDIR:-/tmp}/flowproof-integration.log"

