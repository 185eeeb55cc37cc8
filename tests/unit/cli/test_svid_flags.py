"""`tulle agent --ca-address/--svid-dir/--svid-lifetime`: off when absent, checked at start
(a bad value is a usage error naming the flag), and handed to the agent's configuration."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

import agent.daemon
from agent.cli.node import node_cli


def run_agent(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    seen: list[Any] = []
    monkeypatch.setattr(agent.daemon, "run", lambda config: seen.append(config) or 0)
    return CliRunner().invoke(node_cli, ["agent", "--node", "n1", *args]), seen


def test_without_a_ca_address_there_are_no_svids(monkeypatch: pytest.MonkeyPatch) -> None:
    out, [config] = run_agent(["--svid-dir", "/x"], monkeypatch)
    assert out.exit_code == 0, out.output
    assert config.ca_address is None and config.svid_dir is None


@pytest.mark.parametrize(
    ("args", "address", "directory", "lifetime"),
    [
        (
            ["--ca-address", "tulle-controlplane.tulle-system.svc:15012"],
            "tulle-controlplane.tulle-system.svc:15012",
            "/var/run/tulle/svid",
            86_400,
        ),
        (
            ["--ca-address", "10.0.0.1:9443", "--state-dir", "/run/x/", "--svid-lifetime", "60"],
            "10.0.0.1:9443",
            "/run/x/svid",
            60,
        ),
        (["--ca-address", "[fd00::1]:9443", "--svid-dir", "/s"], "[fd00::1]:9443", "/s", 86_400),
        (
            ["--ca-address", "unix:/run/tulle/ca.sock", "--svid-dir", "/s"],
            "unix:/run/tulle/ca.sock",
            "/s",
            86_400,
        ),
    ],
)
def test_the_svid_options_reach_the_config(
    args: list[str],
    address: str,
    directory: str,
    lifetime: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, [config] = run_agent(args, monkeypatch)
    assert out.exit_code == 0, out.output
    assert (config.ca_address, config.svid_dir, config.svid_lifetime) == (
        address,
        directory,
        lifetime,
    )


@pytest.mark.parametrize(
    ("args", "flag", "why"),
    [
        (["--ca-address", "nohost"], "--ca-address", "expected HOST:PORT or unix:/PATH"),
        (["--ca-address", "host:0"], "--ca-address", "expected HOST:PORT"),
        (["--ca-address", "host:99999"], "--ca-address", "expected HOST:PORT"),
        (["--ca-address", ":443"], "--ca-address", "expected HOST:PORT"),
        (["--ca-address", "unix:relative.sock"], "--ca-address", "absolute path"),
        (["--ca-address", "h:1", "--state-dir", ""], "--ca-address", "needs --svid-dir"),
        (["--ca-address", "h:1", "--svid-lifetime", "59"], "--svid-lifetime", "59"),
    ],
)
def test_a_bad_svid_option_is_a_usage_error(
    args: list[str], flag: str, why: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, seen = run_agent(args, monkeypatch)
    assert out.exit_code == 2, out.output
    assert f"Invalid value for {flag}" in out.output or f"for '{flag}'" in out.output, out.output
    assert why in out.output and seen == []


def test_the_system_namespace_is_tulle_system_unless_the_flag_or_env_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TULLE_SYSTEM_NAMESPACE", raising=False)
    out, [config] = run_agent([], monkeypatch)
    assert out.exit_code == 0, out.output
    assert config.system_namespace == "tulle-system"
    monkeypatch.setenv("TULLE_SYSTEM_NAMESPACE", "mesh")
    out, [config] = run_agent([], monkeypatch)
    assert config.system_namespace == "mesh"
    out, [config] = run_agent(["--system-namespace", "mine"], monkeypatch)
    assert config.system_namespace == "mine"  # the flag over the environment


@pytest.mark.parametrize("env", [False, True])
def test_a_bad_system_namespace_is_a_usage_error(env: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if env:
        monkeypatch.setenv("TULLE_SYSTEM_NAMESPACE", "Kube_System")
    out, seen = run_agent([] if env else ["--system-namespace", "Kube_System"], monkeypatch)
    assert out.exit_code == 2, out.output
    assert "--system-namespace" in out.output and "DNS-1123" in out.output and seen == []


def test_the_svids_use_the_system_namespace(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CA's TLS name and the bundle's namespace follow the setting (agent.svid.service)."""
    from agent.svid import service
    from agent.svid.manager import SvidConfig

    made: dict[str, Any] = {}
    monkeypatch.setattr(service.SvidService, "start", lambda self: made.setdefault("svc", self))
    started = service.start(
        None,  # type: ignore[arg-type]  # the informer is built, never run
        None,
        None,  # type: ignore[arg-type]
        "n1",
        "10.0.0.1:15012",
        SvidConfig(tmp_path, "cluster.local", system_namespace="mesh"),
        None,
    )
    assert started.client.server_name == "tulle-controlplane.mesh.svc"
    assert started.watch.namespace == "mesh"


# -- `tulle lab up --svid-lifetime`: the agents' flag, set for a whole lab ----------------


def lab_up(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    from agent.cli.lab import lab
    from lab import lifecycle

    seen: list[Any] = []

    def up(name: str, nodes: int, progress: Any, **options: Any) -> Any:
        seen.append(options)
        return lifecycle.plan_lab(name, nodes)

    monkeypatch.setattr(lifecycle, "up", up)
    return CliRunner().invoke(lab, ["up", "--name", "unitlab", *args]), seen


@pytest.mark.parametrize(("args", "lifetime"), [([], None), (["--svid-lifetime", "60"], 60)])
def test_lab_up_hands_the_svid_lifetime_on(
    args: list[str], lifetime: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, [options] = lab_up(args, monkeypatch)
    assert out.exit_code == 0, out.output
    assert options["svid_lifetime"] == lifetime


def test_lab_up_refuses_a_lifetime_under_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    out, seen = lab_up(["--svid-lifetime", "59"], monkeypatch)
    assert out.exit_code == 2 and "--svid-lifetime" in out.output and not seen


def test_the_lab_gives_each_agent_the_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    from lab import lifecycle

    argvs: list[list[str]] = []
    for step in ("start_apiserver", "seed_cluster", "wait_nodes_registered",
                 "start_identity_service", "_start_relay"):
        monkeypatch.setattr(lifecycle, step, lambda *a, **k: None)
    monkeypatch.setattr(lifecycle, "write_agent_kubeconfigs",
                        lambda paths, plan: {n.name: "k" for n in plan.nodes})
    monkeypatch.setattr(lifecycle, "write_controller_kubeconfig", lambda paths: "k")
    monkeypatch.setattr(lifecycle, "component_kubeconfig", lambda paths, account: "k")
    monkeypatch.setattr(lifecycle.procs, "spawn", lambda role, argv, **k: argvs.append(argv))
    # the waypoints' held listening sockets live in node netns this unit test has none of
    monkeypatch.setattr(lifecycle.listeners, "open_for_waypoints", lambda nodes: {})
    plan = lifecycle.plan_lab("unitlab", 2)
    paths = lifecycle.LabPaths.for_lab("unitlab")
    lifecycle._start_processes(paths, plan, lambda _m: None, svid_lifetime=90)
    agents = [a for a in argvs if "agent" in a and "--ca-address" in a]
    assert len(agents) == 2
    assert all(a[a.index("--svid-lifetime") + 1] == "90" for a in agents)
