"""Generate ``builtin_types.json.gz``: the built-in kinds' types, read from the
``generated.proto`` and ``types.go`` files of k8s.io/api and k8s.io/apimachinery.

One table serves two readers: ``protobuf.py`` decodes the protobuf bodies kubectl 1.32+
sends (field numbers, types), and ``builtin_openapi.py`` describes the kinds for
``kubectl explain`` (descriptions, types). ``types.go`` adds what the proto files cannot
say: which fields JSON omits when empty (a non-pointer ``omitempty`` field), since gogo
protobuf writes them even when zero and a cluster would not show them.

    git -C k8s.io/api archive --prefix=api/ HEAD | tar x   # and apimachinery/
    python -m lab.apiserver.protogen --api api --apimachinery apimachinery

Each message: ``{"d": description, "f": {number: [json name, type, flags, description,
{list markers}?]}}``; the markers are a list's ``patchMergeKey``, ``patchStrategy``,
``listType`` and ``listMapKey`` (comma-joined);
type is a proto scalar, ``map<K,V>`` or a message's full name; flags: ``r`` repeated,
``z`` omitted from JSON when zero, ``i`` an embedded struct whose fields JSON inlines.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

API_PACKAGES = (
    "core/v1",
    "apps/v1",
    "batch/v1",
    "networking/v1",
    "rbac/v1",
    "coordination/v1",
    "discovery/v1",
    "authentication/v1",
    "authorization/v1",
    "autoscaling/v1",
    "policy/v1",
    "scheduling/v1",
    "events/v1",
)
MACHINERY_PACKAGES = (
    "pkg/apis/meta/v1",
    "pkg/runtime",
    "pkg/runtime/schema",
    "pkg/util/intstr",
    "pkg/api/resource",
)
OUT = Path(__file__).with_name("builtin_types.json.gz")

_PACKAGE = re.compile(r"^package ([\w.]+);", re.M)
_MESSAGE = re.compile(r"^message (\w+) \{$")
_FIELD = re.compile(r"^  (optional|repeated)?\s*(map<[\w.]+,\s*[\w.]+>|[\w.]+) (\w+) = (\d+);")
_STRUCT = re.compile(r"^type (\w+) struct \{")
_GO_FIELD = re.compile(r"^\t(?:\w+\s+)?(\S+)\s+`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')
_SCALARS = frozenset({"int32", "int64", "bool", "string", "bytes", "double", "float"})


def _description(lines: list[str]) -> str:
    """A comment block as the OpenAPI generator words it: markers dropped, lines joined,
    blank lines kept as paragraph breaks, nothing after a ``---`` line."""
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        text = line.strip()
        if text == "---":
            break
        if text.startswith(("+", "TODO")):
            continue
        if not text:
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(text)
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def _go_flags(go_dir: Path) -> dict[tuple[str, int], str]:
    """(struct, protobuf number) -> "i" for an embedded struct whose fields JSON inlines
    (``json:""``), "z" for an ``omitempty`` field that is no pointer, slice or map (a scalar
    of these is left out of JSON when zero)."""
    out: dict[tuple[str, int], str] = {}
    for path in sorted(go_dir.glob("*.go")):
        if path.name.endswith("_test.go") or path.name.startswith("zz_generated"):
            continue
        struct = None
        for line in path.read_text().splitlines():
            if m := _STRUCT.match(line):
                struct = m.group(1)
            elif line.startswith("}"):
                struct = None
            elif struct and (f := _GO_FIELD.match(line)):
                go_type, tags = f.group(1), dict(_TAG.findall(f.group(2)))
                parts = tags.get("protobuf", "").split(",")
                js = tags.get("json", "").split(",")
                if len(parts) < 2 or not parts[1].isdigit():
                    continue
                embedded = f.group(0).split()[0] == go_type
                if "json" in tags and not js[0] and embedded:  # its fields are inlined
                    out[(struct, int(parts[1]))] = "i"
                elif not go_type.startswith(("*", "[]", "map[")) and "omitempty" in js[1:]:
                    out[(struct, int(parts[1]))] = "z"
    return out


_MARKER = re.compile(r"^\+(patchMergeKey|patchStrategy|listType|listMapKey)=(\S+)$")


def _list_markers(lines: list[str]) -> dict[str, str]:
    """A list's merge markers: patchMergeKey, patchStrategy, listType, listMapKey (joined)."""
    out: dict[str, str] = {}
    for line in lines:
        if m := _MARKER.match(line.strip()):
            key, value = m.groups()
            out[key] = f"{out[key]},{value}" if key in out else value
    return out


