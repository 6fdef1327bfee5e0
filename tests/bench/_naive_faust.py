"""Baseline (a): the naive Faust agent, one JSON reading per message, a windowed table.

Run as a script: `python _naive_faust.py BOOTSTRAP TOPIC APP_ID COUNT PARTITIONS`. Each
event is decoded and added to a 15-minute tumbling table (event time: the message
timestamp, set to the reading's ts by the producer). Prints `{"messages": n,
"seconds": s}` (first to last event) after COUNT events and exits.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta

import faust


def main() -> None:
    bootstrap, topic_name, app_id, count, partitions = sys.argv[1:6]
    total = int(count)
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        topic_partitions=int(partitions),
        web_enabled=False,
        datadir=f"/tmp/{app_id}",
    )
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw")
    sums = (
        app.Table("sums", default=float, partitions=int(partitions))
        .tumbling(timedelta(minutes=15), expires=timedelta(hours=7))
        .relative_to_stream()
    )
    seen = {"n": 0, "first": 0.0}

    @app.agent(topic, name="naive")
    async def naive(stream: faust.StreamT) -> None:
        async for value in stream:
            reading = json.loads(value)
            key = f"{reading['account_id']}|{reading['energy_type']}"
            sums[key] += reading["value"]
            seen["n"] += 1
            if seen["n"] == 1:
                seen["first"] = time.perf_counter()
            if seen["n"] >= total:
                elapsed = time.perf_counter() - seen["first"]
                result = json.dumps({"messages": seen["n"], "seconds": elapsed})
                os.write(1, result.encode() + b"\n")  # Faust redirects sys.stdout to its log
                os._exit(0)  # a benchmark child: stop right here

    sys.argv = [sys.argv[0], "worker", "--loglevel", "ERROR", "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
