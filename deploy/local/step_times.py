#!/usr/bin/env python3
"""Medians of the worker's per-chunk and per-segment step times, read from
worker log lines on stdin (zap JSON): the "chunk committed" lines of
ProduceChunk (DurationMillis) and the "segment delivered" lines of
DeliverSegment (Took, Fence, Check, Send, Commit, in seconds). freshab.sh
feeds it the lines one run appended to the stack's worker log.
"""
import json
import sys


def quantile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


chunks, segments = [], {}
for line in sys.stdin:
    if '"chunk committed"' not in line and '"segment delivered"' not in line:
        continue
    try:
        entry = json.loads(line)
    except ValueError:
        continue
    if entry.get("msg") == "chunk committed":
        chunks.append(entry["DurationMillis"])
    elif entry.get("msg") == "segment delivered":
        for step in ("Took", "Fence", "Check", "Send", "Commit"):
            segments.setdefault(step, []).append(entry[step] * 1000)

if chunks:
    print(f"steps     chunk: {len(chunks)} chunks, median {quantile(chunks, 0.5):.0f} ms, p90 {quantile(chunks, 0.9):.0f} ms")
if segments:
    print(f"steps     segment: {len(segments['Took'])} segments, median / p90 in ms: " +
          ", ".join(f"{step.lower()} {quantile(v, 0.5):.0f} / {quantile(v, 0.9):.0f}" for step, v in segments.items()))
