"""The control plane's API calls, through lightkube (agent.kube's client and generic,
dict-backed resources): Secrets and ConfigMaps for `controlplane.roots`, TokenReviews for
`controlplane.auth`, and a Pod informer for node authorization."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import ApiError, Client

from agent.kube.resources import generic_resource
from agent.kube.source import ClusterSource
from controlplane.auth import ReviewFailed
from controlplane.roots import Conflict, Obj
from identity.authz import PodRecord

log = logging.getLogger(__name__)
KINDS = {
    "Secret": ("v1", "secrets", True),
    "ConfigMap": ("v1", "configmaps", True),
    "TokenReview": ("authentication.k8s.io/v1", "tokenreviews", False),
}


def _resource(kind: str) -> Any:
    api_version, plural, namespaced = KINDS[kind]
    return generic_resource(api_version, plural, kind, namespaced=namespaced)


def _plain(obj: Any) -> Obj:
    return dict(copy.deepcopy(dict(obj)))


class KubeObjects:
    """`controlplane.roots.Objects` over the API (409 -> Conflict, 404 on get -> None)."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return _plain(self.client.get(_resource(kind), name, namespace=namespace))
        except ApiError as err:
            if err.status.code == 404:
                return None
            raise

    def _write(self, obj: Obj, replace: bool) -> Obj:
        res = _resource(obj["kind"])(copy.deepcopy(obj))
        try:
            out = self.client.replace(res) if replace else self.client.create(res)
        except ApiError as err:
            if err.status.code == 409:
                raise Conflict(err.status.message or "conflict") from None
            raise
        return _plain(out)

    def create(self, obj: Obj) -> Obj:
        return self._write(obj, replace=False)

    def update(self, obj: Obj) -> Obj:
        return self._write(obj, replace=True)


class TokenReviewer:
    """`controlplane.auth.Review`: one TokenReview per call (`audiences` empty: the API
    server's own)."""

    def __init__(self, client: Client, audiences: tuple[str, ...] = ()) -> None:
        self.client = client
        self.audiences = audiences

    def __call__(self, token: str) -> Mapping[str, Any]:
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = list(self.audiences)
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}
        try:
            answer = self.client.create(_resource("TokenReview")(body))
        except ApiError as err:
            raise ReviewFailed(f"TokenReview: {err.status.code} {err.status.message}") from None
        except (httpx.HTTPError, OSError) as err:
            raise ReviewFailed(f"TokenReview: {err or type(err).__name__}") from None
        status = dict(answer).get("status")
        if not isinstance(status, dict):
            raise ReviewFailed("TokenReview: the answer has no status")
        return status


def pod_record(pod: Mapping[str, Any]) -> PodRecord:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    return PodRecord(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        node_name=spec.get("nodeName") or None,
        service_account=spec.get("serviceAccountName") or None,
        phase=str((pod.get("status") or {}).get("phase") or "Pending"),
        deleting=bool(meta.get("deletionTimestamp")),
    )


class Pods:
    """The cluster's Pods from an informer (list, watch), for `pods_on_node`."""

    def __init__(self, client: Client) -> None:
        self.source = ClusterSource(client, ["Pod"])

    def start(self) -> Pods:
        self.source.start()
        return self

    def stop(self) -> None:
        self.source.stop()

    @property
    def synced(self) -> bool:
        return self.source.synced

    def on_node(self, node: str) -> list[PodRecord]:
        with self.source.lock:
            pods = [
                p
                for p in self.source.state.of_kind("Pod")
                if (p.get("spec") or {}).get("nodeName") == node
            ]
        return [pod_record(p) for p in pods]
