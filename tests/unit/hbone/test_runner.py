"""The waypoint's HBONE wiring: the directory callbacks from pods and nodes, the runner
(both listeners, the SVID directory watched), and the `tulle waypoint` flags."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import l7proxy.node
from agent.cli.node import node_cli
from agent.model.convert import from_dict
from agent.svid.store import write_svid
from l7proxy.hbone import runner
from l7proxy.hbone.directory import build
from tests.unit.hbone.harness import TD, mint, root, serial_of, spiffe, svid_dir, wait_for


def pod(
    name: str,
    ip: str | None,
    node: str | None,
    sa: str | None = None,
    phase: str = "Running",
    host_ip: str = "192.168.0.1",
) -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "i"}]}
    if node:
        spec["nodeName"] = node
    if sa:
        spec["serviceAccountName"] = sa
    status: dict[str, Any] = {"phase": phase, "hostIP": host_ip}
    if ip:
        status["podIP"] = ip
    return from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "spec": spec,
            "status": status,
            "metadata": {"name": name, "namespace": "shop"},
        }
    )


def node(name: str, cidr: str | None) -> Any:
    spec = {"podCIDR": cidr} if cidr else {}
    return from_dict({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec})


def test_directory_from_pods_and_nodes() -> None:
    pods = [
        pod("web", "10.1.0.5", "n1", "web"),
        pod("db", "10.1.1.5", "n2"),  # no ServiceAccount: default
        pod("pending", None, "n1"),
        pod("unscheduled", "10.1.0.9", None),
        pod("done", "10.1.0.7", "n1", phase="Succeeded"),
        pod("hostnet", "192.168.0.1", "n1"),
    ]
    d = build(
        "n1", pods, [node("n1", "10.1.0.0/24"), node("n2", "10.1.1.0/24"), node("n3", None)], TD
    )
    assert d.identity_of("10.1.0.5") == spiffe("shop", "web")
    assert d.identity_of("10.1.1.5") == spiffe("shop", "default")
    for gone in ("10.1.0.9", "10.1.0.7", "192.168.0.1", "10.9.9.9"):
        assert d.identity_of(gone) is None
    assert d.is_local("10.1.0.5") and not d.is_local("10.1.1.5") and not d.is_local("10.9.9.9")
    assert d.waypoint_of("10.1.1.5") == ("10.1.1.254", 15008)
    assert d.waypoint_of("10.1.0.5") == ("10.1.0.254", 15008)  # same node: tunnels too
    assert d.waypoint_of("10.9.9.9") is None


def test_runner_listens_and_reloads_the_svid_directory(tmp_path: Path) -> None:
    ca = root()
    first = mint(ca, "shop", "web")
    directory = svid_dir(tmp_path, [ca], [first])

    async def main() -> None:
        hbone = await runner.start(
            "n1",
            "127.0.0.31",
            directory,
            TD,
            original_destination=lambda c: None,
            admit=lambda s, d, p: True,
            on_event=lambda e: None,
            mark=0,
            pods=[pod("web", "10.1.0.5", "n1", "web")],
            nodes=[node("n1", "10.1.0.0/24")],
            ports=(0, 0),
        )
        try:
            assert hbone.server.address[0] == hbone.outbound.address[0] == "127.0.0.31"
            assert hbone.directory.identity_of("10.1.0.5") == spiffe("shop", "web")
            hbone.update([], [])
            assert hbone.directory.identity_of("10.1.0.5") is None
            renewed = mint(ca, "shop", "web")
            write_svid(directory, renewed)

            def held() -> int:
                assert hbone.svids.current is not None
                return hbone.svids.current.held[spiffe("shop", "web")].serial

            assert held() == serial_of(first)
            await wait_for(lambda: held() == serial_of(renewed), timeout=3 * runner.POLL_SECONDS)
            expiry = list(hbone.metrics.collect())[-1]
            assert expiry.name == "tulle_waypoint_svid_expiry_seconds"
            assert 3000 < expiry.samples[0].value <= 3600
        finally:
            await hbone.close()

    asyncio.run(main())


def test_waypoint_flags_reach_the_runner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[tuple[Any, ...]] = []

    def run(*args: Any) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(l7proxy.node, "run", run)
    base = [
        "waypoint",
        "--node",
        "n1",
        "--pin-dir",
        "/p",
        "--listen",
        "10.1.0.254:15001",
        "--flow-intake",
        "/i",
    ]
    out = CliRunner().invoke(node_cli, base)
    assert out.exit_code == 0, out.output
    assert seen[-1][7:9] == (None, "cluster.local")  # no --svid-dir: no HBONE
    out = CliRunner().invoke(
        node_cli, [*base, "--svid-dir", str(tmp_path), "--trust-domain", "prod.example"]
    )
    assert out.exit_code == 0, out.output
    assert seen[-1][7:9] == (str(tmp_path), "prod.example")
    out = CliRunner().invoke(node_cli, [*base, "--trust-domain", "Bad:1"])
    assert out.exit_code == 2 and "Invalid value for --trust-domain" in out.output
