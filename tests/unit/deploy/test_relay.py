"""The relay's manifests: the agent opens its observer port to the relay only with the mTLS
Secret mounted, the relay's flags parse with its own CLI into files on its Secret's mount, and
the ports agree (agent container port, the relay's --agent-port, the relay's Service)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import agent.daemon
import agent.observer.relayd
from agent.cli.node import node_cli
from agent.observer import AGENT_PORT, RELAY_PORT
from agent.observer.certgen import AGENT_SECRET, RELAY_SECRET
from agent.observer.tls import server_name, server_wildcard
from tests.unit.deploy.rendered import one, render


def _pod(kind: str, name: str) -> dict[str, Any]:
    return dict(one(render("production"), kind, name)["spec"]["template"]["spec"])


def _secret_mount(pod: dict[str, Any], container: dict[str, Any], secret: str) -> str:
    [volume] = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == secret]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    return str(mount["mountPath"])


def _agent_argv(tmp_path: Path, tls_dir: Path) -> subprocess.CompletedProcess[str]:
    """The agent container's shell, as the kubelet runs it, with a python3 printing its argv."""
    pod = _pod("DaemonSet", "tulle-agent")
    [container] = [c for c in pod["containers"] if c["name"] == "agent"]
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "python3").write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    (bindir / "python3").chmod(0o755)
    (tmp_path / "waypoint-address").write_text("")
    argv = [a.replace("$(NODE_NAME)", "node1").replace("$(HOST_IP)", "192.0.2.1")
            for a in [*container["command"], *container["args"]]]
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "WAYPOINT_FILE": str(tmp_path / "waypoint-address"),
           "OBSERVER_TLS": str(tls_dir), "HOST_IP": "192.0.2.1"}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30, check=False)


def _agent_config(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> agent.daemon.AgentConfig:
    configs: list[agent.daemon.AgentConfig] = []
    monkeypatch.setattr(agent.daemon, "run", lambda config: configs.append(config) or 0)
    args = [a for a in argv[3:] if not a.startswith("--pod-cgroup=")]
    result = CliRunner().invoke(node_cli, ["agent", *args])
    assert result.exit_code == 0, result.output
    [config] = configs
    return config


def test_the_agent_serves_the_relay_on_its_node_address_with_the_secret(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pod = _pod("DaemonSet", "tulle-agent")
    [container] = [c for c in pod["containers"] if c["name"] == "agent"]
    mount = _secret_mount(pod, container, AGENT_SECRET)
    [volume] = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == AGENT_SECRET]
    assert volume["secret"]["optional"] is True  # the agent runs without it
    assert {"name": "OBSERVER_TLS", "value": mount} in container["env"]
    assert {"name": "observer", "containerPort": AGENT_PORT, "protocol": "TCP"} in \
        container["ports"]

    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    (tls_dir / "tls.crt").write_text("pem")
    done = _agent_argv(tmp_path, tls_dir)
    assert done.returncode == 0, done.stderr
    config = _agent_config(monkeypatch, done.stdout.splitlines())
    assert config.observer_host == "192.0.2.1" and config.observer_port == AGENT_PORT
    assert config.observer_tls == (f"{tls_dir}/tls.crt", f"{tls_dir}/tls.key",
                                   f"{tls_dir}/ca.crt")


def test_without_the_secret_the_observer_stays_on_loopback_and_says_so(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    done = _agent_argv(tmp_path, tmp_path / "empty")
    assert done.returncode == 0, done.stderr
    assert "no Secret tulle-observer-server-certs" in done.stderr
    config = _agent_config(monkeypatch, done.stdout.splitlines())
    assert config.observer_host == "127.0.0.1" and config.observer_tls is None


def test_the_relays_flags_are_its_own_and_its_files_on_its_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    pod = _pod("Deployment", "tulle-relay")
    [container] = pod["containers"]
    mount = _secret_mount(pod, container, RELAY_SECRET)
    configs: list[agent.observer.relayd.RelayConfig] = []
    monkeypatch.setattr(agent.observer.relayd, "run", lambda c: configs.append(c) or 0)
    assert container["command"] == ["python3", "-m", "agent.cli.node", "relay"]
    result = CliRunner().invoke(node_cli, ["relay", *container["args"]])
    assert result.exit_code == 0, result.output
    [config] = configs
    assert config.tls == (f"{mount}/tls.crt", f"{mount}/tls.key", f"{mount}/ca.crt")
    assert config.agent_port == AGENT_PORT and config.static_peers == ()  # Nodes from the API
    # The name the relay checks is on the certificate `tulle certs relay` makes.
    assert server_name("node1", config.cluster).endswith(server_wildcard().removeprefix("*"))
    assert config.listen == f"0.0.0.0:{RELAY_PORT}"
    [port] = container["ports"]
    assert port["containerPort"] == RELAY_PORT
    service = one(render("production"), "Service", "tulle-relay")
    labels = one(render("production"), "Deployment", "tulle-relay")["spec"]["template"][
        "metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [{"name": "grpc", "port": RELAY_PORT,
                                         "targetPort": port["name"], "protocol": "TCP"}]


def test_the_relay_may_list_nodes_and_nothing_else() -> None:
    role = one(render("production"), "ClusterRole", "tulle-relay")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
