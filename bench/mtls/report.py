"""bench-mtls's report (pure): the three paths side by side, the issue's anchors and targets
next to the measured values, then per-mode details.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.l4.report import markdown_table
from bench.mtls.stats import Latency, added, ratio

MODE_TITLES = {
    "l4": "plaintext kernel L4",
    "waypoint": "plaintext waypoint",
    "mtls": "mTLS tunnel (HBONE)",
}
# Istio's published figures for ztunnel, 1 KB at 1,000 requests/s (two hops).
ZTUNNEL = {"added_p90_ms": 0.17, "added_p99_ms": 0.20, "vcpu_per_krps": 0.06}
TARGET_MAX_RPS_RATIO = 0.8  # tunnel max requests/s >= 0.8x the plaintext waypoint's
TARGET_ADDED_P99_MS = 0.2
TARGET_VCPU_PER_KRPS = ZTUNNEL["vcpu_per_krps"]

Result = Mapping[str, Any]


def _by_mode(results: Sequence[Result]) -> dict[str, Result]:
    return {r["mode"]: r for r in results}


def latency(r: Result | None) -> Latency | None:
    if r is None or not r.get("available") or not (r.get("fixed") or {}).get("latency"):
        return None
    return Latency(**r["fixed"]["latency"])


def added_latency(results: Sequence[Result]) -> dict[str, dict[str, float] | None]:
    """Per mode, its percentiles minus the l4 mode's (None when either is missing)."""
    modes = _by_mode(results)
    base = latency(modes.get("l4"))
    out: dict[str, dict[str, float] | None] = {}
    for name, r in modes.items():
        own = latency(r)
        out[name] = added(own, base) if own is not None and base is not None else None
    return out


def max_rps(r: Result | None) -> float | None:
    if r is None or not r.get("available") or not r.get("max"):
        return None
    return float(r["max"]["rps"])


def vcpu(r: Result | None, node: str) -> float | None:
    if r is None or not r.get("available") or not r.get("fixed"):
        return None
    value = (r["fixed"].get("vcpu_per_krps") or {}).get(node)
    return None if value is None else float(value)


def _verdict(ok: bool | None) -> str:
    return {True: "**met**", False: "**missed**", None: "not measured"}[ok]


def targets(results: Sequence[Result]) -> list[dict[str, Any]]:
    """The issue's three targets for the tunnel, each with the measured value or why not."""
    modes = _by_mode(results)
    tunnel = modes.get("mtls")
    why = (
        (
            None
            if tunnel is None or tunnel.get("available")
            else f"mtls not available: {tunnel.get('reason')}"
        )
        if tunnel
        else "mtls not run"
    )
    ratio_value = ratio(max_rps(tunnel), max_rps(modes.get("waypoint")))
    p99 = (added_latency(results).get("mtls") or {}).get("p99_ms")
    cpus = [vcpu(tunnel, n) for n in ("node1", "node2")]
    worst = None if None in cpus else max(c for c in cpus if c is not None)
    rows = [
        (
            "tunnel max requests/s ÷ plaintext waypoint's",
            None if ratio_value is None else round(ratio_value, 3),
            f">= {TARGET_MAX_RPS_RATIO}",
            None if ratio_value is None else ratio_value >= TARGET_MAX_RPS_RATIO,
        ),
        (
            "tunnel added p99 at 1,000 requests/s (ms)",
            p99,
            f"<= {TARGET_ADDED_P99_MS} (ztunnel +{ZTUNNEL['added_p99_ms']})",
            None if p99 is None else p99 <= TARGET_ADDED_P99_MS,
        ),
        (
            "tunnel vCPU per 1,000 requests/s, busier end",
            worst,
            f"<= {TARGET_VCPU_PER_KRPS} (ztunnel)",
            None if worst is None else worst <= TARGET_VCPU_PER_KRPS,
        ),
    ]
    return [
        {
            "target": name,
            "measured": value,
            "goal": goal,
            "met": met,
            "note": why if value is None else "",
        }
        for name, value, goal, met in rows
    ]


def _n(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+,.{digits}f}" if sign else f"{value:,.{digits}f}"


def _cell(r: Result | None, value: str) -> str:
    if r is None:
        return "not run"
    return value if r.get("available") else "not available"


def side_by_side(results: Sequence[Result]) -> tuple[list[str], list[list[str]]]:
    modes = _by_mode(results)
    names = [m for m in MODE_TITLES if m in modes] or list(modes)
    add = added_latency(results)
    header = ["", *[f"{m} ({MODE_TITLES.get(m, m)})" for m in names], "ztunnel anchor"]

    def row(label: str, anchor: str, value: Any) -> list[str]:
        return [label, *[_cell(modes[m], value(m)) for m in names], anchor]

    lat = {m: latency(modes[m]) for m in names}
    rows = [
        row(f"p{q} ms at fixed rate", "", lambda m, q=q: _n(getattr(lat[m], f"p{q}_ms", None), 3))
        for q in (50, 90, 99)
    ]
    rows += [
        row(
            f"added p{q} ms (minus l4)",
            {50: "", 90: "+0.17", 99: "+0.20"}[q],
            lambda m, q=q: _n((add.get(m) or {}).get(f"p{q}_ms"), 3, sign=True),
        )
        for q in (50, 90, 99)
    ]
    rows.append(row("max requests/s (wrk, keep-alive)", "", lambda m: _n(max_rps(modes[m]), 0)))
    for node, end in (("node1", "client"), ("node2", "server")):
        rows.append(
            row(
                f"waypoint vCPU per 1,000 req/s, {node} ({end} end)",
                "0.06",
                lambda m, node=node: _n(vcpu(modes[m], node), 3),
            )
        )
    rows.append(
        row(
            "bulk, one stream (MiB/s)",
            "",
            lambda m: _n((modes[m].get("bulk") or {}).get("median_mib_per_s"), 0),
        )
    )
    return header, rows


