"""Connections and RTT from sock_ops on the node's pod cgroup, its pure parts: the hook plan
picks sock_ops only with a cgroup (and a kernel that loads sock_ops), in place of both
inet_sock_set_state and tcp_probe, which stay the fallback, and the plan says why; the cflags and programs a sock_ops plan compiles with; the --pod-cgroup path is
refused when it is the root cgroup or outside a cgroup v2 mount. The kernel side:
tests/bpf/test_tracer_sockops.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.datapath.cdefs import BPF_DIR
from agent.tracing import cache
from agent.tracing.attach import SOCKOPS, Hooks, program_name
from agent.tracing.cgroup import PodCgroupError, cgroup2_mounts, check_pod_cgroup, pod_cgroup
from agent.tracing.tracer import (
    CLASSIC_PROBE,
    CLASSIC_STATE,
    RAW_PROBE,
    RAW_STATE,
    plan_hooks,
    rtt_cap_flags,
)
from tests.unit.tracing.test_kernel_sources import PROBED
from tests.unit.tracing.test_trace_cache import OFFSETS, REASONS, key

WITH_SOCKOPS = PROBED | {"sock_ops": True}
CG = "/sys/fs/cgroup/unified/tulle/lab/node1"
# A hybrid layout as on this machine: v1 controllers, cgroup2 at .../unified.
MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
33 31 0:28 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu
40 25 0:40 / /sys/fs/my\\040cg rw,relatime - cgroup2 none rw
"""


def test_without_a_cgroup_rtt_comes_from_tcp_probe_and_the_plan_says_why() -> None:
    plan = plan_hooks(WITH_SOCKOPS)
    assert RAW_PROBE in plan.hooks and SOCKOPS not in plan.hooks
    assert plan.sources == ("trace_sock.c", "trace_drop.c") and plan.cgroup is None
    assert plan.rtt_source == "tcp_probe"
    assert plan.describe().endswith("RTT from tcp_probe (per received segment: no --pod-cgroup)")


def test_with_a_cgroup_sock_ops_replaces_tcp_probe_and_the_state_tracepoint() -> None:
    plan = plan_hooks(WITH_SOCKOPS, CG)
    assert plan.hooks == ("tracepoint:tcp:tcp_retransmit_skb", SOCKOPS,
                          "raw_tracepoint:kfree_skb")
    assert not {RAW_PROBE, CLASSIC_PROBE, RAW_STATE, CLASSIC_STATE} & set(plan.hooks)
    assert plan.sources == ("trace_sock.c", "trace_sockops.c", "trace_drop.c")
    assert plan.missing == () and plan.cgroup == CG and plan.rtt_source == "sock_ops"
    assert plan.describe().endswith(f"connections and RTT from sock_ops on the pod cgroup {CG}")


def test_a_kernel_without_sock_ops_falls_back_to_tcp_probe_and_names_it() -> None:
    plan = plan_hooks(PROBED | {"sock_ops": False}, CG)
    assert RAW_PROBE in plan.hooks and SOCKOPS not in plan.hooks and plan.cgroup is None
    assert plan.missing == ("sock_ops",)
    assert "RTT from tcp_probe (per received segment: sock_ops unavailable)" in plan.describe()


def test_sock_ops_needs_no_state_tracepoint_but_the_fallback_does() -> None:
    """sock_ops creates and closes the conn_state itself; without a cgroup, a kernel
    without inet_sock_set_state traces no connection."""
    no_state = WITH_SOCKOPS | {CLASSIC_STATE: False}
    plan = plan_hooks(no_state, CG)
    assert SOCKOPS in plan.hooks and plan.missing == () and plan.rtt_source == "sock_ops"
    fallback = plan_hooks(no_state)
    assert fallback.sources == ("trace_drop.c",) and SOCKOPS not in fallback.hooks
    assert CLASSIC_STATE in fallback.missing and fallback.rtt_source == "none"


def test_a_sock_ops_plan_compiles_without_tcp_probe_and_loads_a_sock_ops_program() -> None:
    plan, flags = cache.build_flags(plan_hooks(WITH_SOCKOPS, CG), OFFSETS, True, REASONS, None)
    assert plan.cgroup == CG
    assert "-DTRACE_CONN_SOCKOPS" in flags
    assert "-DTRACE_PROBE_RAW" not in flags and "-DTRACE_STATE_RAW" not in flags
    assert ("trace_sockops", 13, "trace_sockops") in [
        (p.name, p.prog_type, p.kernel_name) for p in cache.programs(plan)]
    assert program_name(SOCKOPS) == "trace_sockops"
    # Another RTT source is another object: the cache key differs.
    probe = cache.build_flags(plan_hooks(WITH_SOCKOPS), OFFSETS, True, REASONS, None)
    assert key(plan, flags) != key(*probe)
    capped = cache.build_flags(plan_hooks(WITH_SOCKOPS, CG), OFFSETS, True, REASONS, None, 64)
    assert "-DTRACE_RTT_SAMPLE_CAP=64" in capped[1] and key(plan, flags) != key(*capped)
    # The cgroup is where it attaches, not what it is: not in the key.
    other = cache.build_flags(plan_hooks(WITH_SOCKOPS, CG + "x"), OFFSETS, True, REASONS, None)
    assert key(plan, flags) == key(*other)


