"""Reading manifests: YAML or JSON text, files, directories and stdin, into plain dicts.

Documents are returned as dicts for ``convert.from_dict``. Empty documents are skipped and
List objects (``kind: List`` or a typed list such as ``PodList``) expand into their items.
YAML is read as Kubernetes reads it: timestamps stay strings and duplicate keys are errors.

Hostile input is refused before it is built into Python objects: a document nested deeper
than :data:`MAX_DEPTH` (libyaml's composer recurses and can overflow the C stack), or whose
aliases would expand it by more than :data:`MAX_ALIAS_EXPANSION` nodes (a "billion laughs"
document: PyYAML shares aliased objects, but every later walk, conversion or JSON encoding
would expand them). Both checks are linear in the document's text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import yaml

from agent.model.jsonvalue import describe

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_SOURCE = "<stdin>"

_YAML_BASE: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"

MAX_DEPTH = 100
"""Nesting levels a document may have; Kubernetes objects, CRD schemas included, need far fewer."""
MAX_ALIAS_EXPANSION = 1_000_000
"""Nodes that aliases may add to one document once expanded (more than any 1.5 MiB object)."""


class LoadError(ValueError):
    """Manifest text or a file that cannot be read; ``str()`` names the source and line."""

    def __init__(self, source: str, message: str, line: int | None = None) -> None:
        self.source = source
        self.message = message
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.message}"


class _ManifestLoader(_YAML_BASE):  # type: ignore[valid-type,misc]
    """A safe YAML loader that refuses duplicate keys and keeps timestamps as strings."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool | None):
                # A list or mapping as a key (``? [a]``, ``? *anchor``): no JSON object has
                # one, and it is not hashable; refused here rather than as a TypeError.
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a scalar", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {json.dumps(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)  # type: ignore[no-any-return]


_ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in _YAML_BASE.yaml_implicit_resolvers.items()
}


