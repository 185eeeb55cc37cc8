"""The tracer's compile cache in the kernel: a second start with the same inputs adopts the
pinned tracer without BCC (records still arrive from real TCP traffic in a namespace of the
test's own, and the pause switch still detaches), and every way the pins or the record can
differ falls back to a compile that says why in one log line. Removing the pin dir (what
``tulle lab down`` and the fixtures do) frees the pinned programs."""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.datapath import bpfinfo, templates
from agent.datapath.features import feature_probe
from agent.datapath.native import libbpf, obj_get
from agent.tracing import cache
from agent.tracing.tracer import CLASSIC_PROBE, RAW_PROBE, Tracer, plan_hooks
from lab.state import pin_dir
from tests.bpf.test_tracer import POD_IP, SCRIPT

pytestmark = pytest.mark.bpf

REPO = Path(__file__).resolve().parents[2]
RAW_FN, CLASSIC_FN = "raw_tracepoint__tcp_probe", "tracepoint__tcp__tcp_probe"
libbpf.bpf_prog_get_fd_by_id.argtypes = [ctypes.c_uint32]
libbpf.bpf_prog_get_fd_by_id.restype = ctypes.c_int


@dataclass
class Node:
    pin: Path
    state: Path


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node whose first start compiled the tracer, pinned its programs and recorded them,
    and traced one local pod."""
    pin = pin_dir("test" + secrets.token_hex(3), "n1")
    here = Node(pin, tmp_path / "state")
    try:
        tracer = Tracer.load(plan_hooks(feature_probe()), pin_dir=pin, state_dir=here.state)
        try:
            assert tracer.bpf is not None and tracer.adopted is None
            tracer.set_local([POD_IP])
        finally:
            tracer.close()
        assert (here.state / cache.RECORD_NAME).is_file()
        assert (pin / RAW_FN).exists()
        yield here
    finally:
        shutil.rmtree(pin.parent, ignore_errors=True)


def start(node: Node, caplog: pytest.LogCaptureFixture, features: dict[str, bool] | None = None,
          **kwargs: object) -> tuple[Tracer, str]:
    """Load as an agent start would; the tracer and the reason it compiled ("" if not)."""
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tulle.tracing"):
        tracer = Tracer.load(plan_hooks(features or feature_probe()), pin_dir=node.pin,
                             state_dir=node.state, **kwargs)  # type: ignore[arg-type]
    reasons = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith(cache.COMPILING)]
    assert len(reasons) == (0 if tracer.adopted else 1), reasons  # one line, when it compiles
    return tracer, reasons[0][len(cache.COMPILING):] if reasons else ""


ADOPT_SCRIPT = r"""
import json, subprocess, sys, time
from pathlib import Path
from agent.datapath.features import feature_probe
from agent.tracing.records import KIND_CLOSE
from agent.tracing.tracer import Tracer, plan_hooks

pin, state, netns, script, ip = sys.argv[1:6]
tracer = Tracer.load(plan_hooks(feature_probe()), pin_dir=Path(pin), state_dir=Path(state))
local_before = sorted(tracer.local)
tracer.read()  # whatever the last start left in the ring

def traffic():
    out = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", script, ip],
                         check=True, capture_output=True, text=True, timeout=30).stdout
    return json.loads(out)

def closes(ports, want, timeout):
    found, deadline = [], time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        found += [r for r in tracer.read() if r.kind == KIND_CLOSE and r.pod_ip == ip
                  and (r.sport if r.role == 1 else r.dport) in ports]
        time.sleep(0.05)
    return found

