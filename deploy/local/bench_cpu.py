#!/usr/bin/env python3
"""CPU time per unit of a Go benchmark's sub-benchmarks, side by side.

  bench_cpu.py PACKAGE BENCHMARK [ROUNDS] [SMALL LARGE]

e.g. bench_cpu.py ./activities/deliver BenchmarkSegmentPerMessage 5

Wall time per op (what go test -bench prints) counts the time a benchmark
waits for a CPU, which on a shared machine is most of it; this counts the
CPU the process used (user + system, its GC included). Each sub-benchmark
runs with -test.benchtime SMALLx and LARGEx (default 100000 and 500000
units, e.g. messages), and the difference divided by LARGE - SMALL is the
CPU per unit, without the benchmark's set-up. Sub-benchmarks alternate in
order from round to round.
"""
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile


def cpu_seconds(binary, cwd, bench, n):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([binary, '-test.run', '^$', '-test.bench', bench, '-test.benchtime', f'{n}x'],
                   check=True, stdout=subprocess.DEVNULL, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    if len(sys.argv) not in (3, 4, 6):
        sys.exit(__doc__)
    package, benchmark = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    small, large = (int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) == 6 else (100_000, 500_000)
    binary = os.path.join(tempfile.mkdtemp(prefix='flowproof-benchcpu.'), 'bench.test')
    subprocess.run(['go', 'test', '-c', '-o', binary, package], check=True)
    listing = subprocess.run([binary, '-test.run', '^$', '-test.bench', f'^{benchmark}$', '-test.benchtime', '1x'],
                             check=True, capture_output=True, text=True, cwd=package).stdout
    subs = sorted({m.group(1) for m in re.finditer(rf'^{benchmark}/(\S+?)(-\d+)?\s', listing, re.M)})
    if not subs:
        sys.exit(f'{benchmark} has no sub-benchmarks in {package}')
    os.system('uptime')
    per_unit = {s: [] for s in subs}
    for r in range(rounds):
        for sub in (subs if r % 2 == 0 else list(reversed(subs))):
            bench = f'^{benchmark}$/^{re.escape(sub)}$'
            a, b = cpu_seconds(binary, package, bench, small), cpu_seconds(binary, package, bench, large)
            us = (b - a) / (large - small) * 1e6
            per_unit[sub].append(us)
            print(f'round {r + 1}  {sub:24s} {a:6.2f} s CPU ({small}x)  {b:6.2f} s CPU ({large}x)  {us:7.3f} µs per unit', flush=True)
    os.system('uptime')
    for sub, values in per_unit.items():
        print(f'{sub:24s} median {statistics.median(values):7.3f} µs CPU per unit, min {min(values):.3f}, max {max(values):.3f}')


if __name__ == '__main__':
    main()
