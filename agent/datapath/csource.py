"""The C text Tulle hands to BCC: sources with their project headers inlined (no BCC needed).

BCC rewrites map calls (``m.lookup(&k)``) only in its main file, so a header that touched a map
would compile but fail to load. We therefore expand project headers (quoted includes found next to
the including file, under ``bpf/lib`` or ``bpf/``) into one text with ``#line`` markers: clang's
messages, the verifier's line info, ``__FILE_NAME__`` and ``__LINE__`` still name the real file
and line. System headers (``<uapi/...>``) stay ordinary includes.

Kept apart from ``bpf_loader`` (which imports BCC) because the compile cache hashes this text
to decide whether a start may skip BCC altogether (``agent.datapath.templates``).
"""

from __future__ import annotations

import re
from pathlib import Path

from agent.datapath.cdefs import BPF_DIR, LIB_DIR

_INCLUDE = re.compile(r'^\s*#\s*include\s*"(?P<name>[^"]+)"')


def display(path: Path) -> str:
    """Paths in messages and ``#line`` markers: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(BPF_DIR.parent))
    except ValueError:
        return str(path.resolve())


def _line_marker(line: int, path: Path) -> str:
    name = display(path).replace("\\", "\\\\").replace('"', '\\"')
    return f'#line {line} "{name}"\n'


def _resolve_include(name: str, including: Path) -> Path | None:
    for base in (including.parent, LIB_DIR, BPF_DIR):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    return None  # left for clang, which reports it at the right file and line


def _expand(path: Path, seen: set[Path]) -> str:
    out: list[str] = []
    continued = False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not continued:  # a directive may not split a backslash-continued line
            out.append(_line_marker(number, path))
        continued = line.endswith("\\")
        match = _INCLUDE.match(line)
        header = _resolve_include(match["name"], path) if match else None
        if header is None:
            out.append(line + "\n")
        elif header not in seen:
            seen.add(header)
            out.append(_expand(header, seen))
    return "".join(out)


def expand_sources(source_files: list[Path]) -> str:
    """The single C text handed to BCC: every source, project headers inlined, ``#line``-marked.

    Every line gets its own ``#line`` marker because BCC inserts lines when it rewrites (an
    attribute before each function), which would otherwise shift ``__LINE__`` and the verifier's
    line info. Each project header is inlined once per text, like ``#pragma once``.
    """
    seen: set[Path] = set()
    return "".join(_expand(p.resolve(), seen) for p in source_files)


def compile_flags(cflags: list[str]) -> list[str]:
    """clang's flags for Tulle's C: the project include dirs, then the caller's."""
    return [f"-I{LIB_DIR}", f"-I{BPF_DIR}", *cflags]
