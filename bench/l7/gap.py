"""What would close the gap to the L7 target (issue 4: RPS >= 1.5x Envoy's, p99 <= Envoy's),
read from one run's numbers: the remedy for each profiled stage of the waypoint, and the
"What would close the gap" lines of the results file (CPU per request, the flows' share,
syscalls, the load core). ``bench.l7.report`` puts them into the Markdown."""

from __future__ import annotations

from statistics import mean

from bench.l7.results import RunResult

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


def flow_batch() -> int:
    """The waypoint's flow batch size (``FlowRecorder``'s default, which the server uses)."""
    import inspect

    from l7proxy.flows import FlowRecorder

    default = inspect.signature(FlowRecorder).parameters["batch"].default
    return int(default) if isinstance(default, int) else 256


def gap_lines(result: RunResult) -> list[str]:
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