DETAIL_HEADER = [
    "mode",
    "measured requests",
    "achieved req/s",
    "errors",
    "client send lag p50/p99 ms",
    "max-rps p99 ms",
    "max-rps vCPU/krps node1/node2",
    "others' cores (fixed/max)",
    "load1",
]


def detail_rows(results: Sequence[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        if not r.get("available"):
            rows.append([r["mode"], "not available", *[""] * (len(DETAIL_HEADER) - 2)])
            continue
        f, m = r["fixed"], r["max"]
        lag = f.get("send_lag") or {}
        vm = m.get("vcpu_per_krps") or {}
        rows.append(
            [
                r["mode"],
                f"{f['measured']:,}",
                _n(f["achieved_rps"], 0),
                f"{f['errors']} / {m['errors']}",
                f"{_n(lag.get('p50_ms'), 3)} / {_n(lag.get('p99_ms'), 3)}",
                _n(m["p99_ms"], 2),
                f"{_n(vm.get('node1'), 3)} / {_n(vm.get('node2'), 3)}",
                f"{_n(f['machine']['other_cores'])} / {_n(m['machine']['other_cores'])}",
                _n(f["machine"]["load1_start"], 1),
            ]
        )
    return rows


FLOOR_HEADER = [
    "client engine",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "send lag p50 ms",
    "send lag p99 ms",
    "errors",
]


def floor_rows(floor: Mapping[str, Any]) -> list[list[str]]:
    """The fixed-rate client against nginx over loopback, per engine: what the client and
    the machine add before any datapath does."""
    rows = []
    for engine, f in floor.items():
        lat, lag = f.get("latency") or {}, f.get("send_lag") or {}
        rows.append(
            [
                engine,
                _n(lat.get("p50_ms"), 3),
                _n(lat.get("p90_ms"), 3),
                _n(lat.get("p99_ms"), 3),
                _n(lag.get("p50_ms"), 3),
                _n(lag.get("p99_ms"), 3),
                str(f.get("errors")),
            ]
        )
    return rows


def profile_lines(results: Sequence[Result], top: int = 5) -> list[str]:
    """Per profiled mode and node: py-spy's frames with the most self time."""
    lines = []
    for r in results:
        for node, p in (r.get("profile") or {}).items():
            if "error" in p:
                lines.append(f"- `{r['mode']}` {node}: {p['error']}")
                continue
            frames = "; ".join(
                f"`{name}` {own:.0f}% self ({incl:.0f}% incl.)"
                for name, own, incl in p["top_self"][:top]
            )
            idle = p.get("idle_pct")
            if not p["samples"]:
                lines.append(f"- `{r['mode']}` {node}: waiting throughout")
                continue
            lines.append(
                f"- `{r['mode']}` {node}: {idle}% of samples waiting (selector, blocking "
                f"reads); of the {p['samples']} busy samples: {frames}"
            )
    return lines


LAG_NOTE_MS = 1.0  # a client send lag p99 above this: the client itself was held up


def lag_notes(results: Sequence[Result]) -> list[str]:
    """Modes whose fixed-rate client could not keep its own schedule at p99: those p99s
    measure the machine's scheduling as much as the path."""
    notes = []
    for r in results:
        lag = ((r.get("fixed") or {}).get("send_lag") or {}).get("p99_ms")
        if lag is not None and lag > LAG_NOTE_MS:
            notes.append(
                f"`{r['mode']}`: the client's own send lag reached {lag:.2f} ms at p99 (it "
                "was not scheduled on time: CPU contention), so this mode's p99 is the "
                "machine's as much as the path's."
            )
    return notes


def render_markdown(rep: Mapping[str, Any]) -> str:
    header, rows = side_by_side(rep["results"])
    target_rows = [
        [
            t["target"],
            _n(t["measured"], 3) if t["measured"] is not None else "—",
            t["goal"],
            _verdict(t["met"]),
            t["note"],
        ]
        for t in rep["targets"]
    ]
    lines = [
        f"# mTLS benchmark — {rep['date']}",
        "",
        rep["method"],
        "",
        "## Side by side",
        "",
        markdown_table(header, rows),
        "",
        "## Targets (issue 11)",
        "",
        markdown_table(["target", "measured", "goal", "", "note"], target_rows),
        "",
    ]
    unavailable = [r for r in rep["results"] if not r.get("available")]
    if unavailable:
        lines += ["## Not available", ""]
        lines += [f"- `{r['mode']}`: {r['reason']}" for r in unavailable]
        lines.append("")
    if profiled := profile_lines(rep["results"]):
        lines += [
            "## Where the waypoints' time goes (py-spy, a separate fixed-rate run)",
            "",
            *profiled,
            "",
        ]
    if rep.get("client_floor"):
        lines += [
            "## Client floor (loopback in the backend pod, same rate)",
            "",
            markdown_table(FLOOR_HEADER, floor_rows(rep["client_floor"])),
            "",
        ]
    if notes := [*rep.get("notes", []), *lag_notes(rep["results"])]:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += [
        "## Details",
        "",
        markdown_table(DETAIL_HEADER, detail_rows(rep["results"])),
        "",
        f"Machine: {rep['machine']}",
        "",
        f"Command: `{rep['command']}`",
        "",
    ]
    return "\n".join(lines)
