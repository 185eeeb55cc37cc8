"""Where a request's time went: the waypoint's timing marks (``l7proxy.timing``) turned into
the parts of ``RequestSplit``, and their JSON form (``flow.tulle.request``). Pure.

The waypoint's span (``l7.latency_ns``, from the request head read to the response handed
to the client) is cut at its marks, all on one monotonic clock::

    start     sent                 first   head_out          last            end
      |-proxy-|--connect--|--window: network + backend--|-proxy-|--body: backend--|-proxy-|

- ``upstream_connect_ns``: time spent opening upstream connections (retries included);
- ``upstream_network_ns``: the kernel's smoothed RTT of the upstream socket, at most the
  window it is part of (request written to response head read, less late connects);
- ``backend_ns``: the rest of that window, plus the response body's arrival;
- ``proxy_ns``: everything else in the span (routing, pool waits, the response's way out);
- ``client_network_ns``: the kernel's smoothed RTT of the client's connection, which lies
  outside the span (the request's way in and the response's way out), plus the time the
  waypoint waited on the client inside it: a request body that arrived after the request
  went upstream (``body_end``: the window up to it; the backend was waiting for it) and
  a response the client would not take (``stalled``: out of the body's time; the waypoint
  paused the backend meanwhile). Both are the client's side of the exchange, not the
  backend's.

So ``total_ns`` is the client's RTT plus the span, and the parts add up to it exactly (the
arithmetic never loses or double counts a nanosecond; ``tests/unit/flows/test_reqsplit``).
What the parts *mean* is only as good as the kernel's RTT: a peer that answers within its
delayed-ACK time carries the ACK on its answer, and its think time enters the RTT (see
ARCHITECTURE.md, "Where a request's time went").
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from agent.flows.flow import RequestParts, RequestSplit

FIELDS = ("total_ns", "client_network_ns", "proxy_ns", "upstream_connect_ns",
          "upstream_network_ns", "backend_ns")
PARTS = FIELDS[1:]
MARKS = 8  # (client_rtt_us, sent, connect, connect_late, first, head_out, last, upstream_rtt_us)
MAX_MARKS = 10  # ... [, body_end[, stalled]]: sent only when not 0
# The common request's marks (a pooled connection, the response's end read with its head,
# no wait on the client): connect = connect_late = 0 and last = first, so 5 integers
# (client_rtt_us, sent, first, head_out, upstream_rtt_us); the waypoint sends this form
# whenever that holds (3 integers fewer to build, encode and parse per request).
COMPACT = 5
# What the waypoint takes per request since the marks left the JSON text: the exchange's
# clock readings as they are, absolute monotonic ns (0: did not happen), in one binary
# column per batch (``agent.flows.l7record``). The agent, not the hot path, subtracts
# the start (``relative``).
RAW = 11  # (client_rtt_us, start, sent, connect, connect_late, first, head_out, last,
#            upstream_rtt_us, body_end, stalled)
# Since the column carries only what every request has (its head key "split", not
# "marks"): ``LEAN`` clock readings per timed request in the column, and the ``EXTRA`` six
# that are 0 or redundant for most requests (no new connection, the response's end read
# with its head, no wait on the client) in the record's field 13 only when one is not:
# field 13 is then the array of them, else ``true``. Fewer integers to take and pack per
# request (bench/results/request-split-2026-12-05-cost4.md).
LEAN = 5  # (client_rtt_us, start, sent, first, upstream_rtt_us)
LEAN_ROW = struct.Struct(f"<{LEAN}q")
"""A request's ``LEAN`` readings as the column carries them (little-endian int64s): the
row a common request's flow keeps (``TulleInfo.request_parts``) until it is split."""
EXTRA = 6  # (connect, connect_late, head_out, last, body_end, stalled); head_out, last
#            and body_end are clock readings like the column's (0: did not happen)


