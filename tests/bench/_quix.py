"""Baseline (b): Quix Streams, a tumbling-window sum with grace over the JSON readings.

Run as a script: `python _quix.py BOOTSTRAP TOPIC GROUP COUNT STATE_DIR`. The window is
15 minutes on event time (the message timestamp, the reading's ts), grace 6 hours, keyed
by the message key (account_id). Prints `{"messages": n, "seconds": s}` (first to
last message processed) after COUNT messages.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta

from quixstreams import Application


def main() -> None:
    bootstrap, topic_name, group, count, state_dir = sys.argv[1:6]
    total = int(count)
    seen = {"n": 0, "first": 0.0, "last": 0.0}

    def processed(topic: str, partition: int, offset: int) -> None:
        now = time.perf_counter()
        if seen["n"] == 0:
            seen["first"] = now
        seen["n"] += 1
        seen["last"] = now

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="ERROR",
        on_message_processed=processed,
    )
    topic = app.topic(topic_name, value_deserializer="json")
    sdf = app.dataframe(topic)
    sdf = sdf.apply(lambda reading: reading["value"])
    sdf = sdf.tumbling_window(timedelta(minutes=15), grace_ms=timedelta(hours=6)).sum().current()
    app.run(sdf, count=total, timeout=120, collect=False)
    print(json.dumps({"messages": seen["n"], "seconds": seen["last"] - seen["first"]}), flush=True)


if __name__ == "__main__":
    main()
