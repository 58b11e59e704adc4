#!/usr/bin/env bash
# make bench: flowproof's benchmarks in one run, on a shared and noisy
# machine, so every claim is a ratio of two things measured side by side in
# this run, printed next to the absolute figures.
#
#  1. Go micro-benchmarks of every package that has them (no stack needed),
#     BENCH_COUNT runs each, summarised by benchstat when it can be built.
#  2. On the local stack (deploy/local/bench): flowproof's ProduceChunk
#     against Kafka's ProducerPerformance, flowproof's Verify against Kafka's
#     ConsumerPerformance, and a bounded load on the running endpoint; then
#     one verified pipeline run of BENCH_E2E_MESSAGES (default 200,000) on
#     the stack's worker, whose end-to-end rate is set against the slowest
#     of those stages alone; then one summary table.
#
# The components a step needs are started if they are down (the whole stack
# and a worker for the pipeline run; only Kafka, Redis and the reference
# services with BENCH_E2E_MESSAGES=0) and stopped again afterwards; whatever
# was already running stays as it was. Settings for step 2 go in BENCH_FLAGS
# (see `bin/bench -h`), e.g. BENCH_FLAGS='-records 100000 -rounds 1'.
set -euo pipefail
cd "$(dirname "$0")/../.."

# benchstat's module version, pinned so the summary reads the same everywhere.
benchstat_version="v0.0.0-20260908200009-22c9c6c9d4da"

out_dir="$(mktemp -d "${TMPDIR:-/tmp}/flowproof-bench.XXXXXX")"
started_here=()
finish() {
  if ((${#started_here[@]})); then
    bin/stackctl down --only "$(IFS=,; echo "${started_here[*]}")" || true
  fi
  rm -rf "$out_dir"
}
trap finish EXIT

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== Go micro-benchmarks"
# Each package's test binary is built once and run BENCH_COUNT times in
# turn, so the runs of different benchmarks interleave and a change in the
# machine's load spreads over all of them (go test -count would run each
# benchmark's repetitions back to back).
mapfile -t bench_packages < <(grep -rl --include='*_test.go' --exclude-dir=.git -E '^func Benchmark' . | xargs -n1 dirname | sort -u)
for package in "${bench_packages[@]}"; do
  go test -c -o "$out_dir/$(echo "${package#./}" | tr / _).test" "$package"
done
for ((run = 1; run <= ${BENCH_COUNT:-6}; run++)); do
  for package in "${bench_packages[@]}"; do
    # go test runs a test binary in its package directory; so does this.
    (cd "$package" && "$out_dir/$(echo "${package#./}" | tr / _).test" -test.run '^$' -test.bench . -test.benchmem)
  done
done | tee "$out_dir/micro.txt"
echo "== benchstat"
if ! go run "golang.org/x/perf/cmd/benchstat@$benchstat_version" "$out_dir/micro.txt" 2>"$out_dir/benchstat.err"; then
  echo "(benchstat unavailable: $(tail -1 "$out_dir/benchstat.err"); the raw figures are above)"
fi

echo "== local stack"
e2e_messages="${BENCH_E2E_MESSAGES:-200000}"
go build -o bin/ ./deploy/local/stackctl ./deploy/local/bench ./starter
needed=(kafka redis refsvc)
if [ "$e2e_messages" != 0 ]; then
  # The pipeline run needs all of the stack, and a worker polling its task queue.
  needed=(kafka flink temporal redis refsvc worker)
fi
for component in "${needed[@]}"; do
  if ! bin/stackctl status --only "$component" >/dev/null 2>&1; then
    started_here+=("$component")
  fi
done
if ((${#started_here[@]})); then
  # The TaskManager count matters only when Flink starts here (make demo's
  # default, one); otherwise up keeps the one of the last up.
  taskmanagers=()
  if [[ " ${started_here[*]} " == *" flink "* ]]; then
    taskmanagers=(--taskmanagers "${TASKMANAGERS:-1}")
  fi
  bin/stackctl up "${taskmanagers[@]}" --only "$(IFS=,; echo "${started_here[*]}")"
else
  echo "up already: ${needed[*]}"
fi

# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags
bin/bench -micro "$out_dir/micro.txt" -workdir "$out_dir" -e2e-messages "$e2e_messages" ${BENCH_FLAGS:-}