def split(span_ns: int, marks: Sequence[int]) -> RequestSplit:
    """The parts of one request from its span and marks (``l7proxy.timing``), in either
    form: ``COMPACT`` or ``MARKS`` to ``MAX_MARKS``."""
    if len(marks) == COMPACT:
        return split_compact(span_ns, *marks)
    client_rtt_us, sent, connect, late, first, head_out, last, upstream_rtt_us = marks[:MARKS]
    body_end = marks[8] if len(marks) > 8 else 0
    stalled = marks[9] if len(marks) > 9 else 0
    span = max(0, span_ns)
    client = max(0, client_rtt_us) * 1000
    connect = min(max(0, connect), span)
    if sent <= 0:  # answered without an upstream request (local answer, connect failure)
        return RequestSplit(client + span, client, span - connect, connect, 0, 0)
    sent = min(sent, span)
    late = min(max(0, late), connect)
    end_window = min(first, span) if first > 0 else span  # no response head: all of it
    window = max(0, end_window - sent - late)
    # The backend waited for the client's late body (at most the window).
    waited = max(0, min(min(body_end, end_window) - sent, window)) if body_end > sent else 0
    network = min(max(0, upstream_rtt_us) * 1000, window - waited)
    body = 0
    if first > 0 and last > 0:
        # The response body arrived between its head going out and its last byte (which
        # may come in the same read as the head: then there is no body time).
        out = min(max(head_out, first), span)
        body = max(0, min(last, span) - out)
    stall = min(max(0, stalled), body)  # the client held the body up, not the backend
    backend = window - waited - network + body - stall
    proxy = max(0, span - connect - window - body)
    return RequestSplit(client + span, client + waited + stall, proxy, connect, network,
                        backend)


def split_compact(span_ns: int, client_rtt_us: int, sent: int, first: int, head_out: int,
                  upstream_rtt_us: int) -> RequestSplit:
    """``split`` of the common request's ``COMPACT`` marks: ``split``'s arithmetic with
    connect, late, body_end and stalled 0 and last = first (so no body time, and head_out
    does not count), in conditional expressions rather than min/max calls
    (tests/unit/flows/test_reqsplit checks it against ``split`` of the full form for any
    integers)."""
    span = span_ns if span_ns > 0 else 0
    client = client_rtt_us * 1000 if client_rtt_us > 0 else 0
    if sent <= 0:  # answered without an upstream request
        return RequestSplit(client + span, client, span, 0, 0, 0)
    if sent > span:
        sent = span
    window = (first if first < span else span) - sent if first > 0 else span - sent
    if window < 0:
        window = 0
    network = upstream_rtt_us * 1000 if upstream_rtt_us > 0 else 0
    if network > window:
        network = window
    return RequestSplit(client + span, client, span - window, 0, network, window - network)


if RequestSplit._fields != FIELDS:  # split_lean returns them in this order
    raise TypeError("RequestSplit's fields changed: update reqsplit.FIELDS and split_lean")

# No marks form has this many integers (COMPACT, MARKS..MAX_MARKS): an L7 record's field 13
# holding a tuple of this length holds the parts ``split_lean`` computed, not marks.
PARTS_WIDTH = len(FIELDS)
if PARTS_WIDTH in (COMPACT, *range(MARKS, MAX_MARKS + 1)):
    raise TypeError("RequestSplit's width is a marks form's: l7record cannot tell them apart")


