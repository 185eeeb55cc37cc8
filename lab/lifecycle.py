"""`tulle lab up|down|status`: build the lab, start its processes, and tear it all down."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

from identity.system import SYSTEM_NAMESPACE
from lab import cgroups, cni_runtime, components, install, listeners, network, procs
from lab.controlplane import (
    CA_ADDRESS,
    LabError,
    Progress,
    apiserver_dir,
    seed_cluster,
    start_apiserver,
    start_identity_service,
    wait_nodes_registered,
    write_agent_kubeconfigs,
    write_controller_kubeconfig,
)
from lab.labstatus import status
from lab.state import BPF_PIN_ROOT, LabPaths, read_json, write_json_atomic
from lab.topology import (
    WAYPOINT_PORT,
    LabPlan,
    plan_lab,
)


def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab builds network namespaces and needs root: run with sudo")


def tulle_argv(*args: str) -> list[str]:
    """Run our own CLI with the interpreter that is running now (the project venv)."""
    return [sys.executable, "-m", "agent.cli.main", *args]


def node_argv(*args: str) -> list[str]:
    """A node component (agent, waypoint, DNS) from its lean entry point (agent.cli.node)."""
    return [sys.executable, "-m", "agent.cli.node", *args]


def component_kubeconfig(paths: LabPaths, account: str) -> str:
    """A node component's kubeconfig: its ServiceAccount's token, the fabric address."""
    return str(apiserver_dir(paths) / f"{account}.kubeconfig")


def kubeconfig_path(name: str) -> Path:
    """The host's (admin) kubeconfig; ``<component>.kubeconfig`` beside it point at the fabric."""
    return apiserver_dir(LabPaths.for_lab(name)) / "kubeconfig"


def up(
    name: str, node_count: int, progress: Progress, *, datapath: bool = True,
    svid_lifetime: int | None = None, node_port_range: str | None = None, cni: str = "builtin",
    mode: str = "spawn",
) -> LabPlan:
    """Build the lab. `datapath=False` runs agents without eBPF programs: a comparison lab
    for benchmarks against other datapaths (e.g. kube-proxy-style iptables).
    `svid_lifetime`: seconds each agent asks of the CA for its pods' SVIDs (the agent's
    `--svid-lifetime`; None: its default, 24 h), short to watch rotation happen.
    `node_port_range`: the API server's --service-node-port-range (None: 30000-32767).
    `cni`: "builtin" (the kubelet builds pods' veths) or "chain" (lab/cni_runtime.py).
    `mode`: "spawn" (lab up starts the agents, waypoints and CA) or "manifests" (`kubectl
    apply -k` of deploy/overlays/lab: they run as the lab kubelet's pods, lab/install.py).
    The CLI's defaults are chain and manifests (what a cluster runs); these keyword defaults
    stay builtin and spawn, the faster lab the test tier and the benchmarks build here."""
    if mode not in install.MODES:
        raise LabError(f"install mode {mode!r}: expected one of {', '.join(install.MODES)}")
    if mode == "manifests" and not datapath:
        raise LabError("--install manifests installs the datapath: --no-datapath labs are spawned")
    require_root()
    if problem := cni_runtime.mode_error(cni):
        raise LabError(problem)
    paths = LabPaths.for_lab(name)
    existing = status(name)
    if existing is not None:
        recorded = read_json(paths.lab_file) or {}
        same = (recorded.get("cni", "builtin"), recorded.get("install", "spawn")) == (cni, mode)
        if existing.healthy and len(existing.nodes) == node_count and same:
            progress(f"lab {name!r} is already up with {node_count} nodes")
            return plan_lab(name, node_count)
        progress(f"lab {name!r} exists but is not healthy or has another size: rebuilding it")
        down(name, progress)

    plan = plan_lab(name, node_count)
    paths.make_dirs()
    # Each node's pods in a cgroup subtree (lab.cgroups): the agent's RTT source.
    pod_cgroups = datapath and cgroups.available()
    write_json_atomic(paths.lab_file, {"name": name, "nodes": node_count, "datapath": datapath,
                                       "pod_cgroups": pod_cgroups, "cni": cni,
                                       "install": mode})
    try:
        progress(f"building the fabric ({plan.fabric_netns})")
        network.build_fabric(plan)
        for node in plan.nodes:
            progress(f"building {node.name}: netns {node.netns}, pod CIDR {node.pod_cidr}")
            network.build_node(plan, node, fabric_routes=mode == "manifests")
        progress(f"building the external client ({plan.external_netns})")
        network.build_external_client(plan)
        if mode == "manifests":
            _start_from_manifests(paths, plan, progress, pod_cgroups=pod_cgroups,
                                  svid_lifetime=svid_lifetime, node_port_range=node_port_range)
        else:
            _start_processes(paths, plan, progress, datapath=datapath, pod_cgroups=pod_cgroups,
                             svid_lifetime=svid_lifetime, node_port_range=node_port_range)
        _wait_healthy(name, progress)
    except BaseException:
        progress("lab up failed: removing what was created")
        down(name, progress)
        raise
    return plan


