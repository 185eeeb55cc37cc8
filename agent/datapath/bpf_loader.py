"""Compile Tulle's C eBPF programs with BCC, load their programs and pin their maps.

    bpf = load_program([BPF_DIR / "probe_parse.c"], [])
    prog = load_fn(bpf, "probe_parse", BPF.SCHED_CLS)
    pin_map(bpf, "tulle_drops_v1", pin_dir / "tulle_drops_v1")

The C handed to BCC is ``csource.expand_sources``: project headers inlined with ``#line``
markers (see there why).

Runtime switches belong in the config map (``bpf/lib/common.h``), not in ``-D`` flags: a flag
forces a recompile and a program swap, a map write does not.
"""

from __future__ import annotations

import ctypes
import re
import sys
from pathlib import Path

from bcc import BPF, DEBUG_PREPROCESSOR
from bcc.libbcc import lib as bcc_lib

from agent.datapath.cdefs import BPF_DIR, LIB_DIR
from agent.datapath.csource import compile_flags, expand_sources
from agent.datapath.csource import display as _display
from agent.datapath.features import feature_probe
from agent.datapath.native import captured_stderr, obj_get, obj_pin

__all__ = [
    "BPF",
    "BPF_DIR",
    "LIB_DIR",
    "BpfError",
    "CompileError",
    "LoadError",
    "expand_sources",
    "feature_probe",
    "fn",
    "load_fn",
    "load_program",
    "map_fd",
    "open_pinned",
    "pin_map",
    "table_descriptions",
    "unpin",
]

_CLANG_ERROR = re.compile(
    r"^(?P<file>[^\s:][^:\n]*):(?P<line>\d+):(?P<col>\d+): (?:fatal )?error: (?P<msg>.*)$",
    re.MULTILINE,
)
_LINE_MARKER = re.compile(r'^#line \d+ "(?P<file>(?:[^"\\]|\\.)*)"$')
_VERIFIER_TAIL = 30  # the verifier states the reason at the end of its log


class BpfError(Exception):
    """Base class of the loader's errors."""


class CompileError(BpfError):
    """clang rejected the C. ``file``/``line`` point at the first error; ``diagnostics`` is all
    that the compiler printed. ``raised`` is what BCC raised: its words are the reason when
    clang printed no error (BCC's own Python failed, say), and it is the error's cause."""

    def __init__(self, sources: list[Path], diagnostics: str,
                 raised: BaseException | None = None) -> None:
        self.diagnostics = diagnostics.strip()
        first = _CLANG_ERROR.search(self.diagnostics)
        self.file: str | None = first["file"] if first else None
        self.line: int | None = int(first["line"]) if first else None
        names = ", ".join(_display(p) for p in sources)
        where = (f"{self.file}:{self.line}: {first['msg']}" if first
                 else f"no clang error found; BCC raised {raised!r}" if raised is not None
                 else "no clang error found")
        super().__init__(
            f"compiling {names} failed: {where}\n{self.diagnostics or '(no diagnostics)'}"
        )


class LoadError(BpfError):
    """The kernel refused a program. ``log`` holds the verifier log libbcc printed."""

    def __init__(self, name: str, reason: str, log: str) -> None:
        self.name = name
        self.log = log.strip()
        tail = "\n".join(self.log.splitlines()[-_VERIFIER_TAIL:])
        super().__init__(f"loading BPF program {name!r} failed: {reason}\n{tail}".rstrip())


def _bcc_rewritten(debug_output: str) -> str | None:
    """BCC's DEBUG_PREPROCESSOR output is the clang command line then the rewritten main file."""
    lines = debug_output.splitlines(keepends=True)
    start = next((i for i, s in enumerate(lines) if s.startswith("clang -cc1")), None)
    end = next((i for i, s in enumerate(lines) if s.startswith("#include <bcc/footer.h>")), None)
    if start is None or end is None or end <= start:
        return None
    return "".join(lines[start + 1 : end + 1])


def _readable(text: str) -> str:
    """Drop the per-line ``#line`` markers from a dump, keeping those that switch files."""
    out, current = [], None
    for line in text.splitlines(keepends=True):
        marker = _LINE_MARKER.match(line)
        if marker and marker["file"] == current:
            continue
        if marker:
            current = marker["file"]
        out.append(line)
    return "".join(out)


