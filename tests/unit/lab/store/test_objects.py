"""The pure server-field rules, without SQLite."""

from __future__ import annotations

import pytest

from lab.store import InvalidObject
from lab.store.objects import key_of, matches_labels, merge_update, normalise, prepare_create

from .conftest import svc


def stored(obj: dict) -> dict:
    """As the store holds it; a status as if written through the status path."""
    created = prepare_create(normalise(obj), uid="u-1", now="2026-11-22T10:00:00Z")
    created["metadata"]["resourceVersion"] = "7"
    if "status" in obj:
        created["status"] = obj["status"]
    return created


def test_prepare_create_ignores_client_server_fields() -> None:
    obj = svc()
    obj["metadata"].update(uid="mine", generation=9, resourceVersion="3")
    created = prepare_create(normalise(obj), uid="u-1", now="2026-11-22T10:00:00Z")
    assert created["metadata"]["uid"] == "u-1"
    assert created["metadata"]["generation"] == 1
    assert created["metadata"]["creationTimestamp"] == "2026-11-22T10:00:00Z"
    assert "resourceVersion" not in created["metadata"]


def test_merge_keeps_server_fields_and_bumps_generation_on_spec_change() -> None:
    merged, changed = merge_update(stored(svc()), normalise(svc(port=81)))
    assert changed
    meta = merged["metadata"]
    assert (meta["uid"], meta["generation"], meta["resourceVersion"]) == ("u-1", 2, "7")


@pytest.mark.parametrize(
    "edit",
    [
        lambda o: o["metadata"].update(labels={"a": "b"}),
        lambda o: o["metadata"].update(annotations={"note": "x"}),
        lambda o: o.update(apiVersion="v2"),
    ],
)
def test_merge_without_spec_change_keeps_generation(edit) -> None:
    incoming = normalise(svc())
    edit(incoming)
    merged, changed = merge_update(stored(svc()), incoming)
    assert changed
    assert merged["metadata"]["generation"] == 1


def test_merge_of_identical_object_is_unchanged_and_keeps_status() -> None:
    existing = stored(svc(status={"ready": True}))
    merged, changed = merge_update(existing, normalise(svc()))
    assert not changed
    assert merged == existing


def test_prepare_create_drops_client_status() -> None:
    created = prepare_create(normalise(svc(status={"ready": True})), uid="u", now="t")
    assert "status" not in created


def test_merge_ignores_incoming_status_and_keeps_the_stored_one() -> None:
    existing = stored(svc(status={"ready": True}))
    merged, changed = merge_update(existing, normalise(svc(status={"ready": False})))
    assert not changed
    assert merged["status"] == {"ready": True}
    merged, changed = merge_update(stored(svc()), normalise(svc(port=81, status={"x": 1})))
    assert changed
    assert "status" not in merged


def test_normalise_rejects_objects_without_key_fields() -> None:
    with pytest.raises(InvalidObject, match="no kind"):
        normalise({"metadata": {"name": "x"}})
    with pytest.raises(InvalidObject, match="Service has no metadata.name"):
        normalise({"kind": "Service", "metadata": {}})
    with pytest.raises(InvalidObject, match="JSON"):
        normalise({"kind": "Service", "metadata": {"name": "x"}, "spec": {1, 2}})


def test_key_and_labels() -> None:
    assert key_of(svc("a", "ns")) == ("Service", "ns", "a")
    assert key_of({"kind": "Namespace", "metadata": {"name": "ns"}}) == ("Namespace", "", "ns")
    obj = svc(labels={"app": "web", "tier": "front"})
    assert matches_labels(obj, {"app": "web"})
    assert matches_labels(obj, None)
    assert not matches_labels(obj, {"app": "web", "tier": "back"})
    assert not matches_labels(svc(), {"app": "web"})
