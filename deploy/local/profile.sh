#!/usr/bin/env bash
# Profiles one pipeline run on the running local stack (docs/performance.md):
# the stack's CPU seconds and peak RSS per component over the run (stackctl
# usage), JFR recordings of one Kafka broker and of every TaskManager, and a
# CPU profile of the stack's worker, all taken in the same window of the run.
#
#   MESSAGES=1000000 bash deploy/local/profile.sh
#
# The stack's worker must serve Go's profiles (it is off by default):
#   FLOWPROOF_WORKER_PPROF=1 bin/stackctl up --only worker
# PROFILE_DELAY (seconds after the start, default 40) and PROFILE_SECONDS
# (default 60) place the window; OUT (default a new dir under /tmp) gets
# the files. Reading them: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

messages=${MESSAGES:-1000000}
delay=${PROFILE_DELAY:-40}
seconds=${PROFILE_SECONDS:-60}
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/flowproof-profile.XXXXXX")}
mkdir -p "$out"
stack_dir=${FLOWPROOF_STACK_DIR:-$HOME/.local/share/flowproof/stack}
pprof_url=http://127.0.0.1:19464/debug/pprof

go build -o bin/ ./deploy/local/stackctl ./starter
if ! curl -fsS -o /dev/null "$pprof_url/"; then
  echo "profile.sh: the stack's worker serves no profiles at $pprof_url; restart it with FLOWPROOF_WORKER_PPROF=1 bin/stackctl up --only worker" >&2
  exit 1
fi

# The pid a pid file records; stackctl usage has checked its start time.
pid_of() { cut -d' ' -f1 "$stack_dir/run/$1.pid"; }

# Every thread's CPU ticks (utime, stime) of a process, "tid|name|utime|stime":
# the JVMs name their threads, so two of these show where a JVM's CPU went,
# GC and JIT threads included, which JFR's execution samples leave out.
thread_ticks() {
  local pid=$1 t s comm rest
  for t in /proc/"$pid"/task/*; do
    s=$(cat "$t/stat" 2>/dev/null) || continue
    comm=${s#*(}
    comm=${comm%)*}
    rest=${s##*) }
    read -r -a f <<<"$rest"
    echo "${t##*/}|$comm|${f[11]}|${f[12]}"
  done
}

thread_snapshot() {
  local name
  for f in "$stack_dir"/run/kafka-*.pid "$stack_dir"/run/flink-*.pid; do
    name=$(basename "$f" .pid)
    thread_ticks "$(pid_of "$name")" >"$out/threads-$name.$1.txt" || true
  done
}

machine_state() {
  echo "== $(date -u +%FT%TZ) $(cat /proc/loadavg)"
  ps -eo pid,pcpu,etime,comm --sort=-pcpu | head -15
}

machine_state >"$out/machine.txt"
bin/stackctl usage --json --reset-peak >"$out/usage-before.json"
bin/starter run --messages "$messages" --result-file "$out/result.json" >"$out/run.txt" 2>"$out/run-progress.txt" &
run_pid=$!

sleep "$delay"
machine_state >>"$out/machine.txt"
jvms=(kafka-1)
for f in "$stack_dir"/run/flink-taskmanager-*.pid; do
  jvms+=("$(basename "$f" .pid)")
done
thread_snapshot start
for name in "${jvms[@]}"; do
  jcmd "$(pid_of "$name")" JFR.start name=flowproof-profile settings=default duration="${seconds}s" filename="$out/$name.jfr" >"$out/$name.jcmd.txt"
done
curl -fsS -o "$out/worker.pprof" "$pprof_url/profile?seconds=$seconds"
thread_snapshot end
sleep 5 # the JVMs write their recordings when the duration ends
machine_state >>"$out/machine.txt"

status=0
wait "$run_pid" || status=$?
machine_state >>"$out/machine.txt"
bin/stackctl usage --since "$out/usage-before.json" --result "$out/result.json" --json >"$out/usage-report.json"
bin/stackctl usage --since "$out/usage-before.json" --result "$out/result.json" | tee "$out/usage-report.txt"
tail -n 40 "$out/run.txt"
echo "profile.sh: run exit status $status; files in $out"
exit "$status"
