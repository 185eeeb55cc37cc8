"""The agent's DaemonSet does what a node needs: every node (tolerations, priority), one
agent per node through a rolling update, flags the agent's own CLI accepts with paths on the
mounts that hold them, probes that read the health file the agent writes, and an init
container that names the missing kernel headers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli.node import node_cli
from agent.tracing.cgroup import check_pod_cgroup
from controlplane.service import SERVICE_NAME
from identity.system import SYSTEM_NAMESPACE, ca_service_name
from lab.controlplane import CA_PORT
from tests.unit.deploy.rendered import OVERLAYS, one, render

HEALTH = "/run/tulle-health/agent.json"


def _pod(overlay: str = "production") -> dict[str, Any]:
    return dict(one(render(overlay), "DaemonSet", "tulle-agent")["spec"]["template"]["spec"])


def _container(pod: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name]
    return found


def _flags(container: dict[str, Any]) -> dict[str, str]:
    return dict(a.removeprefix("--").split("=", 1) for a in container["args"])


def _mounts(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container["volumeMounts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_it_runs_on_every_node_one_agent_at_a_time(overlay: str) -> None:
    daemonset = one(render(overlay), "DaemonSet", "tulle-agent")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}]  # every taint, every effect
    strategy = daemonset["spec"]["updateStrategy"]
    assert strategy == {"type": "RollingUpdate",
                        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}


def test_the_agent_is_not_privileged_and_holds_the_listed_capabilities() -> None:
    agent = _container(_pod(), "agent")
    security = agent["securityContext"]
    assert security["privileged"] is False and security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN", "SYS_ADMIN"]}
    assert security["seccompProfile"] == {"type": "Unconfined"}  # RuntimeDefault: not measured


def _exec_argv(container: dict[str, Any], address: str | None, tmp_path: Path
               ) -> subprocess.CompletedProcess[str]:
    """Run the container's shell command as the kubelet would (its $(VAR)s expanded), with a
    python3 that prints the argv it is given, one per line."""
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "python3"
    fake.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    fake.chmod(0o755)
    address_file = tmp_path / "waypoint-address"
    if address is not None:
        address_file.write_text(address)
    argv = [a.replace("$(NODE_NAME)", "node1").replace("$(HOST_IP)", "192.0.2.1")
            for a in [*container["command"], *container["args"]]]
    assert argv[:2] == ["sh", "-c"]
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "WAYPOINT_FILE": str(address_file)}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30,
                          check=False)


@pytest.mark.parametrize("address", ["10.244.1.254\n", ""])
def test_the_flags_are_the_agents_own(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, address: str
) -> None:
    """The shell wrapper adds the waypoint flags from node-setup's file (none when empty),
    and the args parse with the agent's CLI, values checked, into the config it would run
    (all but --pod-cgroup, whose check needs the node's cgroup: judged below by the same
    pure rule)."""
    import agent.daemon

    agent_container = _container(_pod(), "agent")
    done = _exec_argv(agent_container, address, tmp_path)
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    assert argv[:4] == ["-m", "agent.cli.node", "agent", "--node=node1"]
    configs: list[agent.daemon.AgentConfig] = []
    monkeypatch.setattr(agent.daemon, "run", lambda config: configs.append(config) or 0)
    args = [a for a in argv[3:] if not a.startswith("--pod-cgroup=")]
    result = CliRunner().invoke(node_cli, ["agent", *args])
    assert result.exit_code == 0, result.output
    [config] = configs
    assert config.node == "node1" and config.kubeconfig is None  # in-cluster ServiceAccount
    assert config.metrics_address == "192.0.2.1:9965"
    assert config.svid_dir == "/var/run/tulle/svid"  # on the state hostPath, for a waypoint
    assert config.pin_dir == "/sys/fs/bpf/tulle" and config.trace is True
    # tulle-cni's records, on the state hostPath that the chained plugin writes on the host
    assert config.cni_state_dir == "/var/run/tulle/cni"
    if address:
        assert config.waypoint == "10.244.1.254:15001"
        assert config.l7_intake == "/var/run/tulle/l7intake/flows.sock"
    else:
        assert config.waypoint is None and config.l7_intake is None


def test_the_waypoint_starts_on_the_address_node_setup_wrote(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import l7proxy.node

    pod = dict(one(render("production"), "DaemonSet", "tulle-waypoint")["spec"]["template"]["spec"])
    waypoint = _container(pod, "waypoint")
    missing = _exec_argv(waypoint, None, tmp_path)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "no waypoint address in" in missing.stderr and "node-setup" in missing.stderr
    done = _exec_argv(waypoint, "10.244.1.254\n", tmp_path)
    assert done.returncode == 0, done.stderr
    argv = done.stdout.splitlines()
    assert argv[:3] == ["-m", "agent.cli.node", "waypoint"]
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(l7proxy.node, "run", lambda *a: calls.append(a) or 0)
    result = CliRunner().invoke(node_cli, argv[2:])
    assert result.exit_code == 0, result.output
    [(node, kubeconfig, pin_dir, listen, intake, metrics, _split, svid_dir, _td, *_standby)] = calls
    assert (node, kubeconfig, listen, metrics) == ("node1", None, "10.244.1.254:15001",
                                                  "192.0.2.1:9966")
    agent = _container(_pod(), "agent")
    agent_flags = _flags(agent)
    assert pin_dir == agent_flags["pin-dir"] and svid_dir == "/var/run/tulle/svid"
    assert intake in agent["command"][2]  # the agent's --l7-intake
    assert pod["serviceAccountName"] == "tulle-waypoint" and pod["hostNetwork"] is True
    setup = _container(_pod(), "node-setup")
    assert {e["name"]: e.get("value") for e in setup["env"]}["WAYPOINT_FILE"] == (
        {e["name"]: e.get("value") for e in waypoint["env"]}["WAYPOINT_FILE"])


def test_every_path_the_agent_uses_is_on_a_mount() -> None:
    pod = _pod()
    agent = _container(pod, "agent")
    flags, mounts = _flags(agent), _mounts(agent)
    assert flags["pin-dir"].startswith("/sys/fs/bpf/")
    assert mounts["/sys/fs/bpf"]["mountPropagation"] == "HostToContainer"  # sees the init's mount
    for flag in ("state-dir", "observer-socket"):
        assert flags[flag].startswith("/var/run/tulle"), flag
    assert Path(flags["health-file"]).parent.as_posix() in mounts
    assert check_pod_cgroup(flags["pod-cgroup"], ["/run/tulle/cgroupv2"])
    assert mounts["/run/tulle/cgroupv2"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/run/tulle/cgroupv2"]["name"]]["hostPath"]["path"] == "/sys/fs/cgroup"
    for headers in ("/lib/modules", "/usr/src"):
        assert mounts[headers]["readOnly"] is True
    # One system namespace: the DaemonSet's, the agent's flag, the CA's name in --ca-address.
    daemonset = one(render("production"), "DaemonSet", "tulle-agent")
    assert daemonset["metadata"]["namespace"] == flags["system-namespace"] == SYSTEM_NAMESPACE
    assert flags["ca-address"] == f"{ca_service_name(SYSTEM_NAMESPACE)}:{CA_PORT}"
    assert ca_service_name(SYSTEM_NAMESPACE).startswith(f"{SERVICE_NAME}.")
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"  # resolves that name on hostNetwork
    bpffs = _container(pod, "mount-bpffs")
    assert _mounts(bpffs)["/sys/fs/bpf"]["mountPropagation"] == "Bidirectional"


def _probe(probe: dict[str, Any], health: Path) -> int:
    command = [part.replace(HEALTH, str(health)) for part in probe["exec"]["command"]]
    assert command[0] == "python3"
    return subprocess.run([sys.executable, *command[1:]], capture_output=True,
                          timeout=30, check=False).returncode


@pytest.mark.parametrize(
    ("ready", "age", "live", "is_ready"),
    [(True, 0, 0, 0), (False, 0, 0, 1), (True, 120, 1, 1)],
)
def test_the_probes_read_the_agents_health_file(
    tmp_path: Path, ready: bool, age: float, live: int, is_ready: int
) -> None:
    agent = _container(_pod(), "agent")
    assert HEALTH.endswith(Path(_flags(agent)["health-file"]).name)
    health = tmp_path / "agent.json"
    health.write_text(json.dumps({"ready": ready, "time": time.time() - age}))
    assert _probe(agent["livenessProbe"], health) == live
    assert _probe(agent["startupProbe"], health) == live
    assert _probe(agent["readinessProbe"], health) == is_ready
    health.unlink()  # no file yet: neither live nor ready
    assert _probe(agent["livenessProbe"], health) != 0
    assert _probe(agent["readinessProbe"], health) != 0


def _headers_check(modules: Path) -> subprocess.CompletedProcess[str]:
    init = _container(_pod(), "check-kernel-headers")
    assert init["command"][:2] == ["sh", "-c"]
    return subprocess.run(["sh", "-c", init["command"][2]], capture_output=True, text=True,
                          env={**os.environ, "MODULES": str(modules)}, timeout=30, check=False)


def test_a_node_without_kernel_headers_is_told_what_to_install(tmp_path: Path) -> None:
    release = os.uname().release
    missing = _headers_check(tmp_path)
    assert missing.returncode == 1
    assert f"no kernel headers for {release}" in missing.stderr
    assert f"linux-headers-{release}" in missing.stderr
    (tmp_path / release / "build").mkdir(parents=True)
    found = _headers_check(tmp_path)
    assert found.returncode == 0, found.stderr


def test_cni_chaining_installs_the_plugin_with_the_installers_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The component's init container runs cni.install with flags it accepts, on the host's
    CNI directories, and points the plugin at the agent's state hostPath."""
    import cni.install

    assert "install-cni" not in {c["name"] for c in _pod()["initContainers"]}  # opt-in
    pod = _pod("cni-chaining")
    init = _container(pod, "install-cni")
    assert init["command"] == ["python3", "-m", "cni.install"]
    calls: list[tuple[Path, Path, dict[str, Any]]] = []
    monkeypatch.setattr(cni.install, "install",
                        lambda c, b, e: calls.append((c, b, e)) or ["ok"])
    assert cni.install.main(init["args"]) == 0
    [(confdir, bindir, plugin)] = calls
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in init["volumeMounts"]}
    assert mounts[str(confdir)] == "/etc/cni/net.d" and mounts[str(bindir)] == "/opt/cni/bin"
    agent_state = _mounts(_container(pod, "agent"))["/var/run/tulle"]
    assert volumes[agent_state["name"]] == "/var/run/tulle"
    # ADD waits (10 s at most) for the agent, which reads that directory (--cni-state-dir)
    assert plugin == {"type": "tulle-cni", "stateDir": "/var/run/tulle/cni", "attachTimeout": 10}
    assert "--cni-state-dir=/var/run/tulle/cni" in _container(pod, "agent")["args"]
