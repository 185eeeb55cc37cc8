"""lab/mountns.py: the argv and the shell script that give a lab container its own mount
namespace (design §2, with its three traps). The script runs for real in
tests/netns/test_mountns.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab import mountns
from lab.podvolumes import Bind

STATE = Bind(Path("/tmp/s/nodes/n1/root/run/tulle"), "/run/tulle", False, True)
CGROUP = Bind(Path("/sys/fs/cgroup/unified/tulle/l/n1"), "/run/tulle/cgroupv2", True, True)
TRACEFS = Bind(Path("/sys/kernel/tracing"), "/sys/kernel/tracing", True, False)
TMP = Bind(Path("/tmp/s/pods/ns_p/volumes/tmp dir"), "/tmp", False, True)


def test_the_script_for_a_hostnetwork_container() -> None:
    assert mountns.script([STATE, CGROUP, TMP], pod_netns=False) == mountns._MOUNTPOINT.join([
        "set -eu\n", "\n"
        "exec {tulle_fd0}</tmp/s/nodes/n1/root/run/tulle\n"
        "exec {tulle_fd1}</sys/fs/cgroup/unified/tulle/l/n1\n"
        "exec {tulle_fd2}<'/tmp/s/pods/ns_p/volumes/tmp dir'\n"
        "mount -t tmpfs -o mode=0755,size=64m tulle-run /run\n"
        'tulle_mountpoint must "$tulle_fd2" /tmp\n'
        'tulle_mountpoint make "$tulle_fd0" /run/tulle\n'
        'mount --bind "/proc/self/fd/$tulle_fd0" /run/tulle\n'
        'tulle_mountpoint make "$tulle_fd1" /run/tulle/cgroupv2\n'
        'mount --bind "/proc/self/fd/$tulle_fd1" /run/tulle/cgroupv2\n'
        'mount --bind "/proc/self/fd/$tulle_fd2" /tmp\n'
        "mount -o remount,bind,ro /run/tulle/cgroupv2\n"
        "exec {tulle_fd0}<&- {tulle_fd1}<&- {tulle_fd2}<&-\n"
        "cd /\n"
        'exec "$@"\n'])


def test_every_source_is_opened_before_anything_can_shadow_it() -> None:
    """Trap 1: opened inside the namespace (the script runs there) and before the sysfs,
    the /run tmpfs and any bind lie over the sources' paths."""
    lines = mountns.script([STATE, TRACEFS, TMP], pod_netns=True).splitlines()
    opens = [i for i, line in enumerate(lines) if line.startswith("exec {tulle_fd")
             and "<&-" not in line]
    first_mount = min(i for i, line in enumerate(lines) if line.startswith("mount "))
    assert len(opens) == 3 and max(opens) < first_mount
    assert lines[first_mount] == "mount -t sysfs sysfs /sys"  # a pod netns gets its own /sys
    assert lines[first_mount + 1].startswith("mount -t tmpfs ")
    assert not any("sysfs" in line for line in mountns.script([STATE], pod_netns=False)
                   .splitlines() if line.startswith("mount"))


def test_read_only_comes_last_and_mountpoints_are_made_only_in_private_places() -> None:
    """Trap 3: no mountpoint can be made below a read-only bind, so every bind goes first.
    Trap 2: a mountpoint made on the host can be removed under another live namespace's
    feet, so one is made only below /run (the container's tmpfs) or in a lab-owned bind."""
    lines = mountns.script([STATE, CGROUP, TRACEFS, TMP], pod_netns=False).splitlines()
    binds = [i for i, line in enumerate(lines) if line.startswith("mount --bind")]
    remounts = [line for line in lines if "remount" in line]
    assert remounts == ["mount -o remount,bind,ro /run/tulle/cgroupv2",
                        "mount -o remount,bind,ro /sys/kernel/tracing"]
    assert max(binds) < lines.index(remounts[0])
    modes = {line.split()[3]: line.split()[1] for line in lines
             if line.startswith("tulle_mountpoint ")}
    assert modes == {"/run/tulle": "make", "/run/tulle/cgroupv2": "make",
                     "/sys/kernel/tracing": "must", "/tmp": "must"}
    # below a shared (not lab-owned) or read-only bind, nothing is made
    below_shared = Bind(Path("/x"), "/sys/kernel/tracing/sub", False, True)
    below_ro = Bind(Path("/y"), "/run/tulle/cgroupv2/sub", False, True)
    text = mountns.script([TRACEFS, CGROUP, below_shared, below_ro], pod_netns=False)
    assert 'tulle_mountpoint must "$tulle_fd2" /sys/kernel/tracing/sub' in text
    assert 'tulle_mountpoint make "$tulle_fd3" /run/tulle/cgroupv2/sub' in text  # below /run


def test_no_volumes_still_gets_a_private_run() -> None:
    assert mountns.script([], pod_netns=False) == mountns._MOUNTPOINT.join([
        "set -eu\n", "\nmount -t tmpfs -o mode=0755,size=64m tulle-run /run\ncd /\nexec \"$@\"\n"])


def test_wrapper_argv() -> None:
    argv = mountns.wrapper_argv("tulle-l-n1", [STATE], ["python3", "-m", "agent", "--x"])
    script = mountns.script([STATE], pod_netns=False)
    assert argv == ["nsenter", "--net=/var/run/netns/tulle-l-n1", "--",
                    "unshare", "--mount", "--propagation", "private", "--",
                    "bash", "-c", script, "tulle-mountns", "python3", "-m", "agent", "--x"]
    pod = mountns.wrapper_argv("p", [STATE], ["sleep", "1"], pod_netns=True)
    assert "mount -t sysfs sysfs /sys" in pod[pod.index("-c") + 1]
    assert mountns.wrapper_argv(None, [], ["true"])[0] == "unshare"


@pytest.mark.parametrize(("netns", "argv", "pod_netns", "error"), [
    ("n", [], False, "needs a command"),
    (None, ["true"], True, "needs the namespace"),
])
def test_wrapper_argv_refuses(netns: str | None, argv: list[str], pod_netns: bool,
                              error: str) -> None:
    with pytest.raises(ValueError, match=error):
        mountns.wrapper_argv(netns, [], argv, pod_netns=pod_netns)


def test_the_script_is_valid_bash() -> None:
    text = mountns.script([STATE, CGROUP, TRACEFS, TMP], pod_netns=True)
    done = subprocess.run(["bash", "-n", "-c", text], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
