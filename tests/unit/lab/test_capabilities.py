"""The capabilities a lab container runs with, computed as containerd's CRI plugin computes
them, and the setpriv command line that bounds a root process to them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.model.core_container import Capabilities, SecurityContext
from lab import capabilities
from lab.capabilities import DEFAULT, CapabilityError, bounded, granted, known, problem

EVERY = frozenset({*DEFAULT, "CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN"})


def caps(add: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> SecurityContext:
    return SecurityContext(capabilities=Capabilities(add=add, drop=drop))


def test_drop_all_then_add_is_exactly_the_added_set() -> None:
    assert granted(caps(("NET_ADMIN", "bpf", "CAP_PERFMON"), ("ALL",)), EVERY) == {
        "CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON"}


def test_drop_all_alone_is_nothing() -> None:
    assert granted(caps(drop=("ALL",)), EVERY) == frozenset()


def test_add_and_drop_start_from_the_runtime_default() -> None:
    held = granted(caps(("NET_ADMIN",), ("NET_RAW",)), EVERY)
    assert held == (DEFAULT - {"CAP_NET_RAW"}) | {"CAP_NET_ADMIN"}


def test_an_explicit_drop_wins_over_add_all() -> None:
    assert granted(caps(("ALL",), ("SYS_ADMIN",)), EVERY) == EVERY - {"CAP_SYS_ADMIN"}


def test_privileged_holds_everything_and_unset_is_left_alone() -> None:
    assert granted(SecurityContext(privileged=True), EVERY) == EVERY
    assert granted(SecurityContext(read_only_root_filesystem=True), EVERY) is None
    assert granted(None, EVERY) is None


def test_an_unknown_name_is_refused_with_its_name() -> None:
    with pytest.raises(CapabilityError, match="CAP_NOT_A_CAP"):
        granted(caps(("NOT_A_CAP",)), EVERY)
    assert "unknown capability CAP_NOT_A_CAP" in problem(caps(("NOT_A_CAP",)), EVERY)
    assert problem(caps(("NET_ADMIN",)), EVERY) == ""


def test_bounded_prefixes_setpriv_only_when_something_is_taken_away() -> None:
    argv = ["python", "-m", "agent"]
    assert bounded(argv, None, EVERY) == argv
    assert bounded(argv, SecurityContext(privileged=True), EVERY) == argv
    assert bounded(argv, caps(("NET_ADMIN",), ("ALL",)), EVERY) == [
        "setpriv", "--bounding-set=-all,+net_admin", "--inh-caps=-all", "--ambient-caps=-all",
        "--", *argv]
    escalation = SecurityContext(capabilities=Capabilities(drop=("ALL",)),
                                 allow_privilege_escalation=False)
    assert bounded(argv, escalation, EVERY)[:5] == [
        "setpriv", "--bounding-set=-all", "--inh-caps=-all", "--ambient-caps=-all",
        "--no-new-privs"]


def test_the_kernels_capabilities_are_read_from_setpriv() -> None:
    every = known()
    assert {"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_CHOWN"} <= every
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert len(every) == int(f.read()) + 1


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="a root process's set is what setpriv bounds")
def test_a_root_process_under_the_prefix_holds_exactly_the_set() -> None:
    """Checked against the kernel's own view (/proc/self/status CapEff), not ours."""
    argv = bounded([sys.executable, "-c",
                    "print([l.split()[1] for l in open('/proc/self/status') "
                    "if l.startswith('CapEff')][0])"],
                   caps(("NET_ADMIN", "BPF"), ("ALL",)), capabilities.known())
    effective = int(subprocess.run(argv, capture_output=True, text=True, check=True,
                                   timeout=10).stdout, 16)
    assert effective == (1 << 12) | (1 << 39)  # CAP_NET_ADMIN, CAP_BPF (linux/capability.h)
