"""Seed a lab store in bulk for the first-sync bench (bench/control/firstsync.py).

Going through the API server costs minutes at 10,000 Services (admission reads every
ClusterIP per Service write). Here the first Service and EndpointSlice go through the lab
API server's own write path (``Api.handle``, as kubectl's create would), and the rest are
copies of those stored objects (name, ClusterIP, addresses and uid changed) written with
``Store.apply_many`` before the API server starts: the objects the agent lists have the
shape an API-created cluster's objects have (managedFields included).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab.store import Store

NAMESPACE = "default"
PORT, TARGET_PORT = 80, 8080
SERVICE_BASE = int(ipaddress.IPv4Address("10.96.0.0"))
ENDPOINT_BASE = int(ipaddress.IPv4Address("10.128.0.0"))
CHUNK = 2000


def service(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": f"bench-{i}", "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "http", "port": PORT, "targetPort": TARGET_PORT,
                                "protocol": "TCP"}]}}


def endpoint_slice(i: int, count: int) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": f"bench-{i}-1", "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": f"bench-{i}"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [endpoint_ip(i, e, count)],
                       "conditions": {"ready": True, "serving": True, "terminating": False},
                       "nodeName": f"node{e % 2 + 1}"} for e in range(count)],
        "ports": [{"name": "http", "port": TARGET_PORT, "protocol": "TCP"}],
    }


def endpoint_ip(i: int, e: int, count: int) -> str:
    return str(ipaddress.IPv4Address(ENDPOINT_BASE + i * count + e))


def cluster_ip(i: int) -> str:
    return str(ipaddress.IPv4Address(SERVICE_BASE + 20 + i))  # clear of .1 and .10


def _through_api(store: Store, path: str, body: dict[str, Any]) -> dict[str, Any]:
    from lab.apiserver.app import Api, Request

    token = "fsbench-seed"
    api = Api(store, frozenset({token}))
    response = api.handle(Request(
        "POST", path, {"fieldManager": "kubectl-client-side-apply"},
        {"authorization": f"Bearer {token}", "content-type": "application/json"},
        json.dumps(body).encode()))
    if response.status != 201:
        raise SystemExit(f"seeding {path}: {response.status} {response.body}")
    return dict(response.body)


def _copies(template: dict[str, Any], count: int, start: int,
            edit: Any) -> Iterator[dict[str, Any]]:
    for i in range(start, count):
        obj = copy.deepcopy(template)
        meta = obj["metadata"]
        meta.pop("resourceVersion", None)
        meta["uid"] = str(uuid.UUID(int=i + 1))
        edit(obj, i)
        yield obj


def seed(store: Store, services: int, endpoints: int, progress: Any = print) -> None:
    """``services`` Services with one slice of ``endpoints`` each, plus two Nodes."""
    for n in (1, 2):
        store.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node{n}"},
                     "status": {"addresses": [{"type": "InternalIP",
                                               "address": f"10.0.0.{n}"}]}})
    if services == 0:
        return
    first = service(0)
    first["spec"]["clusterIP"] = cluster_ip(0)
    svc = _through_api(store, f"/api/v1/namespaces/{NAMESPACE}/services", first)
    eps = _through_api(store, f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices",
                       endpoint_slice(0, endpoints))

    def edit_service(obj: dict[str, Any], i: int) -> None:
        obj["metadata"]["name"] = f"bench-{i}"
        obj["spec"]["clusterIP"] = obj["spec"]["clusterIPs"][0] = cluster_ip(i)

    def edit_slice(obj: dict[str, Any], i: int) -> None:
        obj["metadata"]["name"] = f"bench-{i}-1"
        obj["metadata"]["labels"]["kubernetes.io/service-name"] = f"bench-{i}"
        for e, endpoint in enumerate(obj["endpoints"]):
            endpoint["addresses"] = [endpoint_ip(i, e, endpoints)]

    for what, template, edit in (("Services", svc, edit_service),
                                 ("EndpointSlices", eps, edit_slice)):
        batch: list[dict[str, Any]] = []
        for obj in _copies(template, services, 1, edit):
            batch.append(obj)
            if len(batch) == CHUNK:
                store.apply_many(batch)
                batch = []
        if batch:
            store.apply_many(batch)
        progress(f"seeded {services} {what}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="bulk-seed a lab store for the first-sync bench")
    parser.add_argument("store", type=Path)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    args = parser.parse_args(argv)
    with Store(args.store, history=100) as store:
        seed(store, args.services, args.endpoints)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
