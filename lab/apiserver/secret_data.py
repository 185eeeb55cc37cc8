"""A Secret as kube-apiserver takes it: ``data`` values are base64 (Go's ``[]byte`` in
JSON; a value that is not is a decoding error, 400 BadRequest, in Go's words) and the
write-only ``stringData`` is merged into ``data`` and not stored (k8s.io/kubernetes
pkg/apis/core/v1/conversion.go: each key base64-encoded, a ``stringData`` key wins over the
same ``data`` key). The keys are validated afterwards as ``data`` keys (422 Invalid,
``data[key]``), as upstream validates the converted object."""

from __future__ import annotations

import base64
from typing import Any

_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
_NEWLINES = (ord("\n"), ord("\r"))  # Go's decoder skips them anywhere
_PAD = ord("=")


def go_base64_error(text: str) -> str | None:
    """Go's ``base64.StdEncoding.Decode`` error for ``text`` ("illegal base64 data at input
    byte N", N as Go computes it, in bytes of the UTF-8 text), or None if it decodes."""
    src = text.encode()
    si = 0
    while si < len(src):
        offset, si = _quantum(src, si)
        if offset is not None:
            return f"illegal base64 data at input byte {offset}"
    return None


def _quantum(src: bytes, si: int) -> tuple[int | None, int]:
    """One 4-character quantum from ``si`` (encoding/base64's decodeQuantum): (the corrupt
    input offset or None, where the next quantum starts)."""
    j = 0
    while j < 4:
        if si == len(src):
            return (None, si) if j == 0 else (si - j, si)  # StdEncoding needs padding
        c = src[si]
        si += 1
        if c in _ALPHABET:
            j += 1
            continue
        if c in _NEWLINES:
            continue
        if c != _PAD or j < 2:  # an illegal character, or padding too early
            return si - 1, si
        if j == 2:  # "==" expected: the first one is consumed
            while si < len(src) and src[si] in _NEWLINES:
                si += 1
            if si == len(src):
                return len(src), si  # not enough padding
            if src[si] != _PAD:
                return si - 1, si
            si += 1
        while si < len(src) and src[si] in _NEWLINES:
            si += 1
        return (si, si) if si < len(src) else (None, si)  # trailing garbage after padding
    return None, si


def merge_string_data(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (a Secret) with ``stringData`` merged into ``data`` and removed. A
    ``stringData`` that is not a map of strings is left for validation to name."""
    string_data = obj.get("stringData")
    if string_data is None:
        return obj
    if not isinstance(string_data, dict) or not all(
        isinstance(v, str) for v in string_data.values()
    ):
        return obj
    out = {k: v for k, v in obj.items() if k != "stringData"}
    data = out.get("data")
    merged = dict(data) if isinstance(data, dict) else {}
    for key, value in string_data.items():
        merged[key] = base64.b64encode(value.encode()).decode()
    if merged:
        out["data"] = merged
    return out
