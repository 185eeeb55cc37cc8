"""The node's pod cgroup: where the tracer's sock_ops program runs (``--pod-cgroup``).

    path = pod_cgroup("/sys/fs/cgroup/unified/tulle/lab/node1")  # checked, or PodCgroupError
    cg = CgroupAttachment(path, prog_fd, "trace_sockops")
    cg.attach()   # unless the kernel says this very program is attached there already
    cg.detach()

cgroup programs act on every process of the cgroup and below it, whatever their network
namespace (DESIGN.md), so the path must be a cgroup v2 directory below its mount's root:
never the root cgroup, which holds every process of the machine. Attached with
``BPF_F_ALLOW_MULTI`` (another agent's or a CNI's program keeps its place); the attachment
outlives our fds, like tc's, so an adopted program already attached is not attached twice.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from agent.datapath import bpfinfo
from agent.datapath.native import (
    BPF_CGROUP_SOCK_OPS,
    prog_attach,
    prog_detach,
    prog_fd_by_id,
    prog_query,
)

log = logging.getLogger("tulle.tracing")
MOUNTINFO = Path("/proc/self/mountinfo")


class PodCgroupError(ValueError):
    """The --pod-cgroup path cannot be used; the message says why and what to give."""


def cgroup2_mounts(mountinfo: str) -> list[str]:
    """Mount points of cgroup v2 file systems in a /proc/PID/mountinfo text. Pure."""
    mounts = []
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5 and right.split()[:1] == ["cgroup2"]:
            # mountinfo escapes space, tab, newline and backslash as octal
            mounts.append(fields[4].encode().decode("unicode_escape"))
    return mounts


def check_pod_cgroup(path: str, mounts: list[str]) -> str:
    """``path`` normalised, when it lies strictly below one of the cgroup v2 ``mounts``;
    else :class:`PodCgroupError`. Pure (the directory itself is checked by
    :func:`pod_cgroup`)."""
    if not path:
        raise PodCgroupError("--pod-cgroup: empty path")
    if not os.path.isabs(path):
        raise PodCgroupError(f"--pod-cgroup {path!r}: give an absolute path")
    norm = os.path.normpath(path)
    for mount in mounts:
        root = os.path.normpath(mount)
        if norm == root:
            raise PodCgroupError(
                f"--pod-cgroup {path!r} is the root cgroup of {root}: its programs would run "
                "for every process of the machine; give the cgroup that holds this node's "
                f"pods, below it (e.g. {root}/kubepods)")
        if norm.startswith(root.rstrip("/") + "/"):
            return norm
    where = ", ".join(mounts) or "none mounted"
    raise PodCgroupError(
        f"--pod-cgroup {path!r} is not inside a cgroup v2 mount ({where}): sock_ops "
        "programs attach only to cgroup v2 directories")


def pod_cgroup(path: str, mountinfo: Path = MOUNTINFO) -> Path:
    """The checked pod cgroup directory (it must exist: the kubelet, or the lab, makes it)."""
    norm = Path(check_pod_cgroup(path, cgroup2_mounts(mountinfo.read_text())))
    if not (norm / "cgroup.procs").is_file():
        raise PodCgroupError(f"--pod-cgroup {path!r}: no such cgroup (no {norm}/cgroup.procs)")
    return norm


@dataclass
class CgroupAttachment:
    """One program on one cgroup's sock_ops hook."""

    path: Path
    prog_fd: int  # not ours to close
    name: str  # the kernel's name of our program: an older copy of it is replaced
    cgroup_fd: int = -1

    def _open(self) -> int:
        if self.cgroup_fd < 0:
            self.cgroup_fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        return self.cgroup_fd

    def attach(self) -> bool:
        """Attach unless this program is attached already (an adopted one: a restart);
        another copy of it (an earlier compile, left by an agent that died) is detached.
        True when this call attached it."""
        fd = self._open()
        try:
            ours = bpfinfo.prog_info(self.prog_fd).id
            present = False
            for prog_id in prog_query(fd, BPF_CGROUP_SOCK_OPS):
                if prog_id == ours:
                    present = True
                else:
                    self._drop_stale(prog_id)
            if not present:
                prog_attach(self.prog_fd, fd, BPF_CGROUP_SOCK_OPS)
        except BaseException:
            self._close()
            raise
        return not present

    def _close(self) -> None:
        if self.cgroup_fd >= 0:
            os.close(self.cgroup_fd)
            self.cgroup_fd = -1

    def _drop_stale(self, prog_id: int) -> None:
        try:
            other = prog_fd_by_id(prog_id)
        except OSError:
            return  # gone meanwhile
        try:
            if bpfinfo.prog_info(other).name == self.name[:15]:
                prog_detach(other, self.cgroup_fd, BPF_CGROUP_SOCK_OPS)
                log.info("tracer: detached an older %s (program %d) from %s",
                         self.name, prog_id, self.path)
        finally:
            os.close(other)

    def detach(self) -> None:
        """Detach our program (if attached) and close the cgroup fd."""
        if self.cgroup_fd < 0:
            return
        try:
            prog_detach(self.prog_fd, self.cgroup_fd, BPF_CGROUP_SOCK_OPS)
        finally:
            self._close()

    def attached(self) -> bool:
        """Whether the kernel has this program on the cgroup now."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return bpfinfo.prog_info(self.prog_fd).id in prog_query(fd, BPF_CGROUP_SOCK_OPS)
        finally:
            os.close(fd)
