"""JSON form of the kernel connection trace (``flow.tulle.tcp``): plain numbers, zeros left
out, like the rest of ``tulle``; read back tolerantly (strings for numbers, unknown keys)."""

from __future__ import annotations

from typing import Any

from agent.flows.flow import SrttSummary, TcpTrace

_INTS = ("connect_latency_ns", "handshake_rtt_us", "retransmits", "retransmitted_segments",
         "lifetime_ns")
_SRTT = ("min", "mean", "max", "last", "samples")


def tcp_to_json(t: TcpTrace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.role:
        out["role"] = t.role
    for name in _INTS[:2]:
        if getattr(t, name):
            out[name] = getattr(t, name)
    if t.srtt_us is not None:
        out["srtt_us"] = {n: getattr(t.srtt_us, n) for n in _SRTT}
    out["retransmits"] = t.retransmits  # 0 is an answer here, not a missing value
    out["retransmitted_segments"] = t.retransmitted_segments
    if t.lifetime_ns:
        out["lifetime_ns"] = t.lifetime_ns
    out["established"] = t.established
    if t.last_state:
        out["last_state"] = t.last_state
    return out


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def tcp_from_json(data: Any) -> TcpTrace | None:
    if not isinstance(data, dict):
        return None
    srtt = data.get("srtt_us")
    return TcpTrace(
        role=str(data.get("role", "")),
        srtt_us=SrttSummary(**{n: _int(srtt.get(n)) for n in _SRTT})
        if isinstance(srtt, dict) else None,
        established=bool(data.get("established", False)),
        last_state=str(data.get("last_state", "")),
        **{n: _int(data.get(n)) for n in _INTS},
    )