tracer.set_attached(False)
paused = traffic()
during_pause = closes(set(paused.values()), 1, 1.0)
tracer.set_attached(True)
resumed = traffic()
after = closes(set(resumed.values()), 4, 10.0)
print(json.dumps({
    "adopted": tracer.adopted is not None,
    "bcc_imported": [m for m in sys.modules if m == "bcc" or m.startswith("bcc.")],
    "local_before": local_before,
    "during_pause": len(during_pause),
    "roles": sorted(r.role for r in after),
    "srtt_samples": min((r.srtt_samples for r in after), default=0),
    "attached": list(tracer.hooks.attached),
}))
tracer.close()
"""


def test_a_second_start_adopts_without_bcc_traces_and_pauses(node: Node, netns: str) -> None:
    """In a fresh process, as an agent restart: no BCC module is ever imported, yet records
    arrive from real connections; paused, none do."""
    result = subprocess.run(
        [sys.executable, "-c", ADOPT_SCRIPT, str(node.pin), str(node.state), netns, SCRIPT,
         POD_IP],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["adopted"] is True and seen["bcc_imported"] == []
    assert seen["local_before"] == [POD_IP]  # the last start's pods, from the adopted map
    assert seen["during_pause"] == 0
    assert seen["roles"] == [1, 1, 2, 2]  # both ends of the pod and the loopback connection
    assert seen["srtt_samples"] >= 2
    assert len(seen["attached"]) == len(plan_hooks(feature_probe()).hooks)


def test_a_changed_sample_flag_compiles_and_the_next_start_adopts_it(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    tracer, why = start(node, caplog, probe_sample=1)
    tracer.close()
    assert tracer.adopted is None and why == "the cflags changed since the last compile"
    tracer, why = start(node, caplog, probe_sample=1)
    tracer.close()
    assert tracer.adopted is not None and why == ""


def _edit_record(node: Node, edit: object, redigest: bool) -> None:
    path = node.state / cache.RECORD_NAME
    record = json.loads(path.read_text())
    edit(record)  # type: ignore[operator]
    if redigest:
        record["digest"] = templates._digest(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(("redigest", "reason"), [
    (False, "does not match its digest"),  # edited by hand
    (True, "has tag"),  # edited consistently: the kernel's word decides
])
def test_a_tampered_record_compiles(node: Node, caplog: pytest.LogCaptureFixture,
                                    redigest: bool, reason: str) -> None:
    def edit(record: dict[str, dict[str, dict[str, str]]]) -> None:
        record["programs"][RAW_FN]["tag"] = "00" * 8

    _edit_record(node, edit, redigest)
    tracer, why = start(node, caplog)
    tracer.close()
    assert tracer.adopted is None and reason in why, why
    tracer, why = start(node, caplog)  # the compile recorded itself again
    tracer.close()
    assert tracer.adopted is not None


def test_a_removed_pin_compiles_and_pins_again(node: Node,
                                               caplog: pytest.LogCaptureFixture) -> None:
    (node.pin / "raw_tracepoint__kfree_skb").unlink()
    tracer, why = start(node, caplog)
    tracer.close()
    assert tracer.adopted is None, why
    assert why.startswith("pinned program ") and "kfree_skb" in why and "ENOENT" in why, why
    assert (node.pin / "raw_tracepoint__kfree_skb").exists()


def test_another_plan_unpins_the_programs_it_no_longer_has(
        node: Node, caplog: pytest.LogCaptureFixture) -> None:
    """No raw tracepoints: the classic tcp_probe replaces the raw one, whose pin (and so its
    program and maps) goes."""
    assert RAW_PROBE in plan_hooks(feature_probe()).hooks
    classic = {**feature_probe(), "raw_tracepoint:kfree_skb": False}
    tracer, why = start(node, caplog, classic)
    tracer.close()
    assert CLASSIC_PROBE in tracer.plan.hooks and "programs changed" in why, why
    assert (node.pin / CLASSIC_FN).exists() and not (node.pin / RAW_FN).exists()


def _gone(prog_id: int) -> bool:
    fd = libbpf.bpf_prog_get_fd_by_id(prog_id)
    if fd >= 0:
        os.close(fd)
        return False
    return ctypes.get_errno() == errno.ENOENT or fd == -errno.ENOENT


def test_removing_the_pin_dir_frees_the_pinned_programs(node: Node) -> None:
    ids = []
    for name in (RAW_FN, "raw_tracepoint__kfree_skb"):
        fd = obj_get(node.pin / name)
        try:
            ids.append(bpfinfo.prog_info(fd).id)
        finally:
            os.close(fd)
    shutil.rmtree(node.pin)
    deadline = time.monotonic() + 10  # the kernel frees them after an RCU grace period
    while not all(_gone(i) for i in ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(_gone(i) for i in ids), ids


# -- attaching by fd, without BCC --------------------------------------------------------------


def test_a_tracepoint_attach_names_what_failed() -> None:
    from agent.datapath import features, perf

    raw, classic = features._load(17), features._load(5)  # raw / classic tracepoint programs
    assert raw >= 0 and classic >= 0
    try:
        with pytest.raises(FileNotFoundError, match="tracepoint nope:nope not found"):
            perf.attach_tracepoint(classic, "nope", "nope")
        with pytest.raises(OSError, match=r"attaching program fd \d+ to tracepoint "
                                          r"sock:inet_sock_set_state: "):
            perf.attach_tracepoint(raw, "sock", "inet_sock_set_state")  # not its type
        os.close(perf.attach_tracepoint(classic, "sock", "inet_sock_set_state"))
    finally:
        os.close(raw)
        os.close(classic)
