"""BPF unit tier: programs compiled once per session, packets through BPF_PROG_TEST_RUN.

Fixtures:
- ``probe``: ``bpf/probe_parse.c`` loaded as a tc program, wrapped in :class:`Probe`, whose
  ``run(packet, ctx=None)`` returns the verdict, the output bytes, what the program recorded and
  the drops this run added to ``tulle_drops_v1``.

- ``runner``: the node datapath (``loaded_datapath``) in test_datapath's ``Runner``, once per
  module; ``dp``: the same, its maps reset for each test (modules that need more per-test
  state override ``dp``).

- ``netns``: a network namespace holding ``TRACE_POD_IP`` on its lo (the tracer's tests);
  ``node_cgroups``: a node's cgroup subtree with a pod, and another node's pod.

Other programs' tests follow the same shape: a session fixture that calls ``load_program`` once,
and a small runner that resets the maps the test reads.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agent.datapath import drop_reasons
from agent.datapath.bpf_loader import BPF, BPF_DIR, LIB_DIR, load_fn, load_program
from agent.datapath.cdefs import enum_values
from agent.datapath.programs import Datapath, load_datapath
from agent.datapath.testrun import SkBuff, TestRunResult, test_run
from lab.state import pin_dir

if TYPE_CHECKING:
    from tests.bpf.test_datapath import Runner

CONFIG_KEYS = enum_values(LIB_DIR / "common.h", "tulle_config")


@dataclass(frozen=True)
class Drop:
    """One drop a run added to ``tulle_drops_v1``: the reason, and where in C it happened."""

    reason: int
    name: str
    file: str
    line: int


@dataclass(frozen=True)
class ProbeOutcome:
    run: TestRunResult
    seen: Any  # the program's ``struct probe_result`` as BCC's ctypes Leaf
    drops: list[Drop]

    @property
    def verdict(self) -> int:
        return self.run.retval


def _drop_slots(bpf: BPF) -> dict[tuple[int, int], tuple[int, int, int]]:
    """(reason, cpu) -> (packets, file id, line) for every non-empty per-CPU slot."""
    table = bpf[b"tulle_drops_v1"]
    slots: dict[tuple[int, int], tuple[int, int, int]] = {}
    for reason in drop_reasons.REASONS:
        for cpu, stat in enumerate(table.getvalue(table.Key(reason))):
            if stat.packets:
                slots[(reason, cpu)] = (stat.packets, stat.file, stat.line)
    return slots


class Probe:
    """``probe_parse`` loaded once; each ``run`` starts from a cleared result slot."""

    def __init__(self, bpf: BPF) -> None:
        self.bpf = bpf
        self.prog = load_fn(bpf, "probe_parse", BPF.SCHED_CLS)
        self.results = bpf[b"probe_result_v1"]
        self.config = bpf[b"tulle_config_v1"]

    def set_config(self, key: str, value: int) -> None:
        self.config[self.config.Key(CONFIG_KEYS[key])] = self.config.Leaf(value)

    def run(self, packet: bytes, ctx: SkBuff | None = None) -> ProbeOutcome:
        zero = self.results.Key(0)
        self.results[zero] = self.results.Leaf()
        before = _drop_slots(self.bpf)
        result = test_run(self.prog.fd, packet, ctx=ctx)
        after = _drop_slots(self.bpf)
        drops = []
        for slot, (packets, file_id, line) in after.items():
            added = packets - before.get(slot, (0, 0, 0))[0]
            reason = slot[0]
            name = drop_reasons.by_code(reason).name
            file = drop_reasons.source_file(file_id)
            drops += [Drop(reason, name, file, line)] * added
        return ProbeOutcome(result, self.results[zero], drops)


@pytest.fixture(scope="session")
def probe_bpf() -> Iterator[BPF]:
    bpf = load_program([BPF_DIR / "probe_parse.c"], [])
    yield bpf
    bpf.cleanup()


@pytest.fixture
def probe(probe_bpf: BPF) -> Iterator[Probe]:
    runner = Probe(probe_bpf)
    yield runner
    for key in CONFIG_KEYS.values():  # no switch outlives its test
        if key < runner.config.max_entries:
            runner.config[runner.config.Key(key)] = runner.config.Leaf(0)


@contextmanager
def loaded_datapath() -> Iterator[Datapath]:
    """The node datapath, loaded under a throwaway pin directory that is removed after."""
    pin = pin_dir("test" + secrets.token_hex(3), "n1")
    dp = load_datapath(pin)
    try:
        yield dp
    finally:
        dp.close()
        shutil.rmtree(pin.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    from tests.bpf.test_datapath import Runner

    with loaded_datapath() as datapath:
        yield Runner(datapath)


@pytest.fixture
def dp(runner: Runner) -> Runner:
    runner.reset()
    return runner


# -- the tracer's tests: a pod's network namespace and its node's cgroups ----------------------
TRACE_POD_IP = "10.99.77.1"  # on the namespace's lo only


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace of the test's own whose lo carries ``TRACE_POD_IP``: the pod."""
    name = f"tulle-test{secrets.token_hex(3)}-trace"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{TRACE_POD_IP}/32", "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@dataclass(frozen=True)
class NodeCgroups:
    node: Path  # the node's subtree: the agent's --pod-cgroup
    pod: Path  # a pod of the node
    outside: Path  # another node's pod: not below ``node``


@pytest.fixture
def node_cgroups() -> Iterator[NodeCgroups]:
    """A lab-shaped cgroup tree (lab.cgroups), removed bottom-up after the test."""
    from lab import cgroups

    if not cgroups.available():
        pytest.skip(f"no cgroup v2 at {cgroups.CGROUP_V2}")
    lab = "test" + secrets.token_hex(3)
    tree = NodeCgroups(cgroups.make(cgroups.pod_cgroup(lab, "n1", "t", "p")).parent,
                       cgroups.pod_cgroup(lab, "n1", "t", "p"),
                       cgroups.make(cgroups.pod_cgroup(lab, "n2", "t", "q")))
    try:
        yield tree
    finally:
        cgroups.remove(cgroups.lab_cgroup(lab))
        cgroups.remove_root_if_empty()
