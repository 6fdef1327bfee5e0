"""One topic's messages handed from Faust's fetch loop straight to an agent, in bulk.

Faust delivers each message to an agent's stream through about 250 µs of machinery here
(two tasks for `wait_first`, the conductor's lock, an Event, a queue, the stream's
iteration and its sensors): at one account's poll cycle a message, that was a third of
the accounting worker's time. `deliver_in_bulk` gives the app's consumer a copy of
Faust's drain loop (`Consumer._drain_messages`, with its read offsets, gaps, periodic
commits and flow control) that hands `topic`'s messages to `take` as they are fetched,
and sends every other topic's through Faust as before.

The messages are tracked as pending acks, as a stream tracks them (so a commit never
passes a message not acked, and Faust's stop and rebalances wait for them); the agent
acks each with `app.consumer.ack(message)`. A message fetched before a rebalance (an
older consumer generation, or while flow is stopped) is not handed over: Faust seeks
back to the committed offsets and fetches it again, as it does for its streams.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import Message

__all__ = ["deliver_in_bulk"]

_YIELD_EVERY = 100  # messages between two yields to the event loop (Faust's figure)


def deliver_in_bulk(
    app: faust.App,
    topic: str,
    take: Callable[[Message], None],
    full: Callable[[], bool],
    room: Callable[[], Awaitable[None]],
) -> None:
    """From the app's start on, hand `topic`'s messages to `take` from the fetch loop.

    `take` must not block (it keeps the message for the agent); after it, while `full()`
    is true, the loop waits for `room()` (or a rebalance), so a slow agent holds back
    fetching as a full stream buffer does.
    """
    strategy = app.boot_strategy
    server = strategy.server

    def services() -> Any:
        consumer = app.consumer
        if not getattr(consumer, "_drain_messages_in_bulk", False):
            drain = _drain_factory(topic, take, full, room)
            consumer._drain_messages = types.MethodType(drain, consumer)  # type: ignore[method-assign]
            consumer._drain_messages_in_bulk = True  # type: ignore[attr-defined]
        return server()

    strategy.server = services  # type: ignore[method-assign]


def _drain_factory(
    topic: str,
    take: Callable[[Message], None],
    full: Callable[[], bool],
    room: Callable[[], Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - Faust's
        # Faust's loop (faust/transport/consumer.py), with `topic` handed to `take`
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        track = self.track_message
        app = self.app
        since_yield = 0
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)  # getmany may loop without releasing the event loop
                if not self.should_stop:
                    async for tp, message in ait:
                        since_yield += 1
                        if since_yield > _YIELD_EVERY:
                            await asyncio.sleep(0)
                            since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue  # read already (Faust logs and drops it too)
                        if r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if commit_every is not None and self._n_acked >= commit_every:
                            self._n_acked = 0
                            await self.commit()
                        if message.topic != topic:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        elif (
                            self.flow_active
                            and app.flow_control.is_active()
                            and message.generation_id == app.consumer_generation_id
                        ):
                            message.tracked = True
                            track(message)
                            take(message)
                            if full():
                                await self.wait_first(room(), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    return _drain_messages