def load_program(
    source_files: list[Path], cflags: list[str], *, debug_dump_path: Path | None = None
) -> BPF:
    """Compile ``source_files`` into one BCC module (``bcc.BPF``), with ``-I bpf/lib -I bpf``.

    ``debug_dump_path`` receives the C that clang compiled, after BCC's rewrite (or our expanded
    input when clang failed before the rewrite), like the bcc tools' ``--ebpf``. It is written
    whether or not compilation succeeds. Raises :class:`CompileError` with clang's messages.
    """
    missing = [str(p) for p in source_files if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"BPF source not found: {', '.join(missing)}")
    text = expand_sources([Path(p) for p in source_files])
    flags = compile_flags(cflags)
    debug = DEBUG_PREPROCESSOR if debug_dump_path else 0
    bpf: BPF | None = None
    failure: Exception | None = None
    with captured_stderr() as stderr:
        try:
            bpf = BPF(text=text.encode(), cflags=flags, debug=debug)
        except Exception as exc:  # BCC raises a bare Exception; clang's text went to fd 2
            failure = exc
    printed = stderr[0]
    if debug_dump_path is not None:
        header = f"/* BCC input for {', '.join(map(str, source_files))}\n * cflags: {flags}\n */\n"
        debug_dump_path.write_text(header + _readable(_bcc_rewritten(printed) or text))
    elif printed.strip():
        sys.stderr.write(printed)  # warnings of a good compile belong to the user, not to us
    if bpf is None:
        raise CompileError([Path(p) for p in source_files], printed, failure) from failure
    return bpf


bcc_lib.bpf_num_tables.argtypes = [ctypes.c_void_p]
bcc_lib.bpf_num_tables.restype = ctypes.c_size_t
bcc_lib.bpf_table_name.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
bcc_lib.bpf_table_name.restype = ctypes.c_char_p


def table_descriptions(bpf: BPF) -> dict[str, tuple[int, str, str]]:
    """Every table of the module: name -> (map fd, key type JSON, leaf type JSON), the JSON
    being BCC's type descriptions (``tabletypes.decode`` reads them)."""
    out = {}
    for i in range(bcc_lib.bpf_num_tables(bpf.module)):
        name = bcc_lib.bpf_table_name(bpf.module, i)
        out[name.decode()] = (
            int(bcc_lib.bpf_table_fd(bpf.module, name)),
            bcc_lib.bpf_table_key_desc(bpf.module, name).decode(),
            bcc_lib.bpf_table_leaf_desc(bpf.module, name).decode(),
        )
    return out


def _function_names(bpf: BPF) -> list[str]:
    count = bcc_lib.bpf_num_functions(bpf.module)
    return [bcc_lib.bpf_function_name(bpf.module, i).decode() for i in range(count)]


def load_fn(bpf: BPF, name: str, prog_type: int) -> BPF.Function:
    """Load function ``name`` as a program of ``prog_type`` (``BPF.SCHED_CLS``, ...).

    Returns BCC's ``BPF.Function`` (``.fd`` is the program fd; BCC closes it in ``cleanup()``).
    Raises :class:`LoadError` carrying the verifier log.
    """
    if name not in _function_names(bpf):
        raise LoadError(name, f"no such function; the module has {_function_names(bpf)}", "")
    with captured_stderr() as stderr:
        try:
            return bpf.load_func(name.encode(), prog_type)
        except Exception as exc:
            failure = exc
    err = ctypes.get_errno()
    reason = str(failure) + (" (run as root or grant CAP_BPF)" if err == 1 else "")
    raise LoadError(name, reason, stderr[0])


fn = load_fn  # the short name used across the datapath code


def map_fd(bpf: BPF, name: str) -> int:
    """The fd of map ``name`` in ``bpf`` (owned by the module: do not close it)."""
    fd = int(bcc_lib.bpf_table_fd(bpf.module, name.encode()))
    if fd < 0:
        raise KeyError(f"no map named {name!r} in this BPF module")
    return fd


def pin_map(bpf: BPF, name: str, path: Path, *, replace: bool = False) -> Path:
    """Pin map ``name`` at ``path`` on bpffs, creating parent directories.

    An existing pin is an error unless ``replace``: adopting a pinned map is a decision the
    caller makes (``BPF_TABLE_PINNED`` in C), not something to clobber silently.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        if not replace:
            raise FileExistsError(f"a BPF object is already pinned at {path}")
        path.unlink()
    obj_pin(map_fd(bpf, name), path)
    return path


def unpin(path: Path, *, missing_ok: bool = True) -> None:
    """Remove a pin. The map lives on while a program or fd still holds it."""
    path.unlink(missing_ok=missing_ok)


def open_pinned(path: Path) -> int:
    """Open a pinned object; the caller closes the fd (``os.close``)."""
    return obj_get(path)
