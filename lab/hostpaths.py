"""hostPath volumes as a kubelet checks them before a container starts: the path must be
what its ``type`` says, ``DirectoryOrCreate`` and ``FileOrCreate`` create it (0755 and
0644, as the kubelet does), an empty type checks nothing. The kubelet checks the path at
its place on the machine (lab.podvolumes.resolved_host_path: the node's share of it)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from agent.model.core import HostPathVolumeSource

_IS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def prepare(source: HostPathVolumeSource) -> str | None:
    """None when the hostPath is ready; else why not (the kubelet's FailedMount message)."""
    path, kind = Path(source.path), source.type or ""
    try:
        if kind == "DirectoryOrCreate" and not path.exists():
            path.mkdir(mode=0o755, parents=True)
            return None
        if kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            path.touch(mode=0o644)
            return None
        check = _IS.get(kind.removesuffix("OrCreate"))
        if check is None:
            return None
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"hostPath type check failed: {path} does not exist"
    except OSError as err:
        return f"hostPath {path}: {err.strerror or err}"
    test, what = check
    return None if test(mode) else f"hostPath type check failed: {path} is not {what}"
