"""bench/l4's NodePort rows (issue 15): the Services both labs get, the run's flags, the
target ratio and the report."""

from __future__ import annotations

from typing import Any

import pytest

from bench.l4 import manifests, report
from bench.l4.cli import parse_args
from bench.l4.kubeproxy import restore_text
from bench.l4.results import (
    CLOSE,
    CLUSTERIP,
    IPTABLES_NODEPORT,
    KEEPALIVE,
    NODEPORT,
    TULLE,
    TULLE_NODEPORT,
    Measurement,
    Run,
    ratios,
)
from bench.l4.wrk import WrkResult


def test_nodeport_services_are_the_same_in_both_labs() -> None:
    """The Tulle lab's objects and the comparison lab's kube-proxy view: same ClusterIPs, same
    node ports, the target last in both."""
    tulle = [o for i in (1, 2) for o in manifests.filler_objects(i, "10.244.2.5", True)
             if o["kind"] == "Service"] + [manifests.target_service(node_port=True)]
    ipt = manifests.iptables_service_ports("10.244.2.5", 3, node_port=True)
    assert [(s["metadata"]["name"], s["spec"]["clusterIP"], s["spec"]["ports"][0]["nodePort"])
            for s in tulle] == [(p.name, p.vip, p.node_port) for p in ipt]
    assert all(s["spec"]["type"] == "NodePort" and s["spec"]["externalTrafficPolicy"] == "Cluster"
               for s in tulle)
    assert ipt[-1].name == "target" and ipt[-1].node_port == manifests.TARGET_NODE_PORT
    text = restore_text(ipt, manifests.CLUSTER_CIDR)
    nodeports = [line for line in text.splitlines() if line.startswith("-A KUBE-NODEPORTS ")]
    assert len(nodeports) == 3 and "--dport 20000 " in nodeports[-1]


def test_clusterip_runs_keep_clusterip_services() -> None:
    (svc, _) = manifests.filler_objects(1, "10.244.2.5")
    assert "type" not in svc["spec"] and "nodePort" not in svc["spec"]["ports"][0]
    assert all(p.node_port is None for p in manifests.iptables_service_ports("10.244.2.5", 2))


def test_ten_thousand_nodeports_fit_below_the_ephemeral_ports() -> None:
    assert manifests.node_port_range_flag() == "20000-32767"
    assert manifests.MAX_NODE_PORT_SERVICES >= 10_000
    assert manifests.filler_node_port(9_999) == 29_999
    assert manifests.NODE_PORT_RANGE.stop <= 32_768  # Linux's ip_local_port_range start
    with pytest.raises(ValueError, match="node port range 20000-32767 holds 12,768"):
        manifests.filler_node_port(manifests.MAX_NODE_PORT_SERVICES)