def split_lean(span_ns: int, lean: Sequence[int]) -> RequestParts:
    """``split_compact`` of the common request straight from its ``LEAN`` clock readings
    (field 13 ``true``: no ``EXTRA`` marks), as the agent reads nearly every waypoint
    flow, as a plain tuple (``TulleInfo.request_parts``): no relative marks tuple in
    between, ``split_compact``'s arithmetic written out here, not called, and the
    readings passed as the one row they are (not star-called). tests/unit/flows/
    test_reqsplit checks it against ``split`` of ``relative(raw_of(lean, None))`` for any
    integers."""
    client_rtt_us, start, sent, first, upstream_rtt_us = lean
    if 0 < start < sent <= first <= start + span_ns:
        # The usual request (sent upstream, answered, both inside the span): what the
        # clamps below give, with one subtraction of clock readings instead of two and
        # none of the span's clamps (callgrind: ~450 instructions fewer a flow).
        window = first - sent
        client = client_rtt_us * 1000 if client_rtt_us > 0 else 0
        network = upstream_rtt_us * 1000 if upstream_rtt_us > 0 else 0
        if network > window:
            network = window
        return (client + span_ns, client, span_ns - window, 0, network, window - network)
    span = span_ns if span_ns > 0 else 0
    client = client_rtt_us * 1000 if client_rtt_us > 0 else 0
    sent = sent - start if sent else 0
    if sent <= 0:  # answered without an upstream request
        return (client + span, client, span, 0, 0, 0)
    if sent > span:
        sent = span
    first = first - start if first else 0
    window = (first if first < span else span) - sent if first > 0 else span - sent
    if window < 0:
        window = 0
    network = upstream_rtt_us * 1000 if upstream_rtt_us > 0 else 0
    if network > window:
        network = window
    return (client + span, client, span - window, 0, network, window - network)


def to_json(r: RequestSplit) -> dict[str, int]:
    """Every part, zeros included (0 is a measurement here: no connect, no upstream)."""
    return {name: getattr(r, name) for name in FIELDS}


def from_json(data: Any) -> RequestSplit | None:
    if not isinstance(data, dict):
        return None
    values: dict[str, int] = {}
    for name in FIELDS:
        try:
            values[name] = int(data.get(name, 0))
        except (TypeError, ValueError):
            values[name] = 0
    return RequestSplit(**values)


def relative(raw: Sequence[int]) -> tuple[int, ...]:
    """A request's ``RAW`` marks as the 10-integer form ``split`` reads (relative to the
    start; 0 stays 0)."""
    (client_rtt_us, start, sent, connect, late, first, head_out, last, upstream_rtt_us,
     body_end, stalled) = raw
    return (client_rtt_us, sent - start if sent else 0, connect, late,
            first - start if first else 0, head_out - start if head_out else 0,
            last - start if last else 0, upstream_rtt_us,
            body_end - start if body_end else 0, stalled)


def raw_of(lean: Sequence[int], extra: Sequence[int] | None) -> tuple[int, ...]:
    """A request's ``LEAN`` marks and its ``EXTRA`` ones (None: the common request's:
    none of them, the response's end read with its head) in ``RAW`` order."""
    client_rtt_us, start, sent, first, upstream_rtt_us = lean
    if extra is None:
        return (client_rtt_us, start, sent, 0, 0, first, 0, first, upstream_rtt_us, 0, 0)
    connect, late, head_out, last, body_end, stalled = extra
    return (client_rtt_us, start, sent, connect, late, first, head_out, last,
            upstream_rtt_us, body_end, stalled)


def check_extra(value: Any) -> tuple[int, ...] | None:
    """A record's field 13 beside a ``LEAN`` column: ``true`` (None here) or its
    ``EXTRA`` marks, checked (ValueError says what is wrong)."""
    if value is True:
        return None
    if (not isinstance(value, list | tuple) or len(value) != EXTRA
            or any(type(v) is not int for v in value)):
        raise ValueError(f"a timed record's field 13 must be true or an array of {EXTRA} "
                         f"integers (connect, connect_late, head_out, last, body_end, "
                         f"stalled), got {value!r}")
    return tuple(value)


def check_marks(value: Any) -> tuple[int, ...] | None:
    """A record's marks as sent (null: none), checked (ValueError says what is wrong)."""
    if value is None:
        return None
    if (not isinstance(value, list | tuple)
            or not (MARKS <= len(value) <= MAX_MARKS or len(value) == COMPACT)
            or any(type(v) is not int for v in value)):
        raise ValueError(f"timing marks must be an array of {COMPACT} or {MARKS} to "
                         f"{MAX_MARKS} integers, got {value!r}")
    return tuple(value)