def test_the_sample_cap_is_only_for_sock_ops_and_positive() -> None:
    _, flags = cache.build_flags(plan_hooks(WITH_SOCKOPS), OFFSETS, True, REASONS, None, 64)
    assert not [f for f in flags if "RTT_SAMPLE_CAP" in f]
    assert rtt_cap_flags(None) == []
    with pytest.raises(ValueError, match="rtt_cap must be >= 1, not 0"):
        rtt_cap_flags(0)


def test_the_sockops_source_exists_and_leaves_both_tracepoints_out_of_trace_sock() -> None:
    text = (BPF_DIR / "trace_sock.c").read_text()
    assert text.count("#if defined(TRACE_CONN_SOCKOPS)") == 2
    sockops = (BPF_DIR / "trace_sockops.c").read_text()
    for op in ("TCP_CONNECT_CB", "PASSIVE_ESTABLISHED_CB", "RTT_CB", "STATE_CB"):
        assert f"case BPF_SOCK_OPS_{op}:" in sockops


def test_the_sock_ops_hook_needs_a_cgroup() -> None:
    with pytest.raises(ValueError, match="needs the pod cgroup"):
        Hooks({SOCKOPS: 99})


# -- --pod-cgroup --------------------------------------------------------------------------


def test_cgroup2_mounts_are_read_from_mountinfo_unescaped() -> None:
    assert cgroup2_mounts(MOUNTINFO) == ["/sys/fs/cgroup/unified", "/sys/fs/my cg"]


@pytest.mark.parametrize("path", ["/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/",
                                  "/sys/fs/cgroup/unified/tulle/..", "/sys/fs/my cg"])
def test_the_root_cgroup_is_refused(path: str) -> None:
    with pytest.raises(PodCgroupError, match="is the root cgroup of .*every process of the "
                                             "machine"):
        check_pod_cgroup(path, cgroup2_mounts(MOUNTINFO))


@pytest.mark.parametrize(("path", "why"), [
    ("/sys/fs/cgroup/cpu/tulle", "not inside a cgroup v2 mount"),  # a v1 hierarchy
    ("/sys/fs/cgroup/unifiedx/a", "not inside a cgroup v2 mount"),  # a prefix, not a parent
    ("/tmp/tulle", "not inside a cgroup v2 mount"),
    ("/sys/fs/cgroup/unified/../cpu/x", "not inside a cgroup v2 mount"),
    ("tulle/lab/node1", "give an absolute path"),
    ("", "empty path"),
])
def test_paths_outside_cgroup_v2_are_refused(path: str, why: str) -> None:
    with pytest.raises(PodCgroupError, match=why):
        check_pod_cgroup(path, cgroup2_mounts(MOUNTINFO))


def test_a_cgroup_below_the_mount_is_taken_normalised() -> None:
    assert check_pod_cgroup(CG + "/", cgroup2_mounts(MOUNTINFO)) == CG
    assert check_pod_cgroup("/sys/fs/cgroup/unified//a/./b", ["/sys/fs/cgroup/unified/"]) \
        == "/sys/fs/cgroup/unified/a/b"


def test_without_any_cgroup2_mount_the_error_says_so() -> None:
    with pytest.raises(PodCgroupError, match=r"\(none mounted\)"):
        check_pod_cgroup(CG, [])


def test_a_missing_cgroup_directory_is_named(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(f"1 0 0:1 / {tmp_path} rw - cgroup2 cgroup2 rw\n")
    (tmp_path / "node1").mkdir()
    (tmp_path / "node1" / "cgroup.procs").write_text("")
    assert pod_cgroup(str(tmp_path / "node1"), info) == tmp_path / "node1"
    with pytest.raises(PodCgroupError, match="no such cgroup"):
        pod_cgroup(str(tmp_path / "node2"), info)


def test_the_agent_refuses_the_root_cgroup_before_starting() -> None:
    from agent.cli.node import node_cli

    root = cgroup2_mounts(Path("/proc/self/mountinfo").read_text())
    if not root:
        pytest.skip("no cgroup v2 mount on this machine")  # the pure tests above still run
    out = CliRunner().invoke(node_cli, ["agent", "--node", "n1", "--pod-cgroup", root[0]])
    assert out.exit_code == 2, out.output
    assert f"Invalid value for --pod-cgroup: {root[0]!r} is the root cgroup" in out.output