def _start_processes(
    paths: LabPaths, plan: LabPlan, progress: Progress, *, datapath: bool = True,
    pod_cgroups: bool = False, svid_lifetime: int | None = None,
    node_port_range: str | None = None,
) -> None:
    # TULLE_LAB marks every process of this lab (pods inherit it from the controller).
    env = dict(os.environ, TULLE_LAB=plan.name, TULLE_STATE_DIR=str(paths.root.parent))
    # Each waypoint's listening sockets, held by the controller for the lab's life
    # (lab/listeners.py); this process's copies close once both have theirs.
    held = listeners.open_for_waypoints(plan.nodes) if datapath else {}
    try:
        _start_with(paths, plan, progress, env, held, datapath=datapath, pod_cgroups=pod_cgroups,
                    svid_lifetime=svid_lifetime, node_port_range=node_port_range)
    finally:
        listeners.close_all(held)


def _start_with(
    paths: LabPaths, plan: LabPlan, progress: Progress, env: dict[str, str],
    held: dict[str, list[socket.socket]], *, datapath: bool, pod_cgroups: bool,
    svid_lifetime: int | None, node_port_range: str | None = None,
) -> None:
    held_fds = {role: listeners.listen_fds(socks) for role, socks in held.items()}
    start_apiserver(paths, plan, progress, env, node_port_range)
    seed_cluster(paths, plan, progress)
    progress("starting the lab controller (scheduler, kubelet, EndpointSlices, Gateway status)")
    procs.spawn(
        "controller",
        tulle_argv(
            "lab",
            "controller",
            "--name",
            plan.name,
            "--kubeconfig",
            str(write_controller_kubeconfig(paths)),
        ),
        log=paths.logs / "controller.log",
        record_dir=paths.procs,
        env=dict(env, **{listeners.HELD_ENV: json.dumps(held_fds)}) if held_fds else env,
        pass_fds=sorted({sock.fileno() for socks in held.values() for sock in socks}),
    )
    wait_nodes_registered(paths, plan, progress)
    agent_kubeconfigs = write_agent_kubeconfigs(paths, plan)
    start_identity_service(paths, plan, progress, env)
    for node in plan.nodes:
        progress(f"starting the agent and DNS on {node.name}")
        node_cg = cgroups.make(cgroups.node_cgroup(plan.name, node.name)) if pod_cgroups else None
        procs.spawn(
            components.role("agent", node.name),
            procs.netns_argv(
                node.netns,
                node_argv(
                    "agent",
                    "--node",
                    node.name,
                    "--kubeconfig",
                    str(agent_kubeconfigs[node.name]),
                    "--health-file",
                    str(components.agent_health(paths, node.name)),
                    "--observer-socket",
                    str(components.observer_socket(paths, node.name)),
                    *(
                        [
                            "--pin-dir",
                            str(components.pin_dir(paths, node.name)),
                            "--state-dir",
                            str(components.node_state(paths, node.name)),
                            "--cni-state-dir",
                            components.cni_state_dir(paths, node.name),
                            "--l7-intake",
                            str(components.l7_intake_socket(paths, node.name)),
                            "--waypoint",
                            f"{node.waypoint_ip}:{WAYPOINT_PORT}",
                            # LoadBalancer and Gateway addresses answered on the fabric
                            "--announce-interface",
                            network.NODE_UPLINK,
                            # SVIDs for the node's enrolled pods, in <state-dir>/svid (issue 11)
                            "--ca-address",
                            CA_ADDRESS,
                            "--system-namespace",  # not $TULLE_SYSTEM_NAMESPACE: the lab's
                            SYSTEM_NAMESPACE,
                            *(
                                ["--svid-lifetime", str(svid_lifetime)]
                                if svid_lifetime is not None
                                else []
                            ),
                        ]
                        if datapath
                        else []
                    ),
                    *(["--pod-cgroup", str(node_cg)] if node_cg else []),
                ),
            ),
            log=components.component_log(paths, "agent", node.name),
            record_dir=paths.procs,
            env=env,
        )
        procs.spawn(
            f"dns-{node.name}",
            procs.netns_argv(
                node.netns,
                node_argv("dns", "--kubeconfig", component_kubeconfig(paths, "tulle-lab-dns")),
            ),
            log=paths.logs / f"dns-{node.name}.log",
            record_dir=paths.procs,
            env=env,
        )
        if datapath:
            waypoint_cg = cgroups.make(node_cg / cgroups.WAYPOINT) if node_cg else None
            argv = node_argv(
                "waypoint", "--node", node.name,
                "--kubeconfig", component_kubeconfig(paths, "tulle-waypoint"),
                "--pin-dir", str(components.pin_dir(paths, node.name)),
                "--listen", f"{node.waypoint_ip}:{WAYPOINT_PORT}",
                "--flow-intake", str(components.l7_intake_socket(paths, node.name)),
                # HBONE on 15008/15007 with the agent's SVIDs
                "--svid-dir", str(components.node_state(paths, node.name) / "svid"),
                # active and warm standby (l7proxy/standby.py); the first one started serves
                "--active-lock", str(components.node_state(paths, node.name) / "waypoint.lock"),
            )
            for role, extra in listeners.waypoint_roles(node.name):
                role_env, role_fds = listeners.child_launch(held_fds, role, env)
                procs.spawn(
                    role,
                    cgroups.in_cgroup(waypoint_cg, procs.netns_argv(node.netns, argv + extra)),
                    log=paths.logs / f"{role}.log",
                    record_dir=paths.procs,
                    env=role_env,
                    pass_fds=role_fds,
                )
    progress("starting the flow relay")
    _start_relay(paths, plan, env)


