"""The lab's cgroup v2 tree: one subtree per node, one child per pod, as a kubelet keeps them.

    /sys/fs/cgroup/unified/tulle/<lab>/<node>/                the node agent's --pod-cgroup
    /sys/fs/cgroup/unified/tulle/<lab>/<node>/kubepods.slice/ the node's pods, as a kubelet's
                                                  (systemd driver) top; made at the kubelet's start
    /sys/fs/cgroup/unified/tulle/<lab>/<node>/kubepods.slice/<ns>_<pod>  a pod's processes
    /sys/fs/cgroup/unified/tulle/<lab>/<node>/waypoint        the node's (spawned) waypoint

The agent DaemonSet's ``--pod-cgroup=/run/tulle/cgroupv2/kubepods.slice`` (its cgroup2
hostPath is the node's subtree in the lab, lab/podvolumes.py) is then exactly that node's
pods; spawn mode's ``--pod-cgroup`` (the node's subtree) holds them too.

The node agent's tracer attaches its sock_ops program (RTT samples) to the node's subtree, so it
sees exactly that node's pods, whatever netns their processes are in (DESIGN.md: cgroup
programs act per cgroup; never on the root). A process joins its cgroup before it runs anything
(``in_cgroup``: the shell writes its own pid, then execs), so every socket it opens is the pod's.
Written from the host's mount namespace: ``ip netns exec`` remounts /sys and hides this tree,
so the wrapper goes outside it. ``remove`` takes a tree down bottom-up once its processes are
gone (``tulle lab down``, the fixtures, the leak check's ``tulle/test*``).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path

CGROUP_V2 = Path("/sys/fs/cgroup/unified")
ROOT = CGROUP_V2 / "tulle"
WAYPOINT = "waypoint"
KUBEPODS = "kubepods.slice"


def lab_cgroup(lab: str) -> Path:
    return ROOT / lab


def node_cgroup(lab: str, node: str) -> Path:
    return ROOT / lab / node


def kubepods_cgroup(lab: str, node: str) -> Path:
    """The node's pods' parent (a kubelet's ``kubepods.slice``)."""
    return node_cgroup(lab, node) / KUBEPODS


def pod_cgroup(lab: str, node: str, namespace: str, pod: str) -> Path:
    """The pod's child of its node's ``kubepods.slice`` (``_`` cannot appear in either name)."""
    return kubepods_cgroup(lab, node) / f"{namespace}_{pod}"


def available() -> bool:
    """Whether cgroup v2 is mounted where the lab expects it (writable needs root)."""
    return (CGROUP_V2 / "cgroup.procs").is_file()


def make(path: Path) -> Path:
    """Create ``path`` and its missing parents below the cgroup v2 mount."""
    if not str(path).startswith(str(ROOT) + "/"):
        raise ValueError(f"{path}: not below {ROOT}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def in_cgroup(path: Path | None, argv: Sequence[str]) -> list[str]:
    """``argv`` run as a member of the cgroup ``path``: the shell joins it (its own pid,
    "0", written to cgroup.procs) and then execs ``argv``, so nothing runs outside it."""
    if path is None:
        return list(argv)
    return ["sh", "-c", 'echo 0 > "$0/cgroup.procs" && exec "$@"', str(path), *argv]


def _processes(path: Path) -> list[int]:
    try:
        return [int(p) for p in (path / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def remove(path: Path, wait: float = 5.0) -> list[str]:
    """Remove the cgroup ``path`` and everything below it, deepest first; the cgroups
    removed. Processes still inside (they are the lab's: it put them there) are killed by
    their PIDs (``cgroup.procs``) after ``wait`` seconds of waiting for them to leave."""
    if not path.is_dir():
        return []
    removed: list[str] = []
    children = sorted((p for p in path.rglob("*") if p.is_dir()),
                      key=lambda p: len(p.parts), reverse=True)
    for cg in [*children, path]:
        _rmdir(cg, wait)
        removed.append(str(cg))
    return removed


def remove_root_if_empty() -> bool:
    """Remove ``tulle/`` itself once no lab (and no test tree) is left below it: what a
    lab's ``make`` created, its ``down`` takes away. True when it went."""
    try:
        ROOT.rmdir()
    except FileNotFoundError:
        return False
    except OSError as err:
        if err.errno in (errno.EBUSY, errno.ENOTEMPTY):
            return False  # another lab's tree is still there
        raise
    return True


def _rmdir(cg: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    killed = False
    while True:
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            if time.monotonic() >= deadline:
                if killed:
                    raise OSError(err.errno, f"cgroup {cg} still holds processes "
                                             f"{_processes(cg)}") from None
                _kill(cg)
                killed, deadline = True, time.monotonic() + wait
            time.sleep(0.05)


def _kill(cg: Path) -> None:
    # By PID, not ``cgroup.kill``: the lab ends only processes it can name (its own).
    for pid in _processes(cg):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
