"""The ceiling: raw aiokafka consumption of the JSON readings, decoded, nothing else.

Run as a script: `python _ceiling.py BOOTSTRAP TOPIC COUNT`. Reads the topic from the
start (no group), `json.loads` every message and prints `{"messages": n, "seconds": s}`
(first to last message) after COUNT messages, or after 120 s.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer


async def _main(bootstrap: str, topic: str, total: int) -> None:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    n, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + 120
    try:
        while n < total and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                for record in records:
                    json.loads(record.value)
                    n += 1
                now = time.perf_counter()
                if not first:
                    first = now
                last = now
    finally:
        await consumer.stop()
    print(json.dumps({"messages": n, "seconds": last - first}), flush=True)


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