def test_paths_default_to_both_and_select_one() -> None:
    cfg, *_ = parse_args([])
    assert cfg.paths == (CLUSTERIP, NODEPORT) and cfg.nodeport
    cfg, *_, tag = parse_args(["--paths", "nodeport", "--counts", "1,10000", "--tag",
                               "busy-smoke"])
    assert cfg.paths == (NODEPORT,) and cfg.counts == (1, 10_000) and tag == "busy-smoke"
    cfg, *_ = parse_args(["--paths", "clusterip", "--counts", "1,40000"])
    assert not cfg.nodeport


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--paths", "loadbalancer"], "--paths takes clusterip, nodeport"),
        (["--paths", ","], "--paths takes clusterip, nodeport"),
        (["--counts", "1,20000"], "at most 12,768 Services"),
        (["--counts", "1,ten"], "--counts takes numbers"),
        (["--tag", "../x"], "--tag takes letters, digits and dashes"),
    ],
)
def test_bad_flags_are_refused(argv: list[str], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def measured(path: str, services: int, mode: str, *rps: float) -> Measurement:
    runs = [Run(WrkResult(r, int(r * 10), 10.0, 1.0, 2.0), 0.5, 0.1) for r in rps]
    return Measurement(path, services, mode, "http://10.240.0.10:20000/", runs)


def nodeport_run(tulle_top: float) -> list[Measurement]:
    return [
        measured(TULLE_NODEPORT, 1, CLOSE, 9_000), measured(IPTABLES_NODEPORT, 1, CLOSE, 8_000),
        measured(TULLE_NODEPORT, 10_000, CLOSE, tulle_top, tulle_top - 100),
        measured(IPTABLES_NODEPORT, 10_000, CLOSE, 2_000, 1_900),
        measured(TULLE_NODEPORT, 10_000, KEEPALIVE, 30_000),
        measured(IPTABLES_NODEPORT, 10_000, KEEPALIVE, 29_000),
    ]


@pytest.mark.parametrize(("tulle_top", "met"), [(4_100, True), (3_900, False)])
def test_the_nodeport_target_is_two_times_iptables_new_connections(tulle_top: float,
                                                                   met: bool) -> None:
    rs = ratios(nodeport_run(tulle_top), [1, 10_000])
    targets = [r for r in rs if r.target is not None]
    assert [(r.name, r.target, r.met) for r in targets] == [
        ("NodePort new conn/s at 10,000 services: Tulle ÷ iptables", 2.0, met)]
    assert targets[0].value == round(tulle_top / 2_000, 3)
    assert targets[0].low == round((tulle_top - 100) / 2_000, 3)
    keep = next(r for r in rs if r.name.startswith("NodePort keep-alive req/s at 10,000"))
    assert keep.value == round(30_000 / 29_000, 3) and keep.target is None


def test_a_clusterip_run_has_no_nodeport_ratios_and_the_reverse() -> None:
    cluster = [measured(TULLE, 1, CLOSE, 9_000)]
    assert not any("NodePort" in r.name for r in ratios(cluster, [1]))
    assert not any("ClusterIP" in r.name or r.name.startswith("new conn/s")
                   for r in ratios(nodeport_run(4_000), [1, 10_000]))


def test_report_shows_the_nodeport_rows_target_and_range() -> None:
    ms = nodeport_run(4_100)
    rep: dict[str, Any] = {
        "date": "2026-12-06 13:00 UTC",
        "machine": {"nproc": 2, "cpu": "x", "kernel": "6.1", "memory_gib": 8, "wrk": "wrk",
                    "nginx": "nginx", "iptables": "iptables v1.8.9 (nf_tables)",
                    "loadavg_start": [1.0, 1.0, 1.0]},
        "config": {"counts": [1, 10_000], "seconds": 3, "repeats": 1, "threads": 2,
                   "connections": 32, "quick": False, "paths": [NODEPORT],
                   "node_port_range": "20000-32767"},
        "tulle_sync": [], "iptables_sync": [
            {"services": 10_000, "nat_rules": 50_000, "kube_nodeports_rules": 10_000,
             "restore_s": 1.5}],
        "limits": [], "notes": [],
    }
    md = report.render_markdown(rep, ms, ratios(ms, [1, 10_000]))
    assert "| NodePort via Tulle eBPF (external client -> node1) | 10,000 | 4,100 |" in md
    assert "| NodePort via iptables (kube-proxy chains, external client -> node1) | 10,000 " \
           "| 2,000 |" in md
    assert "| NodePort new conn/s at 10,000 services: Tulle ÷ iptables | 2.050 |" in md
    assert "**met**" in md
    assert "`--service-node-port-range 20000-32767`" in md
    assert "| 10,000 | 50,000 | 10,000 | 1,500 |" in md
    assert "from a client pod" not in md and "not claims" not in md
    rep["config"]["quick"] = True
    assert "these statuses are not claims" in report.render_markdown(rep, ms, [])


def test_the_labs_own_cpu_is_reported_for_nodeport_runs_too() -> None:
    from bench.l4.findings import limits

    out = limits({"nproc": 2}, [], nodeport_run(4_000), [])
    assert any("the Tulle lab's own processes used up to 0.10 cores" in line
               and "the comparison lab's 0.10" in line for line in out)