def _start_from_manifests(
    paths: LabPaths, plan: LabPlan, progress: Progress, *, pod_cgroups: bool,
    svid_lifetime: int | None, node_port_range: str | None,
) -> None:
    """The lab's own processes (API server, controller, DNS, relay), then Tulle from deploy/
    through kubectl; returns once its DaemonSets and Deployments are ready."""
    env = dict(os.environ, TULLE_LAB=plan.name, TULLE_STATE_DIR=str(paths.root.parent))
    start_apiserver(paths, plan, progress, env, node_port_range)
    seed_cluster(paths, plan, progress)
    progress("starting the lab controller (scheduler, kubelet, EndpointSlices)")
    # The waypoints' listening sockets, held by the controller, whose kubelet passes them to
    # the tulle-waypoint pods (annotation lab.tulle.io/held-listeners, lab/listeners.py).
    held = listeners.open_for_waypoints(plan.nodes)
    try:
        held_fds = {role: listeners.listen_fds(socks) for role, socks in held.items()}
        procs.spawn(
            "controller",
            tulle_argv("lab", "controller", "--name", plan.name,
                       "--kubeconfig", str(write_controller_kubeconfig(paths))),
            log=paths.logs / "controller.log", record_dir=paths.procs,
            env=dict(env, **{listeners.HELD_ENV: json.dumps(held_fds)}),
            pass_fds=sorted({sock.fileno() for socks in held.values() for sock in socks}),
        )
    finally:
        listeners.close_all(held)  # the controller has its copies
    wait_nodes_registered(paths, plan, progress)
    for node in plan.nodes:
        # The node's share of bpffs, the manifests' /sys/fs/bpf (the waypoint's hostPath is
        # type Directory: made here, as a node's systemd mounts bpffs before any pod).
        components.pin_dir(paths, node.name).parent.mkdir(parents=True, exist_ok=True)
        progress(f"starting DNS on {node.name}")
        procs.spawn(
            f"dns-{node.name}",
            procs.netns_argv(node.netns, node_argv(
                "dns", "--kubeconfig", component_kubeconfig(paths, "tulle-lab-dns"))),
            log=paths.logs / f"dns-{node.name}.log", record_dir=paths.procs, env=env,
        )
    progress("starting the flow relay")
    _start_relay(paths, plan, env)
    try:
        install.apply_and_wait(paths, plan, apiserver_dir(paths) / "kubeconfig", progress,
                               svid_lifetime=svid_lifetime)
    except install.InstallError as err:
        raise LabError(str(err)) from None


