"""What the policies run measured, and its Markdown (pure).

Four rows per round: Tulle and Envoy with the policies off, then on. The target (issue 14):
the policies cost Tulle no more, relatively, than they cost Envoy, i.e. the Tulle/Envoy
requests-per-second ratio with the policies on is at least the ratio with them off. That is
the same statement as (Tulle on / Tulle off) >= (Envoy on / Envoy off). Judged on the mean
over rounds of each round's ratios (each round measures the four back to back, so the
machine's drift between rounds cancels in a round's ratios).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from statistics import mean
from typing import Any

from bench.l7.results import Measurement

PEERS = ("tulle", "envoy")
STATES = ("off", "on")


@dataclass
class Check:
    """One preflight request and what each of the four peers answered."""

    what: str
    method: str
    path: str
    headers: list[tuple[str, str]]
    want: dict[str, int]
    """"off"/"on" -> the status both peers must answer."""
    got: dict[str, int] = field(default_factory=dict)
    """"tulle-off", "envoy-on", ... -> the status."""

    @property
    def passed(self) -> bool:
        return all(self.got.get(f"{p}-{s}") == self.want[s] for p in PEERS for s in STATES)


@dataclass
class Row:
    round: int
    peer: str
    policies: str
    """"off" or "on"."""
    measurement: Measurement

    @property
    def rps(self) -> float:
        return self.measurement.wrk.rps


def round_ratios(rows: list[Row]) -> list[dict[str, Any]]:
    """Per round: Tulle/Envoy RPS and p99 off and on, and each peer's on/off RPS."""
    out = []
    for round_ in sorted({r.round for r in rows}):
        got = {(r.peer, r.policies): r.measurement for r in rows if r.round == round_}
        if len(got) != 4:
            raise ValueError(f"round {round_}: {len(got)} of the 4 measurements")
        item: dict[str, Any] = {"round": round_}
        for state in STATES:
            t, e = got[("tulle", state)].wrk, got[("envoy", state)].wrk
            item[f"rps_{state}"] = round(t.rps / e.rps, 3)
            item[f"p99_{state}"] = round(t.p99_ms / e.p99_ms, 3)
        for peer in PEERS:
            on, off = got[(peer, "on")].wrk.rps, got[(peer, "off")].wrk.rps
            item[f"{peer}_on_off"] = round(on / off, 3)
        out.append(item)
    return out


@dataclass
class PolicyResult:
    date: str
    started: str
    command: str
    note: str
    setup: dict[str, Any]
    machine: dict[str, Any]
    policies: dict[str, Any]
    checks: list[Check]
    rows: list[Row]
    breakdown: list[Row] = field(default_factory=list)
    """Tulle with part of the policies (``policies`` names which), not compared."""
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ratios(self) -> list[dict[str, Any]]:
        return round_ratios(self.rows)

    def mean_ratio(self, key: str) -> float:
        return round(mean(r[key] for r in self.ratios), 3)

    @property
    def met(self) -> bool:
        return bool(self.rows) and self.mean_ratio("rps_on") >= self.mean_ratio("rps_off")

    def to_json(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "started": self.started,
            "command": self.command,
            "note": self.note,
            "seconds": round(self.seconds, 1),
            "target": {
                "statement": "Tulle/Envoy req/s with the policies on >= with them off",
                "rps_ratio_off": self.mean_ratio("rps_off"),
                "rps_ratio_on": self.mean_ratio("rps_on"),
                "met": self.met,
            },
            "setup": self.setup,
            "machine": self.machine,
            "policies": self.policies,
            "checks": [{**asdict(c), "passed": c.passed} for c in self.checks],
            "rows": [{"round": r.round, "peer": r.peer, "policies": r.policies,
                      **r.measurement.to_json()} for r in self.rows],
            "ratios": self.ratios,
            "breakdown": [{"policies": r.policies, **r.measurement.to_json()}
                          for r in self.breakdown],
            "problems": self.problems,
        }


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def markdown(result: PolicyResult, name: str) -> str:
    ratios = result.ratios
    lines = [
        f"# L7 with policies: Tulle vs Envoy, policies off and on ({name})",
        "",
        f"Command: `{result.command}` ({result.started}, {result.seconds:.0f} s).",
        "",
    ]
    if result.note:
        lines += [f"**Note:** {result.note}", ""]
    off, on = result.mean_ratio("rps_off"), result.mean_ratio("rps_on")
    lines += [
        f"**Target** (issue 14): Tulle/Envoy req/s with the policies on ({on:.3f}) at least "
        f"the ratio with them off ({off:.3f}): **{'met' if result.met else 'missed'}**.",
        f"The policies change Tulle's req/s by {_pct(result.mean_ratio('tulle_on_off'))} and "
        f"Envoy's by {_pct(result.mean_ratio('envoy_on_off'))} (mean over rounds).",
        "",
        "## Policies",
        "",
    ]
    lines += [f"- {item}" for item in result.policies["summary"]]
    lines += [
        "",
        "## Preflight: both peers enforce",
        "",
        "| request | why | want off / on | tulle off | envoy off | tulle on | envoy on |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in result.checks:
        got = " | ".join(str(c.got.get(f"{p}-{s}", "-")) for s in STATES for p in PEERS)
        headers = " ".join(f"{k}: {v}" for k, v in c.headers)
        lines.append(f"| {c.method} {c.path} {headers} | {c.what} | "
                     f"{c.want['off']} / {c.want['on']} | {got} |")
    lines += [
        "",
        "## Measurements",
        "",
        "| round | peer | policies | req/s | p50 ms | p99 ms | peer CPU | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        m = r.measurement
        lines.append(f"| {r.round} | {r.peer} | {r.policies} | {m.wrk.rps:,.0f} | "
                     f"{m.wrk.p50_ms:.2f} | {m.wrk.p99_ms:.2f} | {m.peer_cpu or '-'} | "
                     f"{m.wrk.non_2xx} |")
    lines += [
        "",
        "| round | Tulle/Envoy req/s off | on | Tulle/Envoy p99 off | on | Tulle on/off | "
        "Envoy on/off |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in ratios:
        lines.append(f"| {x['round']} | {x['rps_off']:.3f} | {x['rps_on']:.3f} | "
                     f"{x['p99_off']:.3f} | {x['p99_on']:.3f} | {x['tulle_on_off']:.3f} | "
                     f"{x['envoy_on_off']:.3f} |")
    if result.breakdown:
        tulle = [r.rps for r in result.rows if r.peer == "tulle"]
        lines += [
            "",
            "## Breakdown: Tulle with part of the policies (after the rounds; not compared)",
            "",
            "| policies | req/s | p50 ms | p99 ms | peer CPU |",
            "|---|---|---|---|---|",
        ]
        for r in result.breakdown:
            w = r.measurement.wrk
            lines.append(f"| {r.policies} | {w.rps:,.0f} | {w.p50_ms:.2f} | {w.p99_ms:.2f} | "
                         f"{r.measurement.peer_cpu or '-'} |")
        if tulle:
            lines.append(f"\n(Tulle in the rounds: {min(tulle):,.0f} to {max(tulle):,.0f} "
                         "req/s, policies off and on.)")
    lines += ["", "## Setup", "", "```json"]
    lines += [json.dumps({"setup": result.setup, "machine": result.machine}, indent=1), "```"]
    if result.problems:
        lines += ["", "## Problems", ""] + [f"- {p}" for p in result.problems]
    return "\n".join(lines) + "\n"
