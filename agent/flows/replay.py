"""Offline replay of saved `-o json` output, and the time arguments of `tulle observe`.

`read_events` turns lines (Tulle's or Hubble's JSON output) into flows and lost events;
`select_stream` applies the same selection the server applies (`select_records`) while
streaming, so a file of any size replays in bounded memory.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from agent.flows.codec import parse_time
from agent.flows.flow import Flow, LostEvent
from agent.flows.fromjson import flow_from_json, lost_event_from_json

Record = Flow | LostEvent

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_DURATION = re.compile(r"(\d+(?:\.\d*)?)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """Go-style durations ("5m", "1h30m", "1.5s", "2d") in nanoseconds."""
    text = text.strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"not a duration: {text!r}")
    return int(total)


def parse_time_arg(text: str, now_ns: int) -> int:
    """--since/--until: a duration ago ("5m") or an RFC 3339 time; ns since the epoch."""
    try:
        return now_ns - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a relative time like 5m or 1h30m nor an RFC 3339 time "
            "like 2024-05-01T10:00:00Z"
        ) from None


def read_events(
    lines: Iterable[str], on_error: Callable[[int, str], None] | None = None
) -> Iterator[Record]:
    """Flows and lost events from JSON lines; node-status lines are skipped. Bad lines go
    to `on_error(line_number, message)` and reading goes on."""
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if "lost_events" in data:
                yield lost_event_from_json(data)
            elif "node_status" in data:
                continue
            else:
                yield flow_from_json(data)
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            if on_error is not None:
                on_error(number, f"{type(e).__name__}: {e}")


def select_stream(
    records: Iterable[Record],
    number: int = 0,
    *,
    first: bool = False,
    since: int | None = None,
    until: int | None = None,
    predicate: Callable[[Flow], bool] | None = None,
) -> Iterator[Record]:
    """`agent.flows.store.select_records`, streaming: first N and "all" go out as they are
    read; last N is held in a bounded window until the input ends."""
    last: deque[Record] = deque()
    flows = 0
    for rec in records:
        if since is not None and rec.time < since:
            continue
        if until is not None and rec.time > until:
            continue
        is_flow = isinstance(rec, Flow)
        if is_flow and predicate is not None and not predicate(rec):  # type: ignore[arg-type]
            continue
        if number <= 0:
            yield rec
            continue
        if first:
            yield rec
            if is_flow:
                flows += 1
                if flows == number:
                    return
            continue
        last.append(rec)
        if is_flow:
            flows += 1
            if flows > number:
                while not isinstance(last.popleft(), Flow):
                    pass
                flows -= 1
    if number > 0 and not first and flows == number:
        while last and not isinstance(last[0], Flow):
            last.popleft()  # lost events before the oldest selected flow are outside the span
    yield from last
