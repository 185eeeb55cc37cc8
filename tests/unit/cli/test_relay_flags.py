"""The observer's TLS flags (`tulle agent --observer-tls-*`), `tulle relay`'s and `tulle certs
relay`: all files or none, plaintext only on loopback, a bad value named with its flag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import agent.daemon
from agent.cli.main import cli
from agent.cli.node import node_cli
from agent.flows.store import FlowRing
from agent.observer.certgen import AGENT_SECRET, RELAY_SECRET
from agent.observer.relayd import parse_peer, peers_from_nodes

TLS = ["--observer-tls-cert", "/s/tls.crt", "--observer-tls-key", "/s/tls.key",
       "--observer-tls-client-ca", "/s/ca.crt"]


def run_agent(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    seen: list[Any] = []
    monkeypatch.setattr(agent.daemon, "run", lambda config: seen.append(config) or 0)
    return CliRunner().invoke(node_cli, ["agent", "--node", "n1", *args]), seen


def test_the_observer_is_plaintext_on_loopback_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    out, [config] = run_agent([], monkeypatch)
    assert out.exit_code == 0, out.output
    assert config.observer_tls is None and config.observer_host == "127.0.0.1"


def test_the_node_address_needs_mtls(monkeypatch: pytest.MonkeyPatch) -> None:
    out, seen = run_agent(["--observer-host", "10.0.0.5"], monkeypatch)
    assert out.exit_code == 2 and not seen
    assert "'10.0.0.5' is not a loopback address" in out.output
    out, [config] = run_agent(["--observer-host", "10.0.0.5", *TLS], monkeypatch)
    assert out.exit_code == 0, out.output
    assert config.observer_tls == ("/s/tls.crt", "/s/tls.key", "/s/ca.crt")


def test_some_tls_files_without_the_others_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    out, seen = run_agent(TLS[:4], monkeypatch)
    assert out.exit_code == 2 and not seen
    assert "needs --observer-tls-client-ca too" in out.output


def test_unreadable_tls_files_stop_the_agent_with_the_reason(tmp_path: Path) -> None:
    config = agent.daemon.AgentConfig(
        node="n1", observer_port=0,
        observer_tls=(str(tmp_path / "tls.crt"), str(tmp_path / "k"), str(tmp_path / "ca")))
    with pytest.raises(SystemExit, match=r"observer TLS: cannot read the agent certificate"):
        agent.daemon._start_observer(FlowRing(10), config)


def test_the_relay_dials_network_peers_over_mtls_only() -> None:
    out = CliRunner().invoke(cli, ["relay", "--peer", "n1=10.0.0.1:4244"])
    assert out.exit_code == 2 and "dialled over mTLS only" in out.output
    out = CliRunner().invoke(cli, ["relay", "--tls-client-cert", "/c"])
    assert out.exit_code == 2 and "needs --tls-client-key and --tls-server-ca too" in out.output
    out = CliRunner().invoke(cli, ["relay", "--peer", "n1"])
    assert out.exit_code == 2 and "expected NAME=ADDRESS" in out.output


@pytest.mark.parametrize("text", ["n1=10.0.0.1", "n1=host:0", "=a:1", "n1=:4244"])
def test_a_bad_peer_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="NAME=ADDRESS|HOST:PORT"):
        parse_peer(text)


def test_peers_are_the_nodes_internal_ips() -> None:
    def node(name: str, *addresses: tuple[str, str]) -> dict[str, Any]:
        return {"metadata": {"name": name},
                "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}

    nodes = [node("b", ("Hostname", "b"), ("InternalIP", "10.0.0.2")),
             node("a", ("InternalIP", "fd00::1")), node("c", ("ExternalIP", "1.2.3.4")),
             node("d", ("InternalIP", "not-an-ip"))]
    assert peers_from_nodes(nodes) == [("a", "[fd00::1]:4244"), ("b", "10.0.0.2:4244")]


def test_certs_relay_writes_two_secrets_each_with_its_pair_and_the_ca() -> None:
    out = CliRunner().invoke(cli, ["certs", "relay", "--namespace", "ns1"])
    assert out.exit_code == 0, out.output
    secrets = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out.output)}
    assert set(secrets) == {AGENT_SECRET, RELAY_SECRET}
    for secret in secrets.values():
        assert secret["metadata"]["namespace"] == "ns1"
        assert set(secret["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    assert secrets[AGENT_SECRET]["stringData"]["ca.crt"] == \
        secrets[RELAY_SECRET]["stringData"]["ca.crt"]
