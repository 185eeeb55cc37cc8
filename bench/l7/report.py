"""The console table and the Markdown results file of one run."""

from __future__ import annotations

from statistics import mean
from typing import Any

from bench.l7.gap import gap_lines, remedy
from bench.l7.results import Measurement, RoundRatio, RunResult


def _n(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _by_round(result: RunResult) -> list[tuple[int, Measurement, Measurement, RoundRatio]]:
    out = []
    for ratio in result.ratios:
        tulle = next(m for m in result.measurements if m.round == ratio.round
                     and m.peer == "tulle")
        envoy = next(m for m in result.measurements if m.round == ratio.round
                     and m.peer == "envoy")
        out.append((ratio.round, tulle, envoy, ratio))
    return out


def verdict(result: RunResult) -> str:
    if result.met:
        return "MET in every round (RPS >= 1.5x Envoy and p99 <= Envoy's)"
    parts = []
    for r in result.ratios:
        why = []
        if r.rps < 1.5:
            why.append(f"RPS {r.rps:.2f}x < 1.5x")
        if r.p99 > 1.0:
            why.append(f"p99 {r.p99:.2f}x > 1.0x")
        parts.append(f"round {r.round}: " + (", ".join(why) if why else "met"))
    return "NOT MET (" + "; ".join(parts) + ")"


def console(result: RunResult) -> str:
    head = f"{'':8} {'peer':12} {'RPS':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU':>6} {'RPS/core':>9}"
    lines = [f"bench-l7 {result.started}: Tulle waypoint vs Envoy, one core each, "
             f"{result.table['rules']} rules, request hits {result.table['target_rule']}",
             head, "-" * len(head)]
    for round_, tulle, envoy, ratio in _by_round(result):
        for label, m in ((f"round {round_}", tulle), ("", envoy)):
            lines.append(f"{label:8} {m.peer:12} {_n(m.wrk.rps):>9} {m.wrk.p50_ms:>8.2f} "
                         f"{m.wrk.p99_ms:>8.2f} {_n(m.peer_cpu, 2):>6} "
                         f"{_n(m.rps_per_core):>9}")
        lines.append(f"{'':8} {'Tulle/Envoy':12} {_x(ratio.rps):>9} {_x(ratio.p50):>8} "
                     f"{_x(ratio.p99):>8} {'':>6} {_x(ratio.rps_per_core):>9}")
    lines.append("-" * len(head))
    lines.append("target: Tulle RPS >= 1.5x Envoy, p99 <= Envoy: " + verdict(result))
    if result.diagnostics:
        lines.append("diagnostics (Tulle alone, not part of the comparison):")
        for m in result.diagnostics:
            lines.append(f"  {m.variant}: {_n(m.wrk.rps)} req/s, p99 {m.wrk.p99_ms:.2f} ms")
    if result.profile and result.profile.get("stages"):
        lines.append("where the waypoint's time goes (py-spy, event-loop thread):")
        for stage, share in result.profile["stages"][:6]:
            lines.append(f"  {100 * share:5.1f}%  {stage}")
    for problem in result.problems:
        lines.append(f"problem: {problem}")
    return "\n".join(lines)


def _results_table(result: RunResult) -> list[str]:
    rows = [
        "| round | peer | RPS | p50 (ms) | p99 (ms) | peer CPU (cores) | user share "
        "| RPS per CPU-second | counted by the peer | wrk errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for round_, tulle, envoy, ratio in _by_round(result):
        for m in (tulle, envoy):
            rows.append(
                f"| {round_} | {m.peer} | {_n(m.wrk.rps)} | {m.wrk.p50_ms:.2f} | "
                f"{m.wrk.p99_ms:.2f} | {_n(m.peer_cpu, 2)} | {_n(m.peer_user_share, 2)} | "
                f"{_n(m.rps_per_core)} | {_n(m.counted)} | {m.wrk.errors} |"
            )
        rows.append(
            f"| {round_} | **Tulle/Envoy** | **{_x(ratio.rps)}** | {_x(ratio.p50)} | "
            f"**{_x(ratio.p99)}** |  |  | {_x(ratio.rps_per_core)} |  |  |"
        )
    return rows


def _syscalls(result: RunResult) -> list[str]:
    tulle = result.syscalls.get("tulle", {})
    envoy = result.syscalls.get("envoy", {})
    names = sorted(
        set(tulle.get("per_request", {})) | set(envoy.get("per_request", {})),
        key=lambda n: -(tulle.get("per_request", {}).get(n, 0)
                        + envoy.get("per_request", {}).get(n, 0)),
    )
    out = [
        "## Syscalls per request",
        "",
        "`strace -c -f` on each peer for 3 s under the same load, divided by the requests "
        f"the peer counted meanwhile (Tulle {_n(tulle.get('requests'))}, Envoy "
        f"{_n(envoy.get('requests'))}; strace slows both, the counts per request hold). "
        "Failed calls (EAGAIN) in brackets.",
        "",
        "| syscall | Tulle | Envoy |",
        "|---|---:|---:|",
    ]

    def cell(side: dict[str, Any], name: str) -> str:
        value = side.get("per_request", {}).get(name)
        failed = side.get("failed_per_request", {}).get(name)
        if value is None:
            return "-"
        return f"{value:.2f}" + (f" ({failed:.2f})" if failed else "")

    for name in names:
        out.append(f"| {name} | {cell(tulle, name)} | {cell(envoy, name)} |")
    out.append(f"| **total** | {_n(tulle.get('total_per_request'), 2)} | "
               f"{_n(envoy.get('total_per_request'), 2)} |")
    return out


def _spread(result: RunResult) -> str:
    """How much each peer moved between rounds: the noise floor of this run."""
    parts = []
    for peer in ("tulle", "envoy"):
        values = [m.wrk.rps for m in result.measurements if m.peer == peer]
        if len(values) > 1:
            parts.append(f"{peer} {100 * (max(values) - min(values)) / mean(values):.0f}%")
    if not parts:
        return ""
    return ("Round-to-round RPS spread (max - min over mean): " + ", ".join(parts)
            + "; a ratio closer than that to the target is not a result.")


def markdown(result: RunResult, name: str) -> str:
    setup = result.setup
    table = result.table
    versions = setup.get("versions", {})
    out = [
        f"# L7 benchmark: Tulle waypoint vs Envoy ({result.date})",
        "",
        f"`make bench-l7` (`python -m bench.l7`), started {result.started}, "
        f"{result.seconds:.0f} s in all; commit {setup.get('git', {}).get('commit', '?')}"
        + (" (l7proxy/ had uncommitted changes)"
           if setup.get("git", {}).get("l7proxy_uncommitted_changes") else "")
        + f". Raw numbers: `{name}.json`.",
        "",
        f"**Target** (issue 4): Tulle RPS >= 1.5x Envoy's on one core, p99 <= Envoy's, "
        f"metrics and flows on. **Result: {verdict(result)}.**",
        "",
        *_results_table(result),
        "",
        "RPS per CPU-second = RPS / peer CPU: the ratio that holds if either proxy did not "
        "get all of its core (see *Machine*). " + _spread(result),
        "",
        "## Setup",
        "",
        f"- **Cores.** The proxy under test alone on core {setup['peer_core']} "
        f"(`taskset -c {setup['peer_core']}`, every thread). wrk, the nginx backend, the "
        f"flow drain and the driver share core {setup['load_core']}: nginx and wrk compete "
        "for that core, equally for both peers (nginx alone does several times either "
        "proxy's rate there, see *Diagnostics*).",
        f"- **Priority.** {setup['priority']}: the machine is shared, and with scheduler "
        "autogroups plain `nice` would not keep other sessions' processes off the pinned "
        "cores.",
        f"- **Load.** {setup['wrk']}; {setup['rounds']} round(s), the order alternating "
        "(Tulle then Envoy, then Envoy then Tulle). Both peers run for the whole run.",
        f"- **Backend.** {setup['backend']}.",
        f"- **Tulle.** `python {' '.join(setup['tulle']['argv'][4:])}` (uvloop). "
        f"{setup['tulle']['variant']}.",
        f"- **Envoy.** `envoy {' '.join(setup['envoy']['argv'][4:])}`. "
        f"{setup['envoy']['variant']}.",
        "- **Fairness of flows and logs.** Both peers emit one structured JSON record per "
        "request. Tulle uses its production sink, `--flows unix:PATH`: the request's fields "
        "as a compact record, JSON-encoded a batch per line and written to the agent's "
        "intake socket; the agent builds and stores the Hubble flow (about 20 µs of agent "
        "CPU per flow, on the node's other cores). The socket's reader (`bench.l7.drain`) "
        "only counts the records and runs on the load core, so the agent's side is charged "
        "to neither peer, as Envoy's log shipper would not be. Envoy writes a JSON access "
        "log with the same fields (time, duration, code, method, authority, path, protocol, route, "
        "upstream host and cluster, response flags, client and local addresses, request "
        "id) to /dev/null through its normal file logger (buffered, flushed by its own "
        "thread, on the same core). `--flows count` (build and drop) would hide the "
        "encoding cost, so it is only a diagnostic here.",
        "- **Metrics.** Tulle's per-request Prometheus series (requests and a duration "
        "histogram by route, backend, code) with `/metrics` served; Envoy's default stats "
        "with the admin endpoint. Each peer's own request count is checked against wrk's "
        "(column *counted by the peer*).",
        "- **Versions.** " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        "",
        "### Route table",
        "",
        f"One definition (`bench/l7/table.py`) renders both configs: {table['rules']} "
        f"HTTPRoute rules in {table['routes']} HTTPRoutes on one Gateway listener, "
        f"{table['header_rules']} of them PathPrefix + header match, the rest PathPrefix "
        "alone, all to one backend. Envoy gets one `route_config` with the rules in Gateway "
        "API precedence order (what it evaluates first to last), PathPrefix as "
        "`path_separated_prefix` (element-wise, as the spec), headers as exact matches, "
        "`normalize_path` and `use_remote_address` on (the waypoint normalizes paths and "
        "sets X-Forwarded-For). The Envoy route names are Tulle's rule references.",
        "",
        f"The load sends `GET {table['request']['path']}` with "
        f"`{', '.join(f'{k}: {v}' for k, v in table['request']['headers'].items())}`, which "
        f"rule `{table['target_rule']}` answers: number {table['target_position']} of "
        f"{table['rules']} in evaluation order. (Envoy tests the routes before it one by one; "
        "Tulle's index goes straight to the path's prefix bucket.)",
        "",
        "Equivalence probe, before the measurements (Tulle: the flow's rule; Envoy: "
        "`%ROUTE_NAME%`):",
        "",
        "| request | headers | expected rule | Tulle | Envoy | agree |",
        "|---|---|---|---|---|---|",
    ]
    for p in result.probes:
        hdrs = ", ".join(f"{k}: {v}" for k, v in p.headers) or "-"
        out.append(f"| `{p.path}` | {hdrs} | {p.expected or '404 (none)'} | "
                   f"{p.tulle[0]} {p.tulle[1] or ''} | {p.envoy[0]} {p.envoy[1] or ''} | "
                   f"{'yes' if p.agree else '**no**'} |")
    out += ["", "## Flows delivered", ""]
    flows = result.flows
    out.append(f"{flows.get('sink')}: the waypoint counted "
               f"{_n(flows.get('requests_counted_by_waypoint'))} requests, the drain "
               f"received {_n(flows.get('flows_received', flows.get('flow_lines_received')))} "
               "flows.")
    if result.diagnostics:
        out += ["", "## Diagnostics (not part of the comparison)", "",
                "| run | RPS | p50 (ms) | p99 (ms) | CPU (cores) | RPS per CPU-second |",
                "|---|---:|---:|---:|---:|---:|"]
        for m in result.diagnostics:
            out.append(f"| {m.peer}: {m.variant} | {_n(m.wrk.rps)} | {m.wrk.p50_ms:.2f} | "
                       f"{m.wrk.p99_ms:.2f} | {_n(m.peer_cpu, 2)} | {_n(m.rps_per_core)} |")
    prof = result.profile
    if prof and prof.get("stages"):
        out += [
            "",
            "## Where the waypoint's time goes",
            "",
            f"py-spy ({versions.get('py-spy', '?')}) on the waypoint under the same load "
            f"({prof['samples']} samples of the event-loop thread at 200 Hz, `--nonblocking` so "
            f"the waypoint is not stopped to sample: it still did "
            f"{_n(prof.get('rps_while_sampling_folded'))} req/s; py-spy ran on the load "
            f"core). Flame graph: `{name}-profile.svg`; folded stacks: "
            f"`{name}-profile.folded`. A sample counts for the stage of the frame nearest its "
            "leaf, except that anything under the flow sink counts for flows; time in C "
            "(uvloop, httptools, syscalls) counts for the Python line that called it, so the "
            "socket reads are in *event loop* and the writes in the stage that wrote. The "
            "diagnostics measure the flows' whole cost (including the garbage collection "
            "their objects cause), which is more than the sampled share.",
            "",
            "| share | stage | what would make it cheaper |",
            "|---:|---|---|",
        ]
        for stage, share in prof["stages"]:
            out.append(f"| {100 * share:.1f}% | {stage} | {remedy(stage)} |")
        out += ["", "Hottest lines (self time):", "", "| share | function (file:line) |",
                "|---:|---|"]
        for frame, share in prof["top_self"]:
            out.append(f"| {100 * share:.1f}% | `{frame}` |")
    if result.syscalls:
        out += ["", *_syscalls(result)]
    if not result.met:
        out += ["", "## What would close the gap", "", *gap_lines(result)]
    machine = result.machine
    out += [
        "",
        "## Machine",
        "",
        f"{machine.get('cpu')}, {machine.get('cpus')} CPUs, kernel {machine.get('kernel')}. "
        f"Load average {machine.get('loadavg_start')} at the start, "
        f"{machine.get('loadavg_end')} at the end (other sessions share this machine). "
        f"Busy share of the peer core not charged to the peer, per measurement: "
        f"{machine.get('peer_core_busy_not_peer')} (softirq and other processes).",
    ]
    if result.problems:
        out += ["", "## Problems seen", ""] + [f"- {p}" for p in result.problems]
    return "\n".join(out) + "\n"