def parse(proto: str, go_flags: dict[tuple[str, int], str]) -> dict[str, dict[str, object]]:
    package = _PACKAGE.search(proto)
    assert package, "no package line"
    prefix = package.group(1)
    messages: dict[str, dict[str, object]] = {}
    comment: list[str] = []
    current: dict[str, object] | None = None
    name = ""
    for line in proto.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            comment.append(stripped[2:].removeprefix(" "))
            continue
        if m := _MESSAGE.match(line):
            name = m.group(1)
            current = {"d": _description(comment), "f": {}}
            messages[f"{prefix}.{name}"] = current
        elif current is not None and (f := _FIELD.match(line)):
            label, type_, field, number = f.groups()
            type_ = type_.replace(" ", "")
            if type_ not in _SCALARS and not type_.startswith("map<"):
                type_ = type_.lstrip(".") if type_.startswith(".") else f"{prefix}.{type_}"
            elif type_.startswith("map<"):
                key, value = type_[4:-1].split(",")
                if value not in _SCALARS:
                    value = value.lstrip(".") if value.startswith(".") else f"{prefix}.{value}"
                type_ = f"map<{key},{value}>"
            go = go_flags.get((name, int(number)), "")
            flags = ("r" if label == "repeated" else "") + (
                "z" if go == "z" and type_ in _SCALARS else "i" if go == "i" else ""
            )
            fields = current["f"]
            assert isinstance(fields, dict)
            fields[number] = [field, type_, flags, _description(comment)]
            if lists := _list_markers(comment):
                fields[number].append(lists)
        elif stripped == "}":
            current = None if line == "}" else current
        comment = [] if not stripped.startswith("//") else comment
    return messages


def _package_of(proto: Path) -> str:
    found = _PACKAGE.search(proto.read_text())
    assert found, f"{proto}: no package line"
    return found.group(1)


def _referenced(type_: str) -> str:
    return type_[4:-1].split(",")[1] if type_.startswith("map<") else type_


def generate(api: Path, machinery: Path) -> dict[str, dict[str, object]]:
    """The messages of the served packages and every message they reach (newer types reach
    into alpha packages: those messages come along, their packages do not)."""
    every: dict[str, dict[str, object]] = {}
    for proto in sorted([*api.rglob("generated.proto"), *machinery.rglob("generated.proto")]):
        every.update(parse(proto.read_text(), _go_flags(proto.parent)))
    roots = [api / p for p in API_PACKAGES] + [machinery / p for p in MACHINERY_PACKAGES]
    prefixes = tuple(f"{_package_of(d / 'generated.proto')}." for d in roots)
    todo = [name for name in every if name.startswith(prefixes)]
    table: dict[str, dict[str, object]] = {}
    while todo:
        name = todo.pop()
        if name in table:
            continue
        table[name] = every[name]
        fields = every[name]["f"]
        assert isinstance(fields, dict)
        todo += [t for f in fields.values() if (t := _referenced(f[1])) in every]
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", type=Path, required=True, help="a k8s.io/api checkout")
    parser.add_argument("--apimachinery", type=Path, required=True)
    parser.add_argument("--source", default="", help="the commits read, for the record")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    table = generate(args.api, args.apimachinery)
    doc = {"source": args.source, "messages": table}
    args.out.write_bytes(gzip.compress(json.dumps(doc, sort_keys=True).encode(), mtime=0))
    print(f"{len(table)} messages -> {args.out}")


if __name__ == "__main__":
    main()
