"""The console table and the Markdown results file of one run."""

from __future__ import annotations

from statistics import mean
from typing import Any

from bench.l7.results import Measurement, RoundRatio, RunResult

# What would make each stage of the waypoint cheaper, by the start of the stage's name
# (see profile.STAGES).
REMEDIES: dict[str, str] = {
    "flows: JSON": (
        "`FlowForwarder` encodes a batch of compact records with one `json.dumps` and "
        "writes it with a blocking `sendall` on the event loop; a non-blocking write "
        "through the loop would take the syscall off the request path."
    ),
    "flows: Flow objects": (
        "Only for in-process flow sinks (`--flows stdout|count`): the unix sink hands the "
        "agent records and the agent builds the flows."
    ),
    "kernel: socket reads": (
        "One read per socket per request, as Envoy; the floor, not the gap (Envoy also "
        "reads until EAGAIN)."
    ),
    "kernel: socket writes": (
        "One write to the upstream and one to the client per request, as Envoy: the floor."
    ),
    "kernel: getpid": (
        "Pure waste: every `asyncio.get_running_loop()` is a getpid syscall on CPython 3.11 "
        "(it checks for a fork). The request path calls it four times (`Proxy.handle`, "
        "`Proxy._tries`, `Http1Upstream.begin`, `Pool.release`); keep the loop in the "
        "connection/proxy instead."
    ),
    "upstream request": (
        "The upstream head is rebuilt header by header (`str.lower`, f-strings, join, "
        "encode) and `begin` creates two futures per request. Cache the rule's fixed part "
        "and splice only what changes."
    ),
    "client write": (
        "Head and body already go out in one write; the response head is rebuilt from the "
        "parsed upstream headers. Passing the upstream head through when it has no "
        "hop-by-hop fields would trim it."
    ),
    "routing": (
        "`Proxy.route` decodes every header to str and builds `Request`/`Headers` objects "
        "before the (already indexed) lookup, then `execute` builds a `Forward`. Routing "
        "is pure: memoise the decision per (parent, host, path, values of the header names "
        "the table matches on) and decode headers lazily."
    ),
    "client request": (
        "httptools calls back into Python per header; then an `Exchange`, a body object and "
        "a new asyncio Task per request. Parse the head in one C call and serve keep-alive "
        "requests on the connection's task instead of a Task each."
    ),
    "upstream response": (
        "Per-header parser callbacks and the `end_to_end` filter per response."
    ),
    "per-request coroutine": (
        "Five nested coroutines per request (handle -> forward -> _upstream -> _tries -> "
        "_attempt -> _send/_stream). A callback fast path for the common case (no retry, "
        "timeout, mirror or streaming body; a pooled connection) avoids them."
    ),
    "event loop": (
        "libuv polling and dispatch, and (without native frames) the socket read syscalls, "
        "two per request as Envoy's: mostly the floor."
    ),
    "metrics": "Already cheap (one dict lookup and a bisect).",
    "flows: record": "Already cheap (one tuple append).",
}


def remedy(stage: str) -> str:
    return next((text for key, text in REMEDIES.items() if stage.startswith(key)), "")


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


def flow_batch() -> int:
    """The waypoint's flow batch size (``FlowRecorder``'s default, which the server uses)."""
    import inspect

    from l7proxy.flows import FlowRecorder

    default = inspect.signature(FlowRecorder).parameters["batch"].default
    return int(default) if isinstance(default, int) else 256


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


