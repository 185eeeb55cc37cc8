"""A lab container in its own mount namespace (pure: the argv and the shell script that builds
the namespace). Design: /work/notes/lab_install_design.md §2; the binds: lab/podvolumes.py.

    nsenter --net=/var/run/netns/X -- unshare --mount --propagation private --
        bash -c SCRIPT tulle-mountns ARGV...

Every step execs the next, so the pid the kubelet starts is the container's process
(``nsenter --target PID --mount`` then sees its view). The script:

1. opens every bind source as an fd, first. A bind source must be opened *inside* the new
   namespace (an fd opened by the parent fails with EINVAL), and before step 2 or 3 or another
   bind can shadow it (the lab's state is under /run or /tmp, which a container gets its own
   of). Bound as ``/proc/self/fd/N`` it works whatever lies over its path by then.
2. for a pod network namespace, mounts that namespace's sysfs on /sys (``ip netns exec`` did);
3. mounts a private tmpfs on /run: mountpoints below it are made there, never on the host,
   so nothing is left to remove (``rmdir`` of a dir that is a mountpoint in another live
   namespace succeeds and silently detaches that mount there);
4. binds each source, parents first, making its mountpoint below /run or inside a
   lab-owned bind; elsewhere, if missing, in a private overlayfs layer over its nearest
   existing ancestor (never on the host; never over /, /proc, /sys or /dev);
5. remounts the readOnly binds read-only, last (no mountpoint can be made below a read-only
   bind), closes the fds and execs the container's argv from ``/`` (an image's working
   directory; the lab reads no ``workingDir``; the kubelet's own may be hidden there).

The namespace is private: a container's mounts never reach the host, and die with it.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from lab.podvolumes import Bind

__all__ = ["LAYERS", "PROG", "RUN_TMPFS_OPTIONS", "script", "wrapper_argv"]

PROG = "tulle-mountns"  # the script's $0: names it in its error messages
RUN_TMPFS_OPTIONS = "mode=0755,size=64m"
LAYERS = "/run/.tulle-layers"  # upper and work dirs of the layers below (in the /run tmpfs)

# $1: "make" (a private place: create it) or "must" (on the host: never made there);
# $2: the bound fd; $3: the mountpoint. A file source gets a file mountpoint. A "must"
# mountpoint missing on the machine is made in a private writable layer (overlayfs, its
# upper dir in the container's /run tmpfs) over its nearest existing ancestor, as an image's
# root filesystem would hold it: /var/lib/x gets a layer over /var/lib. Never over / or the
# kernel's own trees.
_MOUNTPOINT = f"""\
tulle_layers=0
tulle_mountpoint() {{
  [ -e "$3" ] && return 0
  if [ "$1" = must ]; then
    tulle_top=$3
    while [ -n "$tulle_top" ] && [ ! -e "$tulle_top" ]; do tulle_top=${{tulle_top%/*}}; done
    case "${{tulle_top:-/}}" in
      /|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*)
        echo "{PROG}: mountPath $3 does not exist on this machine; the lab makes mountpoints \
only below /run, inside a volume or in a layer over an existing directory other than /" >&2
        exit 1;;
    esac
    tulle_layers=$((tulle_layers + 1))
    tulle_layer={LAYERS}/$tulle_layers
    mkdir -p "$tulle_layer/upper" "$tulle_layer/work"
    mount -t overlay -o "lowerdir=$tulle_top,upperdir=$tulle_layer/upper,\
workdir=$tulle_layer/work" tulle-layer "$tulle_top"
  fi
  if [ -d "/proc/self/fd/$2" ]; then mkdir -p "$3"; else mkdir -p "${{3%/*}}" && : >"$3"; fi
}}"""


def _private(bind: Bind, before: Sequence[Bind]) -> bool:
    """Whether ``bind``'s mountpoint may be made: below /run (the tmpfs) or inside an
    earlier lab-owned bind (its source is the lab's)."""
    tops = ["/run"] + [b.target for b in before if b.lab_owned and not b.read_only]
    return any(bind.target.startswith(top.rstrip("/") + "/") for top in tops)


def script(binds: Sequence[Bind], *, pod_netns: bool) -> str:
    """The shell script (bash, for its ``{var}`` fd allocation, which never reuses an fd
    the container inherits) that builds the namespace and then execs ``"$@"``."""
    fds = [f"tulle_fd{i}" for i in range(len(binds))]
    lines = ["set -eu", _MOUNTPOINT]
    lines += [
        f"exec {{{fd}}}<{shlex.quote(str(b.source))}" for fd, b in zip(fds, binds, strict=True)
    ]
    if pod_netns:
        lines.append("mount -t sysfs sysfs /sys")
    lines.append(f"mount -t tmpfs -o {RUN_TMPFS_OPTIONS} tulle-run /run")
    private = [_private(bind, binds[:i]) for i, bind in enumerate(binds)]
    # First every mountpoint outside the lab's own dirs: one may need an overlay layer on
    # an existing ancestor, which would hide any bind already made below that ancestor.
    for fd, bind, mine in zip(fds, binds, private, strict=True):
        if not mine:
            lines.append(f'tulle_mountpoint must "${fd}" {shlex.quote(bind.target)}')
    for fd, bind, mine in zip(fds, binds, private, strict=True):
        target = shlex.quote(bind.target)
        if mine:
            lines.append(f'tulle_mountpoint make "${fd}" {target}')
        lines.append(f'mount --bind "/proc/self/fd/${fd}" {target}')
    lines += [
        f"mount -o remount,bind,ro {shlex.quote(b.target)}" for b in binds if b.read_only
    ]
    if fds:
        lines.append("exec " + " ".join(f"{{{fd}}}<&-" for fd in fds))
    lines.append("cd /")  # an image's working directory, not the kubelet's
    lines.append('exec "$@"')
    return "\n".join(lines) + "\n"


def wrapper_argv(
    netns: str | None, binds: Sequence[Bind], argv: Sequence[str], *, pod_netns: bool = False
) -> list[str]:
    """``argv`` run in network namespace ``netns`` (None: the caller's) and its own mount
    namespace holding ``binds``; ``pod_netns``: a pod's namespace, which gets its sysfs."""
    if not argv:
        raise ValueError("a container needs a command")
    if pod_netns and netns is None:
        raise ValueError("pod_netns needs the namespace to enter")
    enter = [] if netns is None else ["nsenter", f"--net=/var/run/netns/{netns}", "--"]
    return [
        *enter,
        "unshare", "--mount", "--propagation", "private", "--",
        "bash", "-c", script(binds, pod_netns=pod_netns), PROG, *argv,
    ]
