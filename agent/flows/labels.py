"""Kubernetes label selectors over Cilium-style endpoint labels ("k8s:app=web").

Supported selector syntax, comma-separated requirements that must all hold:
``key=value``, ``key==value``, ``key!=value``, ``key in (a, b)``, ``key notin (a, b)``,
``key`` (exists) and ``!key`` (does not exist).

A key may carry a label source, "k8s:app" or "k8s.app", and then matches only labels from
that source; a bare key ("app") matches a label from any source, as in Hubble.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # notin / !=


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: tuple[str, ...]) -> bool:
        index = label_index(labels)
        return all(r.matches(index) for r in self.requirements)


@lru_cache(maxsize=8192)
def label_index(labels: tuple[str, ...]) -> dict[str, str]:
    """{"app": "web", "k8s:app": "web", ...} for labels ("k8s:app=web", ...)."""
    out: dict[str, str] = {}
    for label in labels:
        kv, _, value = label.partition("=")
        source, colon, key = kv.partition(":")
        if not colon:
            source, key = "", kv
        out[key] = value
        if source:
            out[f"{source}:{key}"] = value
    return out


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./:]*"
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s+\((.*)\)$")
_CMP = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*(.*)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_SOURCE_DOT = re.compile(r"^(k8s|reserved|any|container|cidr|unspec)\.")


def _key(raw: str) -> str:
    # "k8s.app" is Cilium's dotted spelling of "k8s:app"; "any:app" means any source.
    key = _SOURCE_DOT.sub(lambda m: m.group(1) + ":", raw)
    return key[4:] if key.startswith("any:") else key


def _split(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts]


def parse_selector(text: str) -> LabelSelector:
    """Parse a selector; raises ValueError with the offending part."""
    if not text.strip():
        raise ValueError("empty selector")
    reqs: list[Requirement] = []
    for part in _split(text):
        if not part:
            raise ValueError(f"empty requirement in {text!r}")
        if m := _SET.match(part):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(_key(m.group(1)), m.group(2), values))
        elif m := _CMP.match(part):
            op = "notin" if m.group(2) == "!=" else "in"
            reqs.append(Requirement(_key(m.group(1)), op, frozenset({m.group(3).strip()})))
        elif m := _EXISTS.match(part):
            reqs.append(Requirement(_key(m.group(2)), "!exists" if m.group(1) else "exists"))
        else:
            raise ValueError(f"cannot parse {part!r}")
    return LabelSelector(tuple(reqs))
