"""The compile cache: a restarted agent adopts its pinned programs instead of compiling again.

A BCC compile costs ~1.5 s of CPU and ~80 MB (bench/results/compile-cache-2026-12-05.md), yet
a restart (crash, OOM kill, the kubelet restarting the DaemonSet pod) runs the same source on
the same kernel. Like Cilium's template cache, keyed by a hash of what determines the object:

- after a compile, ``remember`` pins the programs beside the maps and writes a record to the
  state dir (bpffs holds only BPF objects): the key (a hash of the inputs below), each
  program's tag and map ids, and each table's map id, shape and BCC type descriptions;
- on the next start, ``adopt`` recomputes the key and, only if it matches AND the kernel
  reports the recorded tags and map ids for the pinned programs (and the recorded id, type
  and sizes for each map), opens them: programs, maps and ctypes without importing BCC. Any
  difference raises ``Mismatch`` naming it, and the caller compiles as before.

The key covers the expanded C text (``csource.expand_sources``), the full cflags (pin dir
included), the kernel's release and version, BCC's version and libbcc's file, and the program
names and types. One record per name and state dir (one agent per state dir): the
datapath's (``RECORD_NAME``) and the tracer's (``agent.tracing.cache``) sit side by side.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import re
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.datapath import bpfinfo
from agent.datapath.csource import compile_flags, expand_sources
from agent.datapath.kerneltable import RINGBUF, KernelTable
from agent.datapath.native import obj_get, obj_pin
from agent.datapath.tabletypes import TypeDescError, decode, possible_cpus

RECORD_FORMAT = 1
RECORD_NAME = "datapath-template.json"
_NAME_LEN = 15  # the kernel keeps BPF_OBJ_NAME_LEN - 1 characters of a name


class Mismatch(Exception):
    """Why this start cannot adopt the pinned programs (one line, for the log)."""


@dataclass(frozen=True)
class Program:
    name: str
    prog_type: int
    kernel_name: str = ""  # the name the kernel keeps, when the loader shortened it otherwise


@dataclass
class Adopted:
    """Opened pinned programs and maps; ``close`` releases every fd."""

    prog_fds: dict[str, int]
    tables: dict[str, KernelTable]
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()


def _libbcc() -> list[Any]:
    """Which libbcc compiles: its resolved path, size and mtime (a package upgrade moves one)."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    for base in (f"/usr/lib/{arch}", "/usr/lib64", "/usr/lib", f"/lib/{arch}"):
        path = Path(base) / "libbcc.so.0"
        if path.exists():
            st = path.stat()
            return [str(path.resolve()), st.st_size, st.st_mtime_ns]
    return ["absent"]


def _bcc_version() -> str:
    """BCC's Python version string, read from its version.py: importing bcc loads libbcc."""
    spec = importlib.util.find_spec("bcc")
    for where in (spec.submodule_search_locations or []) if spec else []:
        version = Path(where) / "version.py"
        if version.is_file():
            found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", version.read_text())
            if found:
                return found[1]
    return "absent"


def inputs(sources: list[Path], cflags: list[str], programs: list[Program]) -> dict[str, Any]:
    """What determines the compiled object, as the record keeps it."""
    uname = os.uname()
    return {
        "source_sha256": hashlib.sha256(expand_sources(sources).encode()).hexdigest(),
        "cflags": compile_flags(cflags),
        "kernel": [uname.release, uname.version],
        "bcc": [_bcc_version(), *_libbcc()],
        "programs": [[p.name, p.prog_type] for p in programs],
    }


