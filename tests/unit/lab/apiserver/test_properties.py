"""Properties of the pure parts: patches, selectors and watch resume (Hypothesis)."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.apiserver.patch import json_patch, merge_patch, strategic_merge_patch
from lab.apiserver.resources import lookup
from lab.apiserver.routing import Target
from lab.apiserver.selectors import parse_label_selector
from lab.apiserver.watch import WatchSettings, watch
from lab.store import Store

keys = st.sampled_from(["a", "b", "c", "d"])
scalars = st.one_of(st.integers(-5, 5), st.text("xyz", max_size=3), st.booleans())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=10,
)
docs = st.dictionaries(keys, values, max_size=4)
patches = st.dictionaries(keys, st.one_of(st.none(), values), max_size=4)


@given(docs, patches)
def test_strategic_merge_equals_merge_patch_where_no_list_merges(doc: dict, patch: dict) -> None:
    # A ConfigMap's fields have no patch strategy: both formats must agree.
    assert strategic_merge_patch("ConfigMap", doc, patch) == merge_patch(doc, patch)


@given(docs, patches)
def test_merge_patch_is_idempotent(doc: dict, patch: dict) -> None:
    once = merge_patch(doc, patch)
    assert merge_patch(once, patch) == once


@given(docs, keys, values)
def test_json_patch_add_then_remove_restores(doc: dict, key: str, value: Any) -> None:
    fresh = f"/{key}-new"
    assert (
        json_patch(
            doc, [{"op": "add", "path": fresh, "value": value}, {"op": "remove", "path": fresh}]
        )
        == doc
    )


@given(
    st.dictionaries(keys, st.sampled_from(["x", "y"]), max_size=3),
    keys,
    st.sampled_from(["x", "y"]),
)
def test_label_selector_operators_agree(labels: dict, key: str, value: str) -> None:
    obj = {"metadata": {"labels": labels}}
    equal = parse_label_selector(f"{key}={value}")(obj)
    assert equal == (labels.get(key) == value)
    assert parse_label_selector(f"{key} in ({value})")(obj) == equal
    assert parse_label_selector(f"{key}!={value}")(obj) == (not equal)
    assert parse_label_selector(f"{key} notin ({value})")(obj) == (not equal)
    assert parse_label_selector(key)(obj) == (key in labels)
    assert parse_label_selector(f"!{key}")(obj) == (key not in labels)


operations = st.lists(
    st.tuples(
        st.sampled_from(["put", "delete"]), st.sampled_from(["a", "b", "c"]), st.integers(0, 9)
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=30, deadline=None)
@given(operations, st.data())
def test_watch_from_any_revision_replays_exactly_the_later_changes(
    ops: list, data: st.DataObject
) -> None:
    target = Target(lookup("", "v1", "configmaps"), "v1", "default")  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        expected: list[tuple[int, str, str, str | None]] = []  # revision, type, name, value
        for op, name, value in ops:
            if op == "put":
                existing = store.get("ConfigMap", "default", name)
                obj = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"},
                    "data": {"v": str(value)},
                }
                if existing is None:
                    stored = store.create(obj)
                    expected.append(
                        (int(stored["metadata"]["resourceVersion"]), "ADDED", name, str(value))
                    )
                elif existing.get("data") != obj["data"]:
                    stored = store.update(obj)
                    expected.append(
                        (int(stored["metadata"]["resourceVersion"]), "MODIFIED", name, str(value))
                    )
            else:
                gone = store.delete("ConfigMap", "default", name)
                if gone is not None:
                    expected.append(
                        (
                            int(gone["metadata"]["resourceVersion"]),
                            "DELETED",
                            name,
                            gone["data"]["v"],
                        )
                    )
        if store.revision() == 0:
            return
        start = data.draw(st.integers(1, store.revision()))
        query = {"resourceVersion": str(start), "timeoutSeconds": "0.05"}
        events = [
            e
            for e in watch(
                store, target, query, WatchSettings(poll_interval=0.01), threading.Event()
            )
            if e is not None
        ]
        got = [
            (
                int(e["object"]["metadata"]["resourceVersion"]),
                e["type"],
                e["object"]["metadata"]["name"],
                e["object"]["data"]["v"],
            )
            for e in events
        ]
        assert got == [e for e in expected if e[0] > start]


def test_watch_replays_a_history_longer_than_one_read() -> None:
    # Events are read 500 at a time; a resumed watch must go on past the first page.
    target = Target(lookup("", "v1", "configmaps"), "v1", "default")  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.db") as store:
        store.apply_many(
            [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"c{i}", "namespace": "default"},
                }
                for i in range(1200)
            ]
        )
        query = {"resourceVersion": "7", "timeoutSeconds": "0.5"}
        events = [
            e
            for e in watch(
                store, target, query, WatchSettings(poll_interval=0.01), threading.Event()
            )
            if e is not None
        ]
        assert [int(e["object"]["metadata"]["resourceVersion"]) for e in events] == list(
            range(8, 1201)
        )
