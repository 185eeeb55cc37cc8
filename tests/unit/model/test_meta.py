"""LabelSelector matching, FrozenMap and ObjectMeta."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.model.frozen import FrozenMap
from agent.model.meta import (
    LabelSelector,
    LabelSelectorRequirement,
    ObjectMeta,
    SelectorOperator,
)


def selector(
    labels: dict[str, str] | None = None, *exprs: tuple[str, str, tuple[str, ...]]
) -> LabelSelector:
    return LabelSelector(
        match_labels=FrozenMap(labels or {}),
        match_expressions=tuple(
            LabelSelectorRequirement(key, SelectorOperator(op), values) for key, op, values in exprs
        ),
    )


WEB = {"app": "web", "tier": "frontend"}


@pytest.mark.parametrize(
    ("sel", "labels", "expected"),
    [
        (selector(), {}, True),
        (selector(), WEB, True),
        (selector({"app": "web"}), WEB, True),
        (selector({"app": "db"}), WEB, False),
        (selector({"app": "web", "env": "prod"}), WEB, False),
        (selector(None, ("tier", "In", ("frontend", "edge"))), WEB, True),
        (selector(None, ("tier", "In", ("backend",))), WEB, False),
        (selector(None, ("env", "In", ("prod",))), WEB, False),
        (selector(None, ("tier", "NotIn", ("backend",))), WEB, True),
        (selector(None, ("tier", "NotIn", ("frontend",))), WEB, False),
        (selector(None, ("env", "NotIn", ("prod",))), WEB, True),  # absent key passes NotIn
        (selector(None, ("app", "Exists", ())), WEB, True),
        (selector(None, ("env", "Exists", ())), WEB, False),
        (selector(None, ("env", "DoesNotExist", ())), WEB, True),
        (selector(None, ("app", "DoesNotExist", ())), WEB, False),
        (selector({"app": "web"}, ("env", "DoesNotExist", ())), WEB, True),
        (selector({"app": "web"}, ("app", "In", ("db",))), WEB, False),
    ],
)
def test_label_selector_matches(sel: LabelSelector, labels: dict[str, str], expected: bool) -> None:
    assert sel.matches(labels) is expected


@given(st.dictionaries(st.sampled_from("abcde"), st.sampled_from(["x", "y", "z"])))
def test_selector_built_from_labels_matches_them(labels: dict[str, str]) -> None:
    assert LabelSelector(match_labels=FrozenMap(labels)).matches(labels)
    exists = selector(None, *((k, "Exists", ()) for k in labels))
    assert exists.matches(labels)
    missing = selector(None, ("f", "Exists", ()))
    assert not missing.matches(labels)


def test_empty_selector() -> None:
    assert LabelSelector().is_empty
    assert not selector({"a": "b"}).is_empty


def test_frozen_map_behaves_like_a_read_only_dict() -> None:
    m = FrozenMap({"b": "2", "a": "1"})
    assert m == {"a": "1", "b": "2"}
    assert m == FrozenMap([("a", "1"), ("b", "2")])
    assert hash(m) == hash(FrozenMap({"a": "1", "b": "2"}))
    assert list(m) == ["b", "a"]
    assert m.get("c") is None and "a" in m and len(m) == 2
    assert m.to_dict() == {"b": "2", "a": "1"}
    assert m != {"a": "1"}
    with pytest.raises(TypeError):
        m["c"] = "3"  # type: ignore[index]


def test_object_meta_key() -> None:
    assert ObjectMeta(name="web", namespace="shop").key == "shop/web"
    assert ObjectMeta(name="shop").key == "shop"
