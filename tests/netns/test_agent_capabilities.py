"""The agent runs with exactly the capabilities its DaemonSet grants (the rendered
manifest's, nothing else in its bounding set): it compiles, loads and pins the datapath,
attaches its tracepoints and its sock_ops program to a pod cgroup, and reports no error; and
restarted over its pins, it adopts them.

Without SYS_ADMIN the start fails (NET_ADMIN, for the tc attach to pods' veths, is not
exercised by this pod-less start); and the restart is what needs
SYS_ADMIN (BPF_MAP_GET_FD_BY_ID), which NET_ADMIN + BPF + PERFMON, enough for a first start,
do not cover. Run as a module
(`python -m tests.netns.test_agent_capabilities`, as root) it prints each outcome. The agent runs in the root network namespace with no pods (it attaches to
no interface), its ports ephemeral, its pins and cgroup the test's own and removed after.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.unit.deploy.rendered import one, render
from tests.unit.kube.conftest import Lab, serve_lab

pytestmark = [pytest.mark.root, pytest.mark.bpf]

REPO = Path(__file__).resolve().parents[2]
BPFFS = Path("/sys/fs/bpf/tulle")
CGROUP = Path("/sys/fs/cgroup/unified/tulle")
START_TIMEOUT = 180.0  # a cold compile on a busy machine


def granted() -> list[str]:
    """The agent container's capabilities in the production DaemonSet."""
    daemonset = one(render("production"), "DaemonSet", "tulle-agent")
    [agent] = [c for c in daemonset["spec"]["template"]["spec"]["containers"]
               if c["name"] == "agent"]
    return list(agent["securityContext"]["capabilities"]["add"])


def bounding() -> list[str]:
    out = subprocess.run(["capsh", "--print"], capture_output=True, text=True,
                         check=True).stdout
    [line] = [x for x in out.splitlines() if x.startswith("Bounding set =")]
    return line.removeprefix("Bounding set =").split(",")


@dataclass
class Outcome:
    loaded: bool
    detail: str


@dataclass
class Node:
    lab: Lab
    work: Path
    name: str

    def run_agent(self, caps: list[str], keep_pins: bool = False) -> Outcome:
        """The agent with only ``caps`` (CAP_ names without the prefix) until it reports its
        datapath loaded, exits, or START_TIMEOUT passes; its pins removed after unless
        ``keep_pins`` (the next start then adopts them, as a restarted agent does)."""
        keep = {f"cap_{c.lower()}" for c in caps}
        drop = ",".join(c for c in bounding() if c not in keep)
        pins, state = BPFFS / self.name, self.work / f"state-{len(caps)}-{secrets.token_hex(2)}"
        cgroup = CGROUP / self.name
        cgroup.mkdir(parents=True, exist_ok=True)
        health = state / "health.json"
        state.mkdir(parents=True)
        argv = [sys.executable, "-m", "agent.cli.node", "agent", "--node", self.name,
                "--kubeconfig", str(self.lab.kubeconfig), "--pin-dir", str(pins),
                "--state-dir", str(state), "--cni-state-dir", str(state / "cni"),
                "--health-file", str(health),
                "--observer-port", "0", "--metrics-address", "127.0.0.1:0",
                "--pod-cgroup", str(cgroup)]
        command = " ".join(f"'{a}'" for a in argv)
        log = (state / "agent.log").open("w")
        proc = subprocess.Popen(["capsh", f"--drop={drop}", "--", "-c", f"exec {command}"],
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO)},
                                start_new_session=True)
        try:
            return self._wait(proc, health, state / "agent.log")
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
            if not keep_pins:
                shutil.rmtree(pins, ignore_errors=True)

    def _wait(self, proc: subprocess.Popen[bytes], health: Path, log: Path) -> Outcome:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                return Outcome(False, f"exited {proc.returncode}: {' | '.join(tail)}")
            try:
                report = json.loads(health.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                report = {}
            datapath = report.get("datapath") or {}
            tracing = report.get("tracing") or {}
            if datapath.get("loaded_s") is not None and tracing.get("hooks"):
                errors = datapath.get("errors") or []
                ok = not errors and tracing.get("rtt") == "sock_ops"
                return Outcome(ok, f"loaded in {datapath['loaded_s']} s, hooks "
                               f"{tracing['hooks']}, rtt {tracing.get('rtt')}, errors {errors}")
            time.sleep(0.5)
        return Outcome(False, f"not loaded within {START_TIMEOUT:.0f} s")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    assert shutil.which("capsh"), "capsh (libcap2-bin) is needed"
    name = f"captest{secrets.token_hex(3)}"
    for lab in serve_lab(tmp_path, gateway_api=True):
        try:
            yield Node(lab, tmp_path, name)
        finally:
            shutil.rmtree(BPFFS / name, ignore_errors=True)
            if (CGROUP / name).exists():
                (CGROUP / name).rmdir()


def test_the_daemonsets_capabilities_are_enough(node: Node) -> None:
    caps = granted()
    assert sorted(caps) == ["NET_ADMIN", "SYS_ADMIN"]
    outcome = node.run_agent(caps)
    assert outcome.loaded, outcome.detail


def test_a_restart_adopts_its_pins_with_them_and_not_without_sys_admin(node: Node) -> None:
    """The first start pins; a restart bounded to NET_ADMIN + BPF + PERFMON (enough for a
    first start) cannot open the pinned programs' maps by id and does not load; one with the
    DaemonSet's capabilities adopts the same pins."""
    caps = granted()
    first = node.run_agent(caps, keep_pins=True)
    assert first.loaded, first.detail
    narrow = node.run_agent(["NET_ADMIN", "BPF", "PERFMON"], keep_pins=True)
    assert not narrow.loaded, f"restarts without SYS_ADMIN: {narrow.detail}"
    again = node.run_agent(caps)
    assert again.loaded, again.detail


@pytest.mark.parametrize("dropped", ["SYS_ADMIN"])
def test_each_one_is_needed(node: Node, dropped: str) -> None:
    """Without SYS_ADMIN the same start does not load (maps, loads and the verifier's pointer
    comparisons need it, or the BPF and PERFMON it covers). NET_ADMIN is for attaching tc
    programs to pods' host veths over rtnetlink, which this pod-less start does not do (with
    SYS_ADMIN alone it loads here): the manifests lab, whose kubelet enforces the list, is
    where the attach runs with it."""
    caps = granted()
    outcome = node.run_agent([c for c in caps if c != dropped])
    assert not outcome.loaded, f"loads without {dropped}: {outcome.detail}"


def main() -> None:
    """Drop each granted capability in turn and print what the agent did."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fixture = node.__wrapped__(Path(tmp))  # type: ignore[attr-defined]
        current = next(fixture)
        try:
            caps = granted()
            print(f"all of {caps}: {current.run_agent(caps)}", flush=True)
            for cap in caps:
                outcome = current.run_agent([c for c in caps if c != cap])
                print(f"without {cap}: {outcome}", flush=True)
        finally:
            next(fixture, None)


if __name__ == "__main__":
    main()
