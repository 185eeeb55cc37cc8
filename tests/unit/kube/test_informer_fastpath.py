"""An informer whose transform is the agent's ``to_model`` decodes list pages of Services and
EndpointSlices straight to models (agent.model.convert_fast), and reads only what that
leaves out through the general path: an invalid object stays a dict whose error names its
field, and the page's other objects are models all the same."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from agent.kube import informer as informer_module
from agent.kube.informer import Informer
from agent.kube.models import to_model
from agent.kube.resources import resource_for
from agent.model.cache import ModelCache
from agent.model.convert import from_dict
from agent.model.core import EndpointSlice, Service
from tests.unit.kube.conftest import Lab
from tests.unit.kube.test_informer_models import endpoint_slice

MANAGED = [{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {}}}]


def listed(obj: dict[str, Any], revision: int) -> dict[str, Any]:
    """``obj`` as a list item: no kind or apiVersion, server-set metadata."""
    item = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    item["metadata"] = {**obj["metadata"], "resourceVersion": str(revision),
                        "managedFields": MANAGED}
    return item


def page(*items: dict[str, Any]) -> bytes:
    return json.dumps({"kind": "List", "metadata": {"resourceVersion": "90"},
                       "items": list(items)}).encode()


def service(name: str, port: Any = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": port}]}}


def kept(kind: str, raw: bytes) -> tuple[Any, Any, list[Any]]:
    """A list page's revision, continue token, and what an informer's cache keeps of it."""
    inf: Informer[Any] = Informer(None, resource_for(kind), transform=to_model)  # type: ignore[arg-type]
    revision, more, items = inf._decode_page(raw)  # noqa: SLF001
    return revision, more, inf._placeable(items)  # noqa: SLF001


def test_a_well_formed_page_never_takes_the_plain_json_decode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def plain(raw: bytes) -> Any:
        raise AssertionError("the general path decoded a page the fast path covers")

    monkeypatch.setattr(informer_module, "_decode_json", plain)
    raw = page(listed(service("a"), 3), listed(service("b"), 4))
    revision, more, items = kept("Service", raw)
    assert (revision, more) == ("90", None)
    assert all(isinstance(item, Service) for item in items)
    assert items[1] == from_dict({**listed(service("b"), 4), "kind": "Service",
                                  "apiVersion": "v1"})


def test_an_invalid_object_stays_a_dict_and_its_neighbours_are_models(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = endpoint_slice("bad", "127.0.0.1")  # loopback: not an endpoint address
    raw = page(listed(endpoint_slice("a", "10.0.1.1"), 5), listed(bad, 6),
               listed(endpoint_slice("c", "10.0.1.3"), 7))
    _, _, items = kept("EndpointSlice", raw)
    assert isinstance(items[0], EndpointSlice) and isinstance(items[2], EndpointSlice)
    held = items[1]
    assert isinstance(held, dict)  # as the general path leaves it: stamped, compacted
    assert held["kind"] == "EndpointSlice" and "managedFields" not in held["metadata"]
    with caplog.at_level(logging.ERROR, logger="tulle.model"):
        assert ModelCache().decode_all(items, {"EndpointSlice"}) == [items[0], items[2]]
    assert "EndpointSlice default/bad: endpoints[0].addresses[0]" in caplog.text


def test_a_wrongly_typed_field_sends_the_page_the_general_way_and_loses_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raw = page(listed(service("a"), 3), listed(service("b", "eighty"), 4),
               listed(service("c", 80.0), 5))  # 80.0: the general path's integer
    _, _, items = kept("Service", raw)
    assert isinstance(items[0], Service) and isinstance(items[2], Service)
    assert items[2].spec.ports[0].port == 80
    with caplog.at_level(logging.ERROR, logger="tulle.model"):
        assert len(ModelCache().decode_all(items, {"Service"})) == 2
    assert 'Service default/b: spec.ports[0].port: expected integer, got string "eighty"' \
        in caplog.text


def test_a_paged_list_from_the_api_server_holds_models_equal_to_the_converters(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightkube import Client, KubeConfig

    monkeypatch.setattr(informer_module, "LIST_PAGE", 2)  # three pages, two continue tokens
    for i in range(5):
        lab.store.apply(endpoint_slice(f"s{i}", f"10.0.4.{i + 1}", f"10.0.5.{i + 1}"))
    lab.store.apply(endpoint_slice("loop", "127.0.0.9"))
    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    inf: Informer[Any] = Informer(client, resource_for("EndpointSlice"), transform=to_model)
    assert inf._list()  # noqa: SLF001 - one full list, as run() starts
    held = inf.cache.objects
    assert sorted(name for _, name in held) == ["loop", "s0", "s1", "s2", "s3", "s4"]
    for (namespace, name), obj in held.items():
        stored = lab.store.get("EndpointSlice", namespace, name)
        assert stored is not None
        if name == "loop":
            assert isinstance(obj, dict)
        else:
            assert isinstance(obj, EndpointSlice) and obj == from_dict(stored)


def test_a_page_that_fails_fails_the_list_and_keeps_nothing_of_it(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx2 as httpx
    from lightkube import Client, KubeConfig

    monkeypatch.setattr(informer_module, "LIST_PAGE", 2)
    for i in range(5):
        lab.store.apply(endpoint_slice(f"s{i}", f"10.0.6.{i + 1}"))
    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    generic = client._client  # noqa: SLF001 - what the informer sends through
    send, sent = generic.send, []

    def failing_second(request: Any, **kwargs: Any) -> Any:
        sent.append(request)
        if len(sent) == 2:  # the second page
            raise httpx.ConnectError("the API server went away")
        return send(request, **kwargs)

    generic.send = failing_second  # type: ignore[method-assign,assignment]
    inf: Informer[Any] = Informer(client, resource_for("EndpointSlice"), transform=to_model)
    with pytest.raises(httpx.ConnectError):
        inf._list()  # noqa: SLF001
    assert inf.cache.objects == {} and not inf.synced.is_set()
    assert inf._list()  # noqa: SLF001 - the next list starts over and completes
    assert sorted(name for _, name in inf.cache.objects) == [f"s{i}" for i in range(5)]
