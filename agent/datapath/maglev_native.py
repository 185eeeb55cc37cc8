"""Maglev tables in C (maglev_fill.c), through ctypes, when a C compiler is at hand:

- ``fill``: the population loop alone, ~10 times faster than the Python loop, which probes
  ~7,000 slots per 1,021-slot table (0.25 ms; 2.5 s of an agent's first sync at 10,000
  Services);
- ``tables``: whole tables (backend names, their BLAKE2b permutations, the fill) for many
  services in one call, which ctypes makes without the GIL: a first sync's 10,000 tables
  cost one crossing and no Python per backend.

The shared object is built once per source version with the system's ``cc`` into a private
cache directory (``$TULLE_NATIVE_DIR``, else ``~/.cache/tulle/native``; created 0700, and
a directory another user can write is refused), then loaded. No compiler, a failed build or
an unsafe directory: ``fill`` is None and agent.datapath.maglev keeps its Python loop, which
builds the same tables.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import stat
import subprocess
import tempfile
from array import array
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("tulle.datapath")
SOURCE = Path(__file__).with_name("maglev_fill.c")
Fill = Callable[[Sequence[tuple[int, int]], Sequence[int], int], array]
Tables = Callable[[array, array, array, int], array]
"""``tables(ips, ports, counts, size)``: ``ips`` ("I", host order) and ``ports`` ("H") hold
every service's backends one service after the other, ``counts`` ("I") how many each has
(at least 1, fewer than ``size``, no two alike); returns the tables one after the other,
``size`` slots each, as indices into the service's own backends."""


def cache_dir() -> Path:
    configured = os.environ.get("TULLE_NATIVE_DIR")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tulle" / "native"


def _private(directory: Path) -> bool:
    """Ours and writable by no one else: a library loaded from here runs as us."""
    info = directory.stat()
    return info.st_uid == os.geteuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def build(directory: Path | None = None) -> Path | None:
    """The shared object for this source version, built if missing; None when it cannot be."""
    source = SOURCE.read_bytes()
    directory = directory or cache_dir()
    target = directory / f"maglev_fill-{hashlib.sha256(source).hexdigest()[:16]}.so"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory):
            log.warning("%s is writable by others: not building native code there", directory)
            return None
        if target.exists():
            return target
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            return None
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=directory)
        os.close(fd)
        done = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", tmp, str(SOURCE)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        if done.returncode != 0:
            os.unlink(tmp)
            log.warning("building %s failed: %s", SOURCE.name, done.stderr.strip()[-500:])
            return None
        os.replace(tmp, target)  # atomic: a concurrent builder's copy is the same
        return target
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("native Maglev fill unavailable (%s); using the Python loop", err)
        return None


def load(path: Path) -> Fill:
    lib = ctypes.CDLL(str(path))  # dlopen: the same library as load_tables' once loaded
    fn = lib.tulle_maglev_fill
    u32p, u16p = ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(ctypes.c_uint16)
    fn.argtypes = [u32p, u32p, u16p, ctypes.c_uint32, ctypes.c_uint32, u16p]
    fn.restype = ctypes.c_int

    def fill(prefs: Sequence[tuple[int, int]], order: Sequence[int], size: int) -> array:
        """The table as the caller's backend indices (``order[k]`` is the caller's index of
        the k-th backend of ``prefs``), 2 bytes a slot."""
        n = len(prefs)
        offsets = (ctypes.c_uint32 * n)(*(o for o, _ in prefs))
        skips = (ctypes.c_uint32 * n)(*(s for _, s in prefs))
        marks = (ctypes.c_uint16 * n)(*order)
        out = array("H", bytes(2 * size))
        address, _ = out.buffer_info()
        if fn(offsets, skips, marks, n, size, ctypes.cast(address, u16p)) != 0:
            raise ValueError(f"native Maglev fill refused {n} backends in {size} slots")
        return out

    return fill


def load_tables(path: Path) -> Tables:
    fn = ctypes.CDLL(str(path)).tulle_maglev_tables
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint32,
                   ctypes.c_uint32, ctypes.c_void_p]
    fn.restype = ctypes.c_int

    def tables(ips: array, ports: array, counts: array, size: int) -> array:
        if not (ips.typecode, ports.typecode, counts.typecode) == ("I", "H", "I"):
            raise TypeError("tables wants arrays of I (ips), H (ports) and I (counts)")
        if len(ips) != len(ports) or sum(counts) != len(ips):
            raise ValueError(f"{len(ips)} ips, {len(ports)} ports, counts adding to "
                             f"{sum(counts)}: they must agree")
        out = array("H", bytes(2 * size * len(counts)))
        if counts and fn(ips.buffer_info()[0], ports.buffer_info()[0],
                         counts.buffer_info()[0], len(counts), size, out.buffer_info()[0]):
            raise ValueError(f"native Maglev tables refused a set of backends in {size} slots")
        return out

    return tables


def native_fill() -> Fill | None:
    path = _library()
    return _loaded(load, path) if path is not None else None


def native_tables() -> Tables | None:
    path = _library()
    return _loaded(load_tables, path) if path is not None else None


_BUILT: dict[Path, Path | None] = {}  # cache directory -> its library (once per process)


def _library() -> Path | None:
    """The library, built (or found) once per process and cache directory: ``native_fill``
    and ``native_tables`` both ask for it at start."""
    if os.environ.get("TULLE_NATIVE") == "0":  # force the Python loop (tests, comparisons)
        return None
    directory = cache_dir()
    if directory not in _BUILT:
        _BUILT[directory] = build(directory)
    return _BUILT[directory]


def _loaded(loader: Callable[[Path], Callable[..., array]], path: Path) -> Any:
    try:
        return loader(path)
    except (OSError, AttributeError) as err:  # AttributeError: a symbol missing
        log.warning("loading %s failed (%s); using the Python loop", path, err)
        return None
