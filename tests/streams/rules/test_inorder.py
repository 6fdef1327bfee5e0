"""The in-order lane (`streams.rules.inorder`) gives what `process` gives, float for float.

Each case feeds the same messages to two copies of the state: one message at a time
through `Accountant.process`, and in rounds through `Accountant.process_spans` (with
`process` for the spans it does not take, as the agent does). Windows, intervals and
the stored state must be equal, exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.factors import FactorBook, load_factors
from streams.rules.accounting import Accountant, AccountState
from streams.rules.inorder import Rows
from streams.rules.normalise import Columns, Interval

T0 = 1_767_225_600_000  # 2026-01-01T00:00Z, ms
MIN = 60_000
_FIELDS = (
    "meter_id", "energy_type", "kind", "value", "unit", "ts", "quality", "seq",
    "counter_max", "period_start",
)  # fmt: skip


def _accountant() -> Accountant:
    # a short grace and retention, so that readings and windows are pruned in the cases
    return Accountant(FactorBook(load_factors()), grace_hours=1, retention_hours=1.5)


def _row(meter: str, ts: int, value: float, **extra: Any) -> dict[str, Any]:
    row = {
        "meter_id": meter,
        "energy_type": "electricity" if meter.endswith(("0", "2")) else "natural_gas",
        "kind": "cumulative",
        "value": value,
        "unit": "kWh" if meter.endswith(("0", "2")) else "Nm3",
        "ts": ts,
        "quality": "good",
        "seq": ts // MIN,
        "counter_max": None,
        "period_start": None,
    }
    row.update(extra)
    return row


def _columns(rows: list[dict[str, Any]]) -> Columns:
    return Columns(**{f: [r[f] for r in rows] for f in _FIELDS})


def _tuples(ivc: Any, span: int) -> list[Interval]:
    return [
        (ivc.meter_id[j], ivc.energy_type[j], int(ivc.start[j]), int(ivc.end[j]),
         float(ivc.consumption[j]), bool(ivc.uncertain[j]), "",
         (ivc.seq_start[j], ivc.seq_end[j]), 1)
        for j in range(len(ivc.meter_id))
        if ivc.span[j] == span
    ]  # fmt: skip


def _both(messages: list[tuple[str, list[dict[str, Any]]]], per_inbox: int = 4) -> int:
    """Run `messages` (account, rows) both ways; assert equal; return how many spans the
    lane took."""
    acc = _accountant()
    one: dict[str, AccountState] = {}
    many: dict[str, AccountState] = {}
    want_windows, want_intervals = [], []
    for account, rows in messages:
        state = one.setdefault(account, AccountState(account))
        out = acc.process(state, _columns(rows))
        want_windows.extend(out.windows)
        want_intervals.extend(iv for iv in out.normalised.intervals)
    got_windows, got_intervals = [], []
    taken = 0
    for i in range(0, len(messages), per_inbox):
        inbox = messages[i : i + per_inbox]
        cols = _columns([r for _, rows in inbox for r in rows])
        spans, start = [], 0
        for account, rows in inbox:
            spans.append((account, start, start + len(rows)))
            start += len(rows)
        while spans:  # rounds, as the agent makes them: each account once
            now: dict[str, tuple[str, int, int]] = {}
            later = []
            for span in spans:
                if span[0] in now:
                    later.append(span)
                else:
                    now[span[0]] = span
            spans = later
            states = [many.setdefault(a, AccountState(a)) for a in now]
            outcomes, ivc = acc.process_spans(
                [
                    (state, a, b, None)
                    for state, (_, a, b) in zip(states, now.values(), strict=True)
                ],
                Rows.from_columns(cols),
            )
            pairs = zip(states, now.values(), outcomes, strict=True)
            for k, (state, (_, a, b), out) in enumerate(pairs):
                if out is None:
                    out = acc.process(state, Columns(*(v[a:b] for v in _values(cols))))
                    got_intervals.extend(out.normalised.intervals)
                else:
                    taken += 1
                    got_intervals.extend(_tuples(ivc, k))
                got_windows.extend(out.windows)
    key = lambda w: (w["account_id"], w["energy_type"], w["window_start"], w["revision"])  # noqa: E731
    assert sorted(got_windows, key=key) == sorted(want_windows, key=key)
    assert sorted(got_intervals, key=repr) == sorted(want_intervals, key=repr)
    assert {a: _stored(s) for a, s in many.items()} == {a: _stored(s) for a, s in one.items()}
    return taken


def _stored(state: AccountState) -> dict[str, Any]:
    """What the changelog stores of a state (its windows in any order: a dict's)."""
    data = state.to_dict()
    return {**data, "windows": sorted(data["windows"])}


def _values(cols: Columns) -> list[Any]:
    return [getattr(cols, f) for f in _FIELDS]


def _cycles(
    accounts: int, meters: int, cycles: int, step_min: int = 15, offset_min: int = 0,
    jitter_min: int = 0,
) -> list[tuple[str, list[dict[str, Any]]]]:  # fmt: skip
    """Poll cycles: per cycle, per account, one reading of each meter (meter m read
    `m * jitter_min` minutes after the cycle starts)."""
    out = []
    for c in range(cycles):
        for a in range(accounts):
            ts = T0 + (offset_min + c * step_min) * MIN
            rows = [
                _row(f"A{a}-M{m}", ts + m * jitter_min * MIN, 100.0 + c * (1.5 + m) + a)
                for m in range(meters)
            ]
            out.append((f"A{a}", rows))
    return out


def test_aligned_poll_cycles_are_taken_by_the_lane() -> None:
    messages = _cycles(accounts=3, meters=5, cycles=6)
    taken = _both(messages)
    assert taken == 3 * 5  # every message but each account's first


def test_unaligned_polls_split_across_two_windows() -> None:
    messages = _cycles(accounts=2, meters=3, cycles=6, offset_min=7)  # :07, :22, ...
    assert _both(messages) == 2 * 5


def test_odd_batches_fall_back_and_the_lane_picks_up_after() -> None:
    messages = _cycles(accounts=2, meters=3, cycles=8)
    a0 = messages[6][1]  # A0's 4th cycle
    messages[6] = ("A0", [a0[0], {**a0[1], "ts": a0[1]["ts"] - 20 * MIN}, a0[2]])  # late
    messages[8] = ("A0", [{**r, "quality": "uncertain"} for r in messages[8][1]])
    messages[10] = ("A0", [{**r, "value": 0.5} for r in messages[10][1]])  # a reset
    messages[11] = ("A1", messages[11][1][:2])  # a meter missing
    taken = _both(messages)
    assert 0 < taken < 2 * 7


def test_meters_read_minutes_apart_add_to_different_windows() -> None:
    # M0 and M2 (both electricity) read at :13 and :17: their intervals start in
    # different windows, so their energy type's shares go window by window
    messages = _cycles(accounts=2, meters=4, cycles=6, offset_min=13, jitter_min=2)
    assert _both(messages) == 2 * 5


def test_hourly_polls_share_out_over_four_or_five_windows() -> None:
    messages = _cycles(accounts=2, meters=3, cycles=5, step_min=60, offset_min=7)
    assert _both(messages) == 2 * 4


def test_a_gap_over_more_than_eight_windows_falls_back() -> None:
    messages = _cycles(accounts=1, meters=2, cycles=3, step_min=125)
    assert _both(messages) == 0  # 2 h 5 min: nine or ten windows each time


@st.composite
def _streams(draw: st.DrawFn) -> list[tuple[str, list[dict[str, Any]]]]:
    accounts = draw(st.integers(1, 3))
    meters = draw(st.integers(1, 4))
    cycles = draw(st.integers(2, 12))
    offset = draw(st.integers(0, 14))
    messages = _cycles(
        accounts, meters, cycles, step_min=draw(st.sampled_from([5, 15, 20, 60, 130])),
        offset_min=offset, jitter_min=draw(st.integers(0, 3)),
    )  # fmt: skip
    for i in draw(st.lists(st.integers(0, len(messages) - 1), max_size=4)):
        account, rows = messages[i]
        change = draw(st.sampled_from(["late", "uncertain", "reset", "duplicate", "bad", "unit"]))
        r = dict(rows[0])
        if change == "late":
            r["ts"] -= draw(st.integers(1, 40)) * MIN
        elif change == "uncertain":
            r["quality"] = "uncertain"
        elif change == "reset":
            r["value"] = 1.0
        elif change == "duplicate":
            rows = [*rows, dict(rows[-1])]
        elif change == "bad":
            r["value"] = float("nan")
        else:
            r["unit"] = "MWh" if r["unit"] == "kWh" else r["unit"]
        messages[i] = (account, [r, *rows[1:]])
    return messages


@settings(max_examples=150, deadline=None)
@given(_streams(), st.integers(1, 5))
def test_any_stream_gives_what_process_gives(
    messages: list[tuple[str, list[dict[str, Any]]]], per_inbox: int
) -> None:
    _both(messages, per_inbox)
