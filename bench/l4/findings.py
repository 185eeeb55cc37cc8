"""What limits the numbers, stated from what the run saw (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.l4.results import (
    CLOSE,
    DIRECT_PLAIN,
    DIRECT_TULLE,
    IPTABLES,
    IPTABLES_NODEPORT,
    KEEPALIVE,
    PATH_TITLES,
    TULLE,
    TULLE_NODEPORT,
    Measurement,
    find,
    ratio,
)


def _max(values: Sequence[float]) -> float:
    return max(values) if values else 0.0


def limits(machine: dict[str, Any], busy: Sequence[dict[str, Any]],
           measurements: Sequence[Measurement], tulle_sync: Sequence[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    nproc = int(machine.get("nproc") or 0)
    if nproc <= 4:
        out.append(
            f"{nproc} vCPUs for everything: wrk (2 threads), nginx (1 worker), the kernel's "
            "softirq work for both ends of every connection (veths, fabric bridge, tc or "
            "netfilter), and the labs' agents all share them. The figures are the cost per "
            "request of the whole stack on these cores, not a datapath's ceiling; the ratios "
            "are what carries over to larger machines."
        )
    out.append(
        "Backend is nginx (one worker, `return 200`), not the lab's Python echo server, "
        "which would cap every path at a few thousand requests per second."
    )
    others = [r.others_cores for m in measurements for r in m.runs]
    if busy or _max(others) >= 0.1:
        names = "; ".join(f"{b['cmd'][:60]} ({b['cores']} cores)" for b in busy[:4])
        mean = sum(others) / len(others) if others else 0.0
        out.append(
            "Other work shared the machine: processes outside the benchmark used up to "
            f"{_max(others):.2f} cores during a run (mean {mean:.2f}; see the 'others' column)"
            + (f"; busy at start: {names}" if names else "") + ". "
            "That is why every figure is the best of its runs and all runs are listed."
        )
    tulle_paths, ipt_paths = (TULLE, TULLE_NODEPORT), (IPTABLES, IPTABLES_NODEPORT)
    tulle_cores = [r.lab_cores for m in measurements if m.path in tulle_paths
                   and m.mode == CLOSE for r in m.runs]
    ipt_cores = [r.lab_cores for m in measurements if m.path in ipt_paths and m.mode == CLOSE
                 for r in m.runs]
    if tulle_cores:
        roles: dict[str, float] = {}
        for m in measurements:
            if m.path in tulle_paths and m.mode == CLOSE:
                for r in m.runs:
                    for role, cores in r.lab_roles.items():
                        roles[role] = max(roles.get(role, 0.0), cores)
        top = ", ".join(f"{role} {cores:.2f}" for role, cores in
                        sorted(roles.items(), key=lambda kv: -kv[1])[:3] if cores >= 0.05)
        out.append(
            "Tulle reports every connection open and close as a flow event through a ring "
            "buffer that the agent drains in Python: during new-connection runs the Tulle "
            f"lab's own processes used up to {_max(tulle_cores):.2f} cores"
            + (f" ({top})" if top else "")
            + (f"; the comparison lab's {_max(ipt_cores):.2f}" if ipt_cores else "")
            + ". They run on the same cores as wrk and nginx, so that cost is part of "
            "Tulle's figures (on a larger node it would sit on otherwise idle cores)."
        )
    direct_close = ratio("", find(list(measurements), DIRECT_TULLE, CLOSE),
                         find(list(measurements), DIRECT_PLAIN, CLOSE))
    direct_keep = ratio("", find(list(measurements), DIRECT_TULLE, KEEPALIVE),
                        find(list(measurements), DIRECT_PLAIN, KEEPALIVE))
    if direct_close.value is not None and direct_close.value < 0.9:
        out.append(
            "The cost is per connection, not per service: to the pod IP, with no service "
            f"translation at all, the Tulle lab reaches {direct_close.value:.2f}x the new "
            "connections per second of the lab without a datapath"
            + (f" (keep-alive: {direct_keep.value:.2f}x)" if direct_keep.value is not None
               else "") + "."
        )
    slow = [(m, r) for m in measurements for r in m.runs
            if r.result.p99_ms is not None and r.result.p99_ms >= 100]
    if slow:
        out.append(
            "Latency outliers: "
            + "; ".join(f"{PATH_TITLES[m.path]}"
                        + (f" at {m.services:,} services" if m.services else "")
                        + f", {m.mode} run with p99 {r.result.p99_ms:,.0f} ms "
                        f"(p50 {r.result.p50_ms or 0:.2f} ms)" for m, r in slow[:3])
            + ": a few connections stalled for a retransmission timeout or more."
        )
    if "nf_tables" in str(machine.get("iptables", "")):
        out.append(
            "iptables here is the nf_tables backend (iptables-nft), as on Debian 12 and most "
            "current distributions, where kube-proxy's iptables mode uses it too; its rules "
            "are still walked one by one for the first packet of each connection."
        )
    heavy = [s for s in tulle_sync if (s.get("node1_last_sync_ms") or 0) > 1000]
    if heavy:
        worst = max(heavy, key=lambda s: s["services"])
        out.append(
            f"Tulle's agent resyncs all desired state on every change: at "
            f"{worst['services']:,} services one sync took {worst['node1_last_sync_ms']:,.0f} ms "
            f"and a new Service answered {worst.get('target_first_ok_s', 0) * 1000:,.0f} ms "
            "after its apply, against the issue's 200 ms for endpoint changes."
        )
    return out
