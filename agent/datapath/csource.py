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


def _marker_name(path: Path) -> str:
    """``path`` as a ``#line`` marker quotes it."""
    return display(path).replace("\\", "\\\\").replace('"', '\\"')


def _resolve_include(name: str, including: Path) -> Path | None:
    for base in (including.parent, LIB_DIR, BPF_DIR):
        candidate = base / name
        if candidate.is_file():  # one stat; resolving (a stat per component) only a hit
            return candidate.resolve()
    return None  # left for clang, which reports it at the right file and line


def _expand(path: Path, seen: set[Path], found: dict[tuple[str, Path], Path | None]) -> str:
    """``path`` with its project headers inlined; ``found`` caches where an include name
    resolved from a directory (headers include each other's names over and over)."""
    out: list[str] = []
    continued = False
    # Once per file: resolving the path stats each of its components, and a marker per line
    # did that ~15,000 times per expansion, each stat letting another thread take the GIL
    # (at an agent's start, the informers' decoding: ~0.3 s before the compile began).
    name = _marker_name(path)
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not continued:  # a directive may not split a backslash-continued line
            out.append(f'#line {number} "{name}"\n')
        continued = line.endswith("\\")
        match = _INCLUDE.match(line)
        header = None
        if match:
            where = (match["name"], path.parent)
            if where not in found:
                found[where] = _resolve_include(match["name"], path)
            header = found[where]
        if header is None:
            out.append(line + "\n")
        elif header not in seen:
            seen.add(header)
            out.append(_expand(header, seen, found))
    return "".join(out)


def expand_sources(source_files: list[Path]) -> str:
    """The single C text handed to BCC: every source, project headers inlined, ``#line``-marked.

    Every line gets its own ``#line`` marker because BCC inserts lines when it rewrites (an
    attribute before each function), which would otherwise shift ``__LINE__`` and the verifier's
    line info. Each project header is inlined once per text, like ``#pragma once``.
    """
    seen: set[Path] = set()
    found: dict[tuple[str, Path], Path | None] = {}
    return "".join(_expand(p.resolve(), seen, found) for p in source_files)


def compile_flags(cflags: list[str]) -> list[str]:
    """clang's flags for Tulle's C: the project include dirs, then the caller's."""
    return [f"-I{LIB_DIR}", f"-I{BPF_DIR}", *cflags]
