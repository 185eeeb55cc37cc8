"""The SVID manager inside the node agent: the agent's cluster state says which identities
its node's pods need, the ConfigMap brings the bundle, the agent's own kubeconfig token
authenticates to the real certificate service (in this process, on a unix socket), and the
agent's health report shows what it holds. A clean stop ends its threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lightkube import KubeConfig
from prometheus_client import CollectorRegistry

from agent.kube.backoff import Backoff
from agent.kube.source import connect
from agent.node_agent import Agent
from agent.svid import service, store
from agent.svid.bundlewatch import NAME, NAMESPACE
from agent.svid.manager import SvidConfig, fingerprint
from controlplane.auth import Caller, StaticTokens
from controlplane.certificates import CertificateServicer, serve
from controlplane.issuer import AGENT_ACCOUNT
from identity.authz import PodRecord
from identity.ca import CertificateAuthority
from tests.unit.kube.conftest import Lab, account_kubeconfig, serve_lab

TD = "cluster.local"


def wait_for(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def pod(name: str, sa: str, node: str = "node1") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "nodeName": node,
            "serviceAccountName": sa,
            "containers": [{"name": "c", "image": "x"}],
        },
        "status": {"phase": "Running"},
    }


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_lab(tmp_path, gateway_api=False)


def test_the_agent_holds_the_svids_of_its_nodes_pods(lab: Lab, tmp_path: Path) -> None:
    kubeconfig = account_kubeconfig(lab, "tulle-agent")
    config = KubeConfig.from_file(kubeconfig).get()
    assert config is not None and config.user.token
    ca = CertificateAuthority.generate_root("root", datetime.now(UTC) - timedelta(days=1))
    lab.store.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"tulle.io/mtls": "true"}},
        }
    )
    lab.store.create(pod("web-1", "web"))
    lab.store.create(pod("db-1", "db", node="node2"))  # another node's: not asked for
    # The CA's view of the cluster (in the lab, slice A's informer): web on node1.
    servicer = CertificateServicer(
        ca,
        TD,
        StaticTokens({config.user.token: Caller("node1", AGENT_ACCOUNT)}),
        lambda node: [PodRecord("shop", "web-1", "node1", "web")] if node == "node1" else [],
        registry=CollectorRegistry(),
    )
    socket = tmp_path / "ca.sock"
    server, _ = serve(servicer, f"unix:{socket}", None)
    agent = Agent("node1", connect(kubeconfig), backoff=Backoff(0.02, 0.2))
    registry = CollectorRegistry()
    directory = tmp_path / "svid"
    agent.source.start()
    before = set(threading.enumerate())
    agent.svids = service.start(
        agent.client,
        str(kubeconfig),
        agent.source,
        "node1",
        f"unix:{socket}",
        SvidConfig(directory, TD),
        registry,
    )
    try:
        wait_for(lambda: agent.source.synced, "the agent's first sync")
        assert store.read_svids(directory) == {}  # no bundle yet: nothing asked
        wait_for(
            lambda: "no ConfigMap" in (agent.health()["trust_bundle"]["error"] or ""),  # type: ignore[index]
            "the bundle watch's first list",
        )
        assert store.read_svids(directory) == {}
        lab.store.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "data": {
                    "trust-domain": TD,
                    "roots.pem": ca.root.public_bytes(Encoding.PEM).decode(),
                },
            }
        )
        wait_for(lambda: list(store.read_svids(directory)) == [("shop", "web")], "web's SVID")
        report = agent.health()
        [held] = report["svids"]  # type: ignore[misc]
        assert held["spiffe_id"] == "spiffe://cluster.local/ns/shop/sa/web"
        assert held["root"] == fingerprint(ca.root)
        assert report["trust_bundle"]["roots"][0]["fingerprint"] == fingerprint(ca.root)  # type: ignore[index]
        assert registry.get_sample_value("tulle_svid_requests_total", {"result": "issued"}) == 1
        # A second pod of another identity arrives on the node: the CA refuses (its view has
        # no such pod); counted, backed off, the first SVID untouched.
        lab.store.create(pod("api-1", "api"))
        wait_for(
            lambda: (
                (
                    registry.get_sample_value(
                        "tulle_svid_requests_total", {"result": "node-not-authorized"}
                    )
                    or 0
                )
                >= 1
            ),
            "the refused request",
        )
        assert list(store.read_svids(directory)) == [("shop", "web")]
    finally:
        agent.svids.stop()
        agent.source.stop()
        server.stop(None).wait()
    started = {t for t in threading.enumerate() if t not in before}
    assert not [t for t in started if t.name in ("svids", "watch-trust-bundle")]


@pytest.mark.parametrize(
    ("svid_dir", "state_dir", "want"),
    [
        ("/x/svid", None, "/x/svid"),
        (None, "/var/run/tulle", "/var/run/tulle/svid"),
    ],
)
def test_the_svid_directory_defaults_under_the_state_dir(
    svid_dir: str | None, state_dir: str | None, want: str
) -> None:
    assert str(service.svid_dir(svid_dir, state_dir)) == want


def test_no_svid_directory_is_an_error() -> None:
    with pytest.raises(ValueError, match="--svid-dir"):
        service.svid_dir(None, None)


def test_the_agent_process_reports_its_svids_and_stops_cleanly(lab: Lab, tmp_path: Path) -> None:
    """`tulle agent --ca-address` as a process (no datapath): its health file carries the
    SVID sections, its directory the SVID, and SIGTERM ends it."""
    import json
    import os
    import signal
    import subprocess
    import sys

    kubeconfig = account_kubeconfig(lab, "tulle-agent")
    config = KubeConfig.from_file(kubeconfig).get()
    assert config is not None and config.user.token
    ca = CertificateAuthority.generate_root("root", datetime.now(UTC) - timedelta(days=1))
    lab.store.create(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "shop", "labels": {"tulle.io/mtls": "true"}},
        }
    )
    lab.store.create(pod("web-1", "web"))
    lab.store.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "data": {"trust-domain": TD, "roots.pem": ca.root.public_bytes(Encoding.PEM).decode()},
        }
    )
    servicer = CertificateServicer(
        ca,
        TD,
        StaticTokens({config.user.token: Caller("node1", AGENT_ACCOUNT)}),
        lambda node: [PodRecord("shop", "web-1", "node1", "web")],
        registry=CollectorRegistry(),
    )
    socket = tmp_path / "ca.sock"
    server, _ = serve(servicer, f"unix:{socket}", None)
    health = tmp_path / "health.json"
    state = tmp_path / "state"
    args = [
        sys.executable,
        "-m",
        "agent.cli.node",
        "agent",
        "--node",
        "node1",
        "--kubeconfig",
        str(kubeconfig),
        "--health-file",
        str(health),
        "--state-dir",
        str(state),
        "--metrics-address",
        "",
        "--observer-port",
        "0",
        "--ca-address",
        f"unix:{socket}",
        "--svid-lifetime",
        "3600",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    log = tmp_path / "agent.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)

    def report() -> dict[str, Any]:
        try:
            return dict(json.loads(health.read_text()))
        except (OSError, ValueError):
            return {}

    try:
        wait_for(lambda: bool(report().get("svids")) or proc.poll() is not None, "the report")
        assert proc.poll() is None, log.read_text()[-3000:]
        [held] = report()["svids"]
        assert held["spiffe_id"] == "spiffe://cluster.local/ns/shop/sa/web"
        assert list(store.read_svids(state / "svid")) == [("shop", "web")]
        assert report()["ca_address"] == f"unix:{socket}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.stop(None).wait()
