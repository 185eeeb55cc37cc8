"""Decoding a built-in kind's JSON as the API server's Go decoder would: a value of the wrong
type fails the request (``json: cannot unmarshal string into Go struct field
DeploymentSpec.spec.replicas of type int32``), and fields the type does not have are found
at any depth (``spec.template.spec.containers[0].imagee``) for ``fieldValidation``.

Pure: walks the body against ``builtin_types`` and returns what it found; patch directives
(``$patch``, ``$setElementOrder/...``) are not fields and are skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lab.apiserver.builtin_types import META, SCALARS, messages
from lab.apiserver.secret_data import go_base64_error

_ANY = frozenset({"k8s.io.apimachinery.pkg.runtime.RawExtension"})


def _number_or_string(value: Any) -> bool:
    return isinstance(value, int | float | str) and not isinstance(value, bool)


# Types with their own JSON form: what each accepts.
_LEAVES: dict[str, Callable[[Any], bool]] = {
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": lambda v: (
        isinstance(v, int | str) and not isinstance(v, bool)
    ),
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _number_or_string,
    f"{META}.Time": lambda v: isinstance(v, str),
    f"{META}.MicroTime": lambda v: isinstance(v, str),
    f"{META}.Duration": lambda v: isinstance(v, str),
    f"{META}.FieldsV1": lambda v: isinstance(v, dict),
}
_JSON_TYPES = {bool: "bool", str: "string", int: "number", float: "number", dict: "object"}


@dataclass(slots=True)
class Decoded:
    pruned: Any  # the body without its unknown fields
    unknown: list[str] = field(default_factory=list)  # their paths
    type_error: str | None = None  # the first value of the wrong type, in Go's words


def _json_type(value: Any) -> str:
    return "array" if isinstance(value, list) else _JSON_TYPES.get(type(value), "value")


def _go_type(type_: str, repeated: bool = False) -> str:
    if repeated:
        return "[]" + _go_type(type_)
    if type_.startswith("map<"):
        return "map[string]" + _go_type(type_[4:-1].split(",")[1])
    if type_ in SCALARS:
        return {"bool": "bool", "bytes": "[]uint8", "double": "float64", "float": "float32"}.get(
            type_, type_
        )
    package, _, name = type_.rpartition(".")
    return f"{package.rsplit('.', 1)[-1]}.{name}"


def _scalar_ok(type_: str, value: Any) -> bool:
    if type_ in ("int32", "int64"):
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "bool":
        return isinstance(value, bool)
    if type_ in ("double", "float"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if type_ == "bytes":  # a string that is not base64: Decoded.type_error says so
        return isinstance(value, str)
    return isinstance(value, str)


class _Walk:
    """One body's walk. Go names a wrong value by the innermost struct and the JSON path of
    names from the root (no list indices): ``EnvVar.spec.template.spec.containers.env.value``.
    Unknown fields are named with indices: ``spec.template.spec.containers[0].imagee``."""

    def __init__(self) -> None:
        self.out = Decoded(None)

    def wrong(self, value: Any, owner: str, go_path: str, go_type: str) -> None:
        if self.out.type_error is None:
            self.out.type_error = (
                f"json: cannot unmarshal {_json_type(value)} into Go struct field "
                f"{owner}.{go_path} of type {go_type}"
            )

    def one(self, type_: str, value: Any, path: str, owner: str, go_path: str) -> Any:
        """A value of ``type_`` at ``path``, a field of struct ``owner``."""
        if value is None:
            return None  # JSON null leaves Go's zero value
        if type_.startswith("map<"):
            if not isinstance(value, dict):
                self.wrong(value, owner, go_path, _go_type(type_))
                return value
            inner = type_[4:-1].split(",")[1]
            return {k: self.one(inner, v, f"{path}[{k}]", owner, go_path) for k, v in value.items()}
        if type_ in SCALARS:
            if not _scalar_ok(type_, value):
                self.wrong(value, owner, go_path, _go_type(type_))
            elif type_ == "bytes" and self.out.type_error is None:
                # Go's []byte from a JSON string is base64.StdEncoding's, and its error
                self.out.type_error = go_base64_error(value)
            return value
        return self.message(type_, value, path, owner, go_path)

    def message(self, name: str, value: Any, path: str, owner: str, go_path: str) -> Any:
        if name in _ANY:
            return value
        if name in _LEAVES:
            if not _LEAVES[name](value):
                self.wrong(value, owner, go_path, _go_type(name))
            return value
        if not isinstance(value, dict):
            self.wrong(value, owner, go_path, _go_type(name))
            return value
        fields = messages()[name].by_name
        struct = name.rsplit(".", 1)[-1]
        out: dict[str, Any] = {}
        for key, item in value.items():
            here = f"{path}.{key}" if path else key
            go_here = f"{go_path}.{key}" if go_path else key
            f = fields.get(key)
            if key.startswith("$"):  # a strategic merge patch directive
                out[key] = item
            elif f is None:
                self.out.unknown.append(here)
            elif f.repeated and item is not None:
                if not isinstance(item, list):
                    self.wrong(item, struct, go_here, _go_type(f.type, True))
                    out[key] = item
                else:
                    out[key] = [
                        self.one(f.type, v, f"{here}[{i}]", struct, go_here)
                        for i, v in enumerate(item)
                    ]
            else:
                out[key] = self.one(f.type, item, here, struct, go_here)
        return out


def decode(message: str, body: dict[str, Any]) -> Decoded:
    """Walk ``body`` (a whole object or a patch of one) of the kind whose message this is."""
    walk = _Walk()
    top = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
    pruned = walk.message(message, top, "", "", "")
    walk.out.pruned = {**{k: body[k] for k in ("apiVersion", "kind") if k in body}, **pruned}
    return walk.out
