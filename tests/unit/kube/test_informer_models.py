"""Services and EndpointSlices held as models, not raw dicts beside their models: an informer's
transform (agent.kube.models) replaces each listed and watched object; the agent's datapath
gets the models as they are, and an object the converter refuses stays a dict the
datapath's ModelCache logs and counts as absent."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from lightkube import Client, KubeConfig

from agent.kube.backoff import Backoff
from agent.kube.cache import revision_of
from agent.kube.informer import Informer
from agent.kube.models import to_model
from agent.kube.resources import resource_for
from agent.kube.source import connect
from agent.model.cache import ModelCache
from agent.model.convert import from_dict
from agent.model.core import EndpointSlice, Service
from agent.node_agent import Agent
from tests.unit.kube.conftest import Lab, account_kubeconfig
from tests.unit.kube.test_node_agent import wait_for


def endpoint_slice(name: str, *addresses: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "node1",
                           "targetRef": {"kind": "Pod", "namespace": "default", "name": f"p{i}"}}
                          for i, a in enumerate(addresses)],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


@pytest.fixture
def informer(lab: Lab) -> Iterator[tuple[Informer[Any], list[Any]]]:
    seen: list[Any] = []

    def transform(obj: Any) -> Any:
        seen.append(obj)
        if obj["metadata"]["name"] == "boom":
            raise RuntimeError("a transform's bug")
        return to_model(obj)

    client = Client(config=KubeConfig.from_file(lab.kubeconfig), timeout=10)
    inf: Informer[Any] = Informer(client, resource_for("EndpointSlice"), watch_timeout=2,
                                  transform=transform)
    thread = threading.Thread(target=inf.run, daemon=True)
    thread.start()
    try:
        yield inf, seen
    finally:
        inf.stop()
        thread.join(5)


def test_listed_and_watched_objects_are_kept_as_models(
    lab: Lab, informer: tuple[Informer[Any], list[Any]]
) -> None:
    lab.store.apply(endpoint_slice("listed", "10.0.1.1"))
    inf, seen = informer
    assert inf.synced.wait(10)
    lab.store.apply(endpoint_slice("watched", "10.0.1.2", "10.0.1.3"))
    wait_for(lambda: ("default", "watched") in inf.cache.objects, "the watched slice")
    lab.store.apply(endpoint_slice("listed", "10.0.1.9"))  # a MODIFIED event
    stored = lab.store.get("EndpointSlice", "default", "listed")
    assert stored is not None
    wait_for(lambda: revision_of(inf.cache.objects[("default", "listed")])
             == revision_of(stored), "the modified slice")
    time.sleep(0.5)  # bookmarks (every 0.2 s in the lab) reach the informer meanwhile
    for name, addresses in (("listed", ("10.0.1.9",)), ("watched", ("10.0.1.2", "10.0.1.3"))):
        held = inf.cache.objects[("default", name)]
        assert isinstance(held, EndpointSlice)
        assert tuple(a for e in held.endpoints for a in e.addresses) == addresses
        assert held.service_name == "web"
    # Bookmarks carry no object: never handed to the transform.
    assert all(o["metadata"].get("name") for o in seen)


def test_a_failing_transform_keeps_the_object_as_decoded(
    lab: Lab, informer: tuple[Informer[Any], list[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    inf, _ = informer
    assert inf.synced.wait(10)
    with caplog.at_level(logging.ERROR, logger="agent.kube.informer"):
        lab.store.apply(endpoint_slice("boom", "10.0.1.4"))
        lab.store.apply(endpoint_slice("after", "10.0.1.5"))
        wait_for(lambda: ("default", "after") in inf.cache.objects, "the next slice")
    assert isinstance(inf.cache.objects[("default", "boom")], dict)
    assert isinstance(inf.cache.objects[("default", "after")], EndpointSlice)
    assert "transform failed" in caplog.text


def test_an_object_the_converter_refuses_stays_a_dict_and_decodes_to_absent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = endpoint_slice("bad", "10.0.1.6")
    bad["metadata"]["resourceVersion"] = "7"
    bad["addressType"] = "Carrier-Pigeon"
    kept = to_model(bad)
    assert kept is bad
    good = to_model({**endpoint_slice("good", "10.0.1.7"),
                     "metadata": {"name": "good", "namespace": "default",
                                  "resourceVersion": "8"}})
    assert isinstance(good, EndpointSlice) and revision_of(good) == 8
    with caplog.at_level(logging.ERROR, logger="tulle.model"):
        assert ModelCache().decode_all([kept, good], {"EndpointSlice"}) == [good]
    assert "addressType" in caplog.text


def test_the_agent_holds_endpoint_slices_as_models_and_hands_them_on(lab: Lab) -> None:
    lab.store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    lab.store.apply(endpoint_slice("web-1", "10.0.2.1", "10.0.2.2"))
    lab.store.apply({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": "web", "namespace": "default"},
                     "spec": {"clusterIP": "10.96.7.8", "ports": [{"port": 80}]}})
    agent = Agent("node1", connect(account_kubeconfig(lab, "tulle-agent")),
                  backoff=Backoff(0.02, 0.2))
    agent.source.start()
    try:
        wait_for(lambda: agent.source.synced, "the first list")
        with agent.source.lock:
            held = agent.source.state.get("EndpointSlice", "default", "web-1")
            namespace = agent.source.state.get("Namespace", "", "default")
            svc = agent.source.state.get("Service", "default", "web")
        assert isinstance(held, EndpointSlice)  # no raw dict kept beside the model
        assert isinstance(svc, Service) and svc.spec.cluster_ip == "10.96.7.8"
        assert isinstance(namespace, dict)  # other kinds stay dicts (Node Ready reads them)
        stored = lab.store.get("EndpointSlice", "default", "web-1")
        assert held == from_dict(stored)  # type: ignore[arg-type]
        models = ModelCache()
        decoded = models.decode_all([held, namespace], {"EndpointSlice", "Namespace"})
        assert decoded[0] is held and decoded[1].kind == "Namespace"
    finally:
        agent.source.stop()


def test_equal_endpoint_conditions_are_one_shared_model_value() -> None:
    first = to_model({**endpoint_slice("a", "10.0.3.1", "10.0.3.2")})
    second = to_model({**endpoint_slice("b", "10.0.3.3")})
    conditions = [e.conditions for s in (first, second) for e in s.endpoints]
    assert conditions[0].ready is True
    assert conditions[0] is conditions[1] is conditions[2]
    other = endpoint_slice("c", "10.0.3.4")
    other["endpoints"][0]["conditions"] = {"ready": False}
    assert to_model(other).endpoints[0].conditions.ready is False
