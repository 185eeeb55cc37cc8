"""JSON files a process writes for others to read (the agent's health report, the lab's
process records): written whole or not at all, read as None when absent or half-made. And
`stamp`, how the certificate reloaders tell that files another process writes changed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Stamp = tuple[tuple[str, int, int, int], ...]


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def stamp(paths: Iterable[Path]) -> Stamp:
    """(path, inode, size, mtime ns) of each of ``paths`` that can be looked at: it changes
    when any of them is replaced (a Secret volume swaps a symlink), rewritten, created or
    removed. The certificate reloaders (agent/observer/tls.py, l7proxy/hbone/identities.py)
    re-read their files only when it changed, and keep the last good set when they fail."""
    out = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:  # gone (or not readable): its absence is the change
            continue
        out.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)