def key_of(ins: dict[str, Any]) -> str:
    canon = json.dumps({"format": RECORD_FORMAT, **ins}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# -- after a compile -------------------------------------------------------------------------


def build_record(ins: dict[str, Any], prog_fds: dict[str, int],
                 tables: dict[str, tuple[int, str, str]], pin_dir: Path) -> dict[str, Any]:
    """The record of a fresh compile: ``tables`` is name -> (map fd, key JSON, leaf JSON)."""
    programs = {}
    used: set[int] = set()
    for name, fd in prog_fds.items():
        prog = bpfinfo.prog_info(fd)
        programs[name] = {"type": prog.type, "tag": prog.tag, "map_ids": list(prog.map_ids)}
        used.update(prog.map_ids)
    described = {}
    for name, (fd, key_desc, leaf_desc) in tables.items():
        info = bpfinfo.map_info(fd)
        held = info.id in used  # else the map dies with this process: keep only its types
        described[name] = {
            "id": info.id if held else None,
            "pinned": held and _pinned_id(pin_dir / name) == info.id,
            "type": info.type, "key_size": info.key_size, "value_size": info.value_size,
            "max_entries": info.max_entries, "flags": info.flags,
            "key": json.loads(key_desc), "leaf": json.loads(leaf_desc),
        }
    record = {"format": RECORD_FORMAT, "key": key_of(ins), "inputs": ins,
              "programs": programs, "tables": described}
    record["digest"] = _digest(record)
    return record


def _pinned_id(path: Path) -> int | None:
    try:
        fd = obj_get(path)
    except OSError:
        return None
    try:
        return bpfinfo.map_info(fd).id
    finally:
        os.close(fd)


def remember(state_dir: Path, pin_dir: Path, record: dict[str, Any],
             prog_fds: dict[str, int], record_name: str = RECORD_NAME) -> Path:
    """Pin the programs beside the maps (replacing older pins) and write the record. The old
    record goes first, so a crash in between leaves no record to trust. Programs the old
    record pinned that this one does not (another plan) are unpinned: their maps go too."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / record_name
    for name in _recorded_programs(path) - set(prog_fds):
        (pin_dir / name).unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    for name, fd in prog_fds.items():
        (pin_dir / name).unlink(missing_ok=True)
        obj_pin(fd, pin_dir / name)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    os.replace(tmp, path)
    return path


def _recorded_programs(path: Path) -> set[str]:
    """The program names an earlier record lists (none when it is absent or unreadable)."""
    try:
        programs = json.loads(path.read_text()).get("programs")
    except (OSError, ValueError, AttributeError):
        return set()
    if not isinstance(programs, dict):
        return set()
    return {n for n in programs if isinstance(n, str) and "/" not in n and n not in ("", ".", "..")}


# -- on start ------------------------------------------------------------------------------


def read_record(state_dir: Path, key: str, ins: dict[str, Any],
                record_name: str = RECORD_NAME) -> dict[str, Any]:
    path = state_dir / record_name
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise Mismatch(f"no compile record at {path}") from None
    except (OSError, ValueError) as err:
        raise Mismatch(f"compile record {path} unreadable: {err}") from None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise Mismatch(f"compile record {path} has another format")
    if record.get("digest") != _digest(record):
        raise Mismatch(f"compile record {path} does not match its digest (edited or corrupt)")
    if record.get("key") != key:
        old = record.get("inputs") or {}
        changed = [name for name in ins if old.get(name) != ins[name]] or ["key"]
        raise Mismatch(f"the {', '.join(changed)} changed since the last compile")
    return record


def adopt(pin_dir: Path, state_dir: Path, ins: dict[str, Any],
          programs: list[Program], record_name: str = RECORD_NAME) -> Adopted:
    """Open the pinned programs and their maps if they are exactly what the record
    ``record_name`` describes for these inputs (:func:`inputs`); else raise
    :class:`Mismatch` (nothing stays open)."""
    record = read_record(state_dir, key_of(ins), ins, record_name)
    adopted = Adopted({}, {})
    try:
        used = _open_programs(pin_dir, record, programs, adopted)
        cpus = possible_cpus()
        for name, desc in record["tables"].items():
            adopted.tables[name] = _open_table(pin_dir, name, desc, used, cpus, adopted)
        return adopted
    except Mismatch:
        adopted.close()
        raise
    except (OSError, LookupError, TypeError, ValueError, AttributeError) as err:
        adopted.close()
        raise Mismatch(f"adopting failed: {err}") from None


def open_compiled_maps(tables: dict[str, tuple[int, str, str]]) -> Adopted:
    """The maps of a module BCC just compiled, before its programs load (name -> (map fd, key
    JSON, leaf JSON), bpf_loader.table_descriptions): each fd duplicated, so that they
    outlive the compiler's module, and typed from BCC's descriptions as ``adopt`` types a
    record's. A first sync writes them while the verifier checks the programs."""
    opened = Adopted({}, {})
    try:
        cpus = possible_cpus()
        for name, (fd, key_desc, leaf_desc) in tables.items():
            own = os.dup(fd)
            opened.fds.append(own)
            info = bpfinfo.map_info(own)
            key, leaf = decode(json.loads(key_desc)), decode(json.loads(leaf_desc))
            opened.tables[name] = KernelTable(name, own, info.type, key, leaf,
                                              info.max_entries, info.flags, cpus)
    except BaseException:
        opened.close()
        raise
    return opened


def _open_programs(pin_dir: Path, record: dict[str, Any], programs: list[Program],
                   adopted: Adopted) -> set[int]:
    used: set[int] = set()
    for program in programs:
        want = record["programs"].get(program.name)
        path = pin_dir / program.name
        if want is None:
            raise Mismatch(f"the record has no program {program.name}")
        try:
            fd = obj_get(path)
        except OSError as err:
            raise Mismatch(f"pinned program {path}: {err}") from None
        adopted.fds.append(fd)
        info = bpfinfo.prog_info(fd)
        if info.type != program.prog_type or info.name != (
                program.kernel_name or program.name)[:_NAME_LEN]:
            raise Mismatch(f"{path} is {info.name!r} of type {info.type}, not {program.name}")
        if info.tag != want["tag"]:
            raise Mismatch(f"{path} has tag {info.tag}, the record {want['tag']}")
        if list(info.map_ids) != want["map_ids"]:
            raise Mismatch(f"{path} uses maps {list(info.map_ids)}, the record {want['map_ids']}")
        adopted.prog_fds[program.name] = fd
        used.update(info.map_ids)
    return used


def _open_table(pin_dir: Path, name: str, desc: dict[str, Any], used: set[int], cpus: int,
                adopted: Adopted) -> KernelTable:
    try:
        key, leaf = decode(desc["key"]), decode(desc["leaf"])
    except TypeDescError as err:
        raise Mismatch(f"table {name}: {err}") from None
    fd = -1
    if desc["id"] is not None:
        if desc["id"] not in used:
            raise Mismatch(f"table {name}: map {desc['id']} is not one the programs use")
        fd = bpfinfo.map_fd_by_id(desc["id"])
        adopted.fds.append(fd)
        info = bpfinfo.map_info(fd)
        shape = (info.name, info.type, info.key_size, info.value_size, info.max_entries,
                 info.flags)
        want = (name[:_NAME_LEN], desc["type"], desc["key_size"], desc["value_size"],
                desc["max_entries"], desc["flags"])
        if shape != want:
            raise Mismatch(f"table {name}: map {info.id} is {shape}, the record {want}")
        if desc["pinned"] and _pinned_id(pin_dir / name) != info.id:
            raise Mismatch(f"table {name}: {pin_dir / name} no longer pins map {info.id}")
    if desc["type"] != RINGBUF:
        sizes = (ctypes.sizeof(key), ctypes.sizeof(leaf))
        if sizes != (desc["key_size"], desc["value_size"]):
            raise Mismatch(f"table {name}: types of {sizes} bytes for a map of "
                           f"{(desc['key_size'], desc['value_size'])}")
    return KernelTable(name, fd, desc["type"], key, leaf, desc["max_entries"], desc["flags"],
                       cpus)
