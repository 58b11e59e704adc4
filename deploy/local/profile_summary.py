#!/usr/bin/env python3
"""Reads what deploy/local/profile.sh wrote (docs/performance.md).

  profile_summary.py threads START.txt END.txt   CPU per thread group of a JVM between two thread snapshots
  profile_summary.py jfr FILE.jfr [TOP]          a JFR recording's execution samples: by thread, top frame, whole stack
  profile_summary.py flink FILE.jfr... [--job S] a TaskManager's samples by kind of work (only threads whose name has S)

Needs the JDK's `jfr` tool on PATH.
"""
import collections
import re
import subprocess
import sys

# Kinds of work in a Flink SQL TaskManager, by the first frame from the top
# of the stack that names one.
FLINK_WORK = [
    ('copy between chained operators (object reuse off)', ['Serializer.copy', 'BinaryStringData.copy', 'CopyingChainingOutput.pushToOperator']),
    ('MD5 (correlation id)', ['sun.security.provider.MD5', 'java.security.MessageDigest']),
    ('JSON serialise (sink)', ['JsonRowDataSerializationSchema', 'RowDataToJsonConverters', 'JsonGenerator', 'ObjectNode', 'node.']),
    ('Kafka producer send/batching', ['KafkaProducer.doSend', 'KafkaProducer.send', 'producer.internals']),
    ('JSON parse (source)', ['JsonParser', 'JsonParserToRowDataConverters', 'ByteQuadsCanonicalizer']),
    ('Kafka consumer fetch/decode', ['clients.consumer', 'common.record']),
    ('generated SQL code (Calc/Correlate)', ['StreamExecCalc', 'StreamExecCorrelate', 'TableFunctionCollector', 'Correlate']),
]


def group_name(thread):
    """A thread's group: its name without trailing numbers (GC Thread#3 -> GC Thread)."""
    return re.sub(r'[-_ #]?\d+(-\d+)*$', '', thread).strip() or thread


def samples(path):
    """(thread, frames top first, as Class.method) of every execution sample."""
    out = subprocess.run(['jfr', 'print', '--events', 'jdk.ExecutionSample', '--stack-depth', '64', path],
                         capture_output=True, text=True, check=True).stdout
    for block in out.split('jdk.ExecutionSample {')[1:]:
        m = re.search(r'sampledThread = "([^"]*)"', block)
        stack = block.split('stackTrace = [', 1)[1].split('\n  ]', 1)[0] if 'stackTrace = [' in block else ''
        frames = []
        for line in stack.split('\n'):
            line = re.sub(r' line: \d+.*$', '', line.strip())
            if line and line != '...':
                frames.append(re.sub(r'\(.*\)$', '', line))
        yield (m.group(1) if m else '?'), frames


def show(title, counter, n, top):
    print(f'\n{title}')
    for key, c in counter.most_common(top):
        print(f'  {100 * c / n:5.1f}%  {c:6d}  {key}')


def jfr(path, top=25):
    all_samples = list(samples(path))
    n = max(len(all_samples), 1)
    print(f'{path}: {len(all_samples)} execution samples')
    show('threads:', collections.Counter(group_name(t) for t, _ in all_samples), n, 15)
    show('top frame (self):', collections.Counter(f[0] for _, f in all_samples if f), n, top)
    anywhere = collections.Counter()
    for _, frames in all_samples:
        anywhere.update(set(frames))
    show('anywhere on the stack (inclusive):', anywhere, n, top + 15)


def flink(paths, job=''):
    kinds = collections.Counter()
    for path in paths:
        for thread, frames in samples(path):
            if job and job not in thread:
                continue
            kinds[next((name for f in frames for name, keys in FLINK_WORK if any(k in f for k in keys)), 'other')] += 1
    n = sum(kinds.values())
    print(f'{n} execution samples{" of threads named *" + job + "*" if job else ""} in {" ".join(paths)}')
    show('kind of work (first frame from the top that names one):', kinds, max(n, 1), 20)


def threads(start, end):
    def load(path):
        ticks = {}
        for line in open(path):
            tid, name, user, system = line.rstrip('\n').rsplit('|', 3)
            ticks[tid] = (name, int(user) + int(system))
        return ticks
    before, after = load(start), load(end)
    groups = collections.Counter()
    for tid, (name, ticks) in after.items():
        groups[group_name(name)] += ticks - before.get(tid, (name, 0))[1]
    total = sum(groups.values())
    print(f'{end}: {total / 100:.1f} CPU s in threads alive at both snapshots or started between')
    for name, ticks in groups.most_common(15):
        print(f'  {ticks / 100:7.1f} s  {100 * ticks / max(total, 1):5.1f}%  {name}')


if __name__ == '__main__':
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == 'threads':
        threads(args[1], args[2])
    elif len(args) >= 2 and args[0] == 'jfr':
        jfr(args[1], int(args[2]) if len(args) > 2 else 25)
    elif len(args) >= 2 and args[0] == 'flink':
        job = ''
        if '--job' in args:
            i = args.index('--job')
            job = args[i + 1]
            args = args[:i] + args[i + 2:]
        flink(args[1:], job)
    else:
        sys.exit(__doc__)
