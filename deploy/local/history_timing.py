#!/usr/bin/env python3
"""What Temporal's scheduling costs a workflow, read from a recorded history
(docs/flink-vs-temporal.md).

  history_timing.py HISTORY.json...

HISTORY.json is `temporal workflow show -w ID -o json`, as in
workflows/testdata. For each file it prints the events per activity, and in
milliseconds (min / median / max):

- scheduled -> started: how long an activity task waited for a worker;
- result -> next start: from an activity's completion to the start of the
  activity that the workflow scheduled in answer to it (the workflow task
  in between included): the gap a workflow that runs its steps one after
  another pays per step;
- started -> completed, per activity type: the work itself.

Every figure is a difference of the server's event times; nothing is
estimated. They depend on how busy the machine was when it was recorded.
"""
import collections
import datetime
import json
import statistics
import sys


def seconds(event):
    """The event's time as Unix seconds, to the nanosecond the server wrote."""
    stamp = event['eventTime'].rstrip('Z')
    whole, _, fraction = stamp.partition('.')
    t = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float('0.' + (fraction or '0'))


def spread(millis):
    if not millis:
        return '-'
    return 'n=%d  %.0f / %.0f / %.0f ms' % (len(millis), min(millis), statistics.median(millis), max(millis))


def summarise(path):
    with open(path) as f:
        events = json.load(f)['events']
    by_id = {e['eventId']: e for e in events}
    started_of = {}  # scheduled event id -> started event
    for e in events:
        if e['eventType'] == 'EVENT_TYPE_ACTIVITY_TASK_STARTED':
            started_of[e['activityTaskStartedEventAttributes']['scheduledEventId']] = e

    waits, gaps = [], []
    work = collections.defaultdict(list)
    activities = 0
    # The activity completions since the last workflow task: the next one
    # is scheduled in answer to them.
    completed_since_task = []
    answered_by = {}  # workflow task completed event id -> latest completion it answered
    for e in events:
        kind = e['eventType']
        if kind == 'EVENT_TYPE_ACTIVITY_TASK_COMPLETED':
            completed_since_task.append(e)
            attrs = e['activityTaskCompletedEventAttributes']
            scheduled = by_id[attrs['scheduledEventId']]
            name = scheduled['activityTaskScheduledEventAttributes']['activityType']['name']
            work[name].append((seconds(e) - seconds(by_id[attrs['startedEventId']])) * 1000)
        elif kind == 'EVENT_TYPE_WORKFLOW_TASK_SCHEDULED':
            latest = completed_since_task[-1] if completed_since_task else None
            completed_since_task = []
            answered_by[e['eventId']] = latest
        elif kind == 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED':
            scheduled_task = e['workflowTaskCompletedEventAttributes']['scheduledEventId']
            answered_by[e['eventId']] = answered_by.get(scheduled_task)
        elif kind == 'EVENT_TYPE_ACTIVITY_TASK_SCHEDULED':
            activities += 1
            started = started_of.get(e['eventId'])
            if started is None:
                continue
            waits.append((seconds(started) - seconds(e)) * 1000)
            task = e['activityTaskScheduledEventAttributes']['workflowTaskCompletedEventId']
            previous = answered_by.get(task)
            if previous is not None:
                gaps.append((seconds(started) - seconds(previous)) * 1000)

    span = seconds(events[-1]) - seconds(events[0])
    print('%s: %d events, %d activities (%.1f events per activity), %.1f s' %
          (path, len(events), activities, len(events) / max(activities, 1), span))
    print('  scheduled -> started       ', spread(waits))
    print('  result -> next start       ', spread(gaps))
    for name in sorted(work):
        print('  %-26s %s' % (name, spread(work[name])))


def main(paths):
    if not paths:
        sys.exit(__doc__)
    for path in paths:
        summarise(path)


if __name__ == '__main__':
    main(sys.argv[1:])
