"""Paged reads of the store's ``objects`` table, one snapshot per page.

``Store.list`` returns a whole kind; a page of 500 out of 10,000 objects would then cost as
much as the whole list, making ``kubectl get`` (500 per page) quadratic. Here a page starts
at its key on the primary key (kind, namespace, name) and stops reading after ``limit + 1``
matching objects. Each thread keeps its own read connection.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.store import Store, eventlog, schema

_local = threading.local()


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    revision: int
    more: bool
    remaining: int | None  # objects after this page (only counted without a selector)
    bodies: list[str] | None = None  # raw=True: the stored JSON texts, not decoded
    last: tuple[str, str] | None = None  # (namespace, name) of the page's last object


def _conn(path: Path) -> Any:
    conns: dict[Path, Any] = getattr(_local, "conns", None) or {}
    _local.conns = conns
    if path not in conns:
        conns[path] = schema.connect(path, 30.0)
    return conns[path]


def page(
    store: Store,
    kind: str,
    namespace: str | None,
    after: tuple[str, str] | None,
    match: Callable[[Mapping[str, Any]], bool] | None,
    limit: int | None,
    *,
    raw: bool = False,
) -> Page:
    """One page of ``kind``. ``raw`` (only without ``match``): the stored JSON texts in
    ``bodies``, for a list answered without decoding and re-encoding every object."""
    if raw and match is not None:
        raise ValueError("a raw page cannot be filtered")
    base, params = "kind = ?", [kind]
    if namespace is not None:
        base, params = base + " AND namespace = ?", [*params, namespace]
    after_key = " AND (namespace, name) > (?, ?)"
    where = base + (after_key if after else "")
    sql = f"SELECT namespace, name, body FROM objects WHERE {where} ORDER BY namespace, name"
    conn = _conn(store.path)
    conn.execute("BEGIN")
    try:
        revision, _ = eventlog.meta(conn)
        items: list[dict[str, Any]] = []
        bodies: list[str] = []
        last: tuple[str, str] | None = None
        more = False
        count = 0
        for ns, name, body in conn.execute(sql, [*params, *(after or ())]):
            if raw:
                if limit is not None and count == limit:
                    more = True
                    break
                bodies.append(body)
            else:
                obj = json.loads(body)
                if match is not None and not match(obj):
                    continue
                if limit is not None and count == limit:
                    more = True
                    break
                items.append(obj)
            count += 1
            last = (ns, name)
        remaining = None
        if more and match is None and last is not None:
            (remaining,) = conn.execute(
                f"SELECT COUNT(*) FROM objects WHERE {base}{after_key}", [*params, *last]
            ).fetchone()
    finally:
        conn.execute("COMMIT")
    return Page(items, revision, more, remaining, bodies if raw else None, last)