def _start_relay(paths: LabPaths, plan: LabPlan, env: dict[str, str]) -> None:
    procs.spawn(
        "relay",
        tulle_argv("lab", "relay", "--name", plan.name),
        log=paths.logs / "relay.log",
        record_dir=paths.procs,
        env=env,
    )


def _wait_healthy(name: str, progress: Progress, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    st = status(name)
    while time.monotonic() < deadline:
        st = status(name)
        if st is not None and st.healthy:
            progress("all nodes report healthy")
            return
        dead = [p for p in (st.processes if st else ()) if not p.alive]
        if dead:
            # The state directory goes with the rollback: quote the log instead of pointing at it.
            log_file = LabPaths.for_lab(name).logs / f"{dead[0].role}.log"
            tail = (
                log_file.read_text(errors="replace").splitlines()[-15:] if log_file.exists() else []
            )
            raise LabError(
                f"lab process {dead[0].role} exited during start-up. Its log ended with:\n  "
                + "\n  ".join(tail or ["(empty)"])
            )
        time.sleep(0.2)
    detail = ", ".join(f"{n.name}: {n.agent_detail}" for n in (st.nodes if st else ()))
    raise LabError(f"lab did not become healthy within {timeout:.0f}s ({detail})")


def down(name: str, progress: Progress) -> list[str]:
    """Idempotent: stop processes, remove namespaces, pins and state. Returns what was removed."""
    require_root()
    paths = LabPaths.for_lab(name)
    removed: list[str] = []
    records = procs.load_records(paths.procs) if paths.procs.is_dir() else []
    # The controller first: it stops its pods' processes on SIGTERM.
    for rec in sorted(records, key=lambda r: r.role != "controller"):
        if procs.terminate(rec):
            removed.append(f"process {rec.role} (pid {rec.pid})")
    for rec in _pod_records(paths):
        if procs.terminate(rec, timeout=2.0):
            removed.append(f"process {rec.role} (pid {rec.pid})")
    prefix = f"tulle-{name}-"
    for ns in network.destroy(prefix):
        removed.append(f"netns {ns}")
    try:  # after the processes: a cgroup goes only once empty
        gone = cgroups.remove(cgroups.lab_cgroup(name))
        if gone:
            removed.append(f"cgroups {cgroups.lab_cgroup(name)} ({len(gone)})")
        if cgroups.remove_root_if_empty():
            removed.append(f"cgroup {cgroups.ROOT}")
    except OSError as err:
        raise LabError(f"could not remove the lab's cgroups: {err}; retry `tulle lab down`"
                       ) from None
    pins = BPF_PIN_ROOT / name
    if pins.exists():
        _remove_tree(pins)
        removed.append(f"bpf pins {pins}")
    if paths.root.exists():
        _remove_tree(paths.root)
        removed.append(f"state {paths.root}")
    for item in removed:
        progress(f"removed {item}")
    if not removed:
        progress(f"lab {name!r}: nothing to remove")
    return removed


def _pod_records(paths: LabPaths) -> list[procs.ProcRecord]:
    pod_dir = paths.procs / "pods"
    return procs.load_records(pod_dir) if pod_dir.is_dir() else []


def _remove_tree(path: Path) -> None:
    # bpffs pins are removed with unlink/rmdir like files; shutil handles both.
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        raise LabError(f"could not remove {path}; remove it by hand and retry `tulle lab down`")