def _gap(result: RunResult) -> list[str]:
    """What closing the gap takes, from this run's numbers."""
    tulle = [m for m in result.measurements if m.peer == "tulle"]
    envoy = [m for m in result.measurements if m.peer == "envoy"]
    if not tulle or not envoy:
        return []
    t_rps, e_rps = mean(m.wrk.rps for m in tulle), mean(m.wrk.rps for m in envoy)
    need = 1.5 * e_rps
    lines = [
        f"- Mean over the rounds: Tulle {t_rps:,.0f} req/s, Envoy {e_rps:,.0f} req/s. The "
        f"target is {need:,.0f} req/s on one core, {need / t_rps:.2f}x what the waypoint "
        "does now."
    ]
    t_core = [m.rps_per_core for m in tulle if m.rps_per_core]
    e_core = [m.rps_per_core for m in envoy if m.rps_per_core]
    target_us = None
    if t_core and e_core:
        t_us, e_us = 1e6 / mean(t_core), 1e6 / mean(e_core)
        target_us = e_us / 1.5
        lines.append(
            f"- In CPU per request: the waypoint spends {t_us:.0f} us, Envoy {e_us:.0f} us; "
            f"the target needs at most {target_us:.0f} us, so {t_us - target_us:.0f} us "
            f"({100 * (1 - target_us / t_us):.0f}%) of the waypoint's per-request work has "
            "to go."
        )
    lines += _flows_gap(result, target_us, mean(m.wrk.p99_ms for m in envoy))
    calls = result.syscalls
    if calls.get("tulle", {}).get("per_request") and calls.get("envoy", {}).get("per_request"):
        tulle_calls, envoy_calls = calls["tulle"], calls["envoy"]
        getpid = tulle_calls["per_request"].get("getpid", 0.0)
        lines.append(
            f"- Syscalls: the waypoint makes {tulle_calls['total_per_request']:.1f} per "
            f"request, Envoy {envoy_calls['total_per_request']:.1f}"
            + (f"; {getpid:.1f} of the waypoint's are getpid from "
               "`asyncio.get_running_loop()`, pure waste" if getpid >= 0.5 else "")
            + "."
        )
    nginx = next((m for m in result.diagnostics if m.peer == "nginx"), None)
    if nginx is not None:
        lines.append(
            f"- The load core is not the limit: wrk straight to nginx on it does "
            f"{nginx.wrk.rps:,.0f} req/s, {nginx.wrk.rps / max(t_rps, e_rps):.1f}x the "
            "faster proxy's rate."
        )
    return lines


def _flows_gap(result: RunResult, target_us: float | None, envoy_p99: float) -> list[str]:
    """The flows' share of the gap, from the back-to-back diagnostics."""
    diag = result.diagnostics
    ref = next((m for m in diag if m.peer == "tulle" and "unix" in m.variant), None)
    off = next((m for m in diag if "flows off" in m.variant), None)
    count = next((m for m in diag if "count" in m.variant), None)
    if ref is None or off is None:
        return []
    ratio = mean(r.rps for r in result.ratios) if result.ratios else None
    text = (
        f"- Flows (diagnostics, back to back): the waypoint as measured does "
        f"{ref.wrk.rps:,.0f} req/s; with flows off {off.wrk.rps:,.0f} "
        f"({100 * (off.wrk.rps / ref.wrk.rps - 1):+.0f}%)"
    )
    if count is not None:
        text += f"; with flows built and dropped (`--flows count`) {count.wrk.rps:,.0f}"
    if ratio is not None:
        text += (f". Scaled to the rounds, flows off would make the RPS ratio "
                 f"{ratio * off.wrk.rps / ref.wrk.rps:.2f}x")
    lines = [text + "."]
    if ref.rps_per_core and off.rps_per_core:
        ref_us, off_us = 1e6 / ref.rps_per_core, 1e6 / off.rps_per_core
        if target_us is not None and off_us > target_us:
            lines.append(
                f"- With flows off the waypoint still spends {off_us:.0f} us of CPU per "
                f"request against the {target_us:.0f} us the target allows: flows alone "
                "cannot close the gap. The rest is spread over the request path (the stages "
                "above, each a few to 20%), so no single fix removes it: it takes cheap "
                "flows and getpid-free loop access (measured waste), a leaner request path "
                "(no per-request Task and coroutine chain, memoised routing, cached upstream "
                "heads) and, for 1.5x, very likely that path compiled (Cython or mypyc)."
            )
        if off.wrk.p99_ms < ref.wrk.p99_ms and ref_us > off_us:
            batch = flow_batch()
            batch_ms = batch * (ref_us - off_us) / 1000
            lines.append(
                f"- p99: the waypoint's p99 is {ref.wrk.p99_ms:.1f} ms (Envoy's "
                f"{envoy_p99:.1f} ms in the rounds), {off.wrk.p99_ms:.1f} ms with flows off. "
                "Flows are recorded as tuples, then turned into `Flow` objects and JSON in "
                f"batches of {batch} on the event loop: about {batch_ms:.1f} ms of CPU in one "
                f"go ({batch} x the per-request difference above) while every connection "
                "waits. Encoding each flow cheaply as it is recorded, or in small slices "
                "between requests, removes that stall from the tail."
            )
    return lines


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
        out += ["", "## What would close the gap", "", *_gap(result)]
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