def load_documents(text: str, source: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML, or JSON (one value or a stream), into object dicts.

    Raises LoadError naming ``source`` and the line of the problem.
    """
    documents: Iterable[tuple[int, Any]] | None = None
    if _looks_like_json(text, source):
        documents = _json_documents(text, source)
    if documents is None:
        documents = _yaml_documents(text, source)
    result: list[dict[str, Any]] = []
    for number, (line, document) in enumerate(documents, start=1):
        result.extend(_expand(document, source, number, line))
    return result


def load_sources(paths: Sequence[str], stdin: TextIO) -> list[tuple[str, dict[str, Any]]]:
    """Load every object from ``paths``: files, directories (recursively, the *.yaml, *.yml
    and *.json files in sorted order, skipping hidden names) and "-" for ``stdin``.

    Returns (source, object) pairs in order; the source is the file path or "<stdin>".
    """
    loaded: list[tuple[str, dict[str, Any]]] = []
    for path in paths:
        if path == "-":
            loaded.extend((STDIN_SOURCE, doc) for doc in load_documents(stdin.read(), STDIN_SOURCE))
            continue
        for file in _manifest_files(Path(path)):
            source = str(file)
            loaded.extend((source, doc) for doc in load_documents(_read_text(file), source))
    return loaded


def _manifest_files(path: Path) -> list[Path]:
    if path.is_dir():
        found = [
            file
            for file in path.rglob("*")
            if file.suffix in MANIFEST_SUFFIXES
            and file.is_file()
            and not any(part.startswith(".") for part in file.relative_to(path).parts)
        ]
        return sorted(found, key=lambda file: file.relative_to(path).parts)
    if path.exists():
        return [path]
    raise LoadError(str(path), "no such file or directory")


def _read_text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise LoadError(str(file), "not UTF-8 text") from None
    except OSError as exc:
        raise LoadError(str(file), f"cannot read: {exc.strerror or exc}") from None


def _looks_like_json(text: str, source: str) -> bool:
    return source.endswith(".json") or text.lstrip().startswith(("{", "["))


def _json_documents(text: str, source: str) -> list[tuple[int, Any]] | None:
    """JSON values in ``text`` with their first line. None when the text is not JSON and
    could still be YAML (flow-style YAML also starts with "{")."""
    decoder = json.JSONDecoder()
    documents: list[tuple[int, Any]] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents
        line = text.count("\n", 0, position) + 1
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            if source.endswith(".json"):
                raise LoadError(source, f"invalid JSON: {exc.msg}", exc.lineno) from None
            return None
        except RecursionError:
            raise LoadError(source, _too_deep(len(documents) + 1), line) from None
        except ValueError as exc:  # an integer past Python's 4300 digits
            raise LoadError(source, f"document {len(documents) + 1}: {exc}", line) from None
        if _depth_over(value, MAX_DEPTH):
            raise LoadError(source, _too_deep(len(documents) + 1), line)
        documents.append((line, value))
        position = end


def _yaml_documents(text: str, source: str) -> Iterator[tuple[int, Any]]:
    loader = _ManifestLoader(text)
    try:
        _check_yaml_depth(text, source)
        number = 0
        while loader.check_node():
            node = loader.get_node()
            number += 1
            line = node.start_mark.line + 1
            added = _alias_expansion(node)
            if added is None:
                raise LoadError(source, f"document {number}: an alias refers to itself", line)
            if added > MAX_ALIAS_EXPANSION:
                raise LoadError(
                    source,
                    f"document {number}: YAML aliases would expand it by {added} nodes, over "
                    f'the limit of {MAX_ALIAS_EXPANSION} (a "billion laughs" document?)',
                    line,
                )
            try:
                document = loader.construct_document(node)
            except (TypeError, ValueError) as exc:
                # A constructor refusing a value (an integer past Python's 4300 digits).
                raise LoadError(source, f"document {number}: {exc}", line) from None
            yield line, document
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        raise LoadError(
            source, f"invalid YAML: {problem}", mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise LoadError(source, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _too_deep(number: int) -> str:
    return f"document {number}: nested more than {MAX_DEPTH} levels deep"


def _check_yaml_depth(text: str, source: str) -> None:
    """Refuse deep nesting from the event stream, which libyaml produces without recursing."""
    depth = 0
    number = 0
    for event in yaml.parse(text, Loader=_YAML_BASE):
        if isinstance(event, yaml.DocumentStartEvent):
            number += 1
        elif isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else None
                raise LoadError(source, _too_deep(number), line)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _alias_expansion(root: yaml.Node) -> int | None:
    """How many nodes aliases add when the graph under ``root`` is expanded into a tree, or
    None if an alias refers to a node that contains it. Each distinct node is visited once."""
    sizes: dict[int, int] = {}  # id(node) -> nodes in its expanded tree
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            on_path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            continue
        if id(node) in sizes:
            continue
        if id(node) in on_path:
            return None
        on_path.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    return sizes[id(root)] - len(sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _depth_over(value: Any, limit: int) -> bool:
    """Whether a decoded JSON value nests deeper than ``limit`` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def _expand(document: Any, source: str, number: int, line: int) -> list[dict[str, Any]]:
    """One document as objects: nothing if empty, the items of a List, else itself."""
    if document is None:
        return []
    if not isinstance(document, dict):
        raise LoadError(
            source, f"document {number}: expected an object, got {describe(document)}", line
        )
    kind = document.get("kind")
    if not (isinstance(kind, str) and kind.endswith("List") and "items" in document):
        return [document]
    items = document["items"] or []
    if not isinstance(items, list):
        raise LoadError(source, f"document {number}: items: expected array", line)
    item_kind = kind.removesuffix("List")
    objects = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise LoadError(
                source,
                f"document {number}: items[{i}]: expected an object, got {describe(item)}",
                line,
            )
        if item_kind and "kind" not in item:
            # Typed lists from the API (PodList) leave out each item's kind and apiVersion.
            item = {"apiVersion": document.get("apiVersion"), "kind": item_kind, **item}
        objects.append(item)
    return objects
