"""The lab control plane's only way to the cluster: the Kubernetes API through lightkube and a
kubeconfig. Objects travel as plain dicts (lightkube generic resources for every kind Tulle
knows, decoded once by the model cache); one informer per watched kind feeds a LiveView;
writes go through ``ApiWriter``, whose answers land in the view at once.
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import ApiError, Client, KubeConfig
from lightkube.types import PatchType

from agent.kube.backoff import Backoff
from agent.kube.informer import Informer
from agent.kube.resources import generic_resource, resource_for
from agent.model.kinds import kind_info
from lab.liveview import LiveView, Obj

log = logging.getLogger("tulle.kubeapi")
API_BACKOFF = Backoff(initial=0.1, cap=5.0)
REQUEST_TIMEOUT = 10.0


class NotFound(LookupError):
    """The object is not (or no longer) there."""


class Conflict(RuntimeError):
    """The write was based on an old version (409); the view now holds the current one."""


class StatusWriter(Protocol):
    """Writes an object's status (ApiWriter; a bare Store in tests of the pure parts)."""

    def update_status(self, kind: str, namespace: str, name: str, status: Obj) -> Any: ...


def retryable(err: BaseException) -> bool:
    """An error that says nothing about the desired state: the API server is away, busy,
    failing (5xx, 429) or the write raced another (409). Retry later; keep what runs."""
    if isinstance(err, ApiError):
        code = err.status.code or 0
        return code in (409, 429) or code >= 500
    return isinstance(err, httpx.HTTPError | OSError | Conflict)


# Kinds the agent's model does not read: Events (the controller writes them), CRDs (`lab up`
# installs Gateway API's), DaemonSets (the lab controller reads them as served),
# ServiceAccounts (its serviceaccounts controller makes each namespace's `default`).
_UNMODELLED = {
    "Event": ("v1", "events", True),
    "DaemonSet": ("apps/v1", "daemonsets", True),
    "ServiceAccount": ("v1", "serviceaccounts", True),
    "CustomResourceDefinition": ("apiextensions.k8s.io/v1", "customresourcedefinitions", False),
}


def resource(kind: str) -> Any:
    """A lightkube resource class for ``kind`` whose objects are dicts (the agent's own)."""
    if kind in _UNMODELLED:
        api_version, plural, namespaced = _UNMODELLED[kind]
        return generic_resource(api_version, plural, kind, namespaced=namespaced)
    return resource_for(kind)


def connect(kubeconfig: Path, field_manager: str, timeout: float = REQUEST_TIMEOUT) -> Client:
    return Client(
        config=KubeConfig.from_file(kubeconfig),
        timeout=httpx.Timeout(timeout),
        field_manager=field_manager,
    )


def namespaced(kind: str) -> bool:
    return _UNMODELLED[kind][2] if kind in _UNMODELLED else kind_info(kind).namespaced


def _namespace(kind: str, namespace: str) -> str | None:
    return namespace if namespaced(kind) else None


def _code(err: ApiError) -> int:
    return int(err.status.code or 0)


class ApiWriter:
    """Creates, updates, deletes and status writes; each answer lands in ``view``."""

    def __init__(self, client: Client, view: LiveView | None = None) -> None:
        self.client = client
        self.view = view

    def _seen(self, obj: Any) -> Obj:
        out = dict(obj)
        if self.view is not None and out.get("kind") in self.view.kinds:
            self.view.observe(out["kind"], out)
        return out

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            got = self.client.get(resource(kind), name, namespace=_namespace(kind, namespace))
        except ApiError as err:
            if _code(err) == 404:
                return None
            raise
        return self._seen(got)

    def create(self, obj: Obj) -> Obj:
        """POST; raises lightkube's ApiError (409 AlreadyExists among others)."""
        return self._seen(self.client.create(resource(obj["kind"])(copy.deepcopy(obj))))

    def update(self, obj: Obj) -> Obj:
        """PUT with the object's resourceVersion. On 409 the view gets the current version
        and Conflict is raised: the next round plans from it."""
        kind, meta = obj["kind"], obj["metadata"]
        try:
            return self._seen(self.client.replace(resource(kind)(copy.deepcopy(obj))))
        except ApiError as err:
            if _code(err) == 404:
                raise NotFound(f"{kind} {meta.get('namespace', '')}/{meta['name']}") from None
            if _code(err) != 409:
                raise
        self.get(kind, meta.get("namespace", ""), meta["name"])
        raise Conflict(f"{kind} {meta.get('namespace', '')}/{meta['name']} changed meanwhile")

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """DELETE; False when it was already gone."""
        held = self.view.get(kind, namespace, name) if self.view is not None else None
        try:
            self.client.delete(resource(kind), name, namespace=_namespace(kind, namespace))
        except ApiError as err:
            if _code(err) != 404:
                raise
            gone = False
        else:
            gone = True
        if held is not None and self.view is not None:
            # The deletion's own revision is newer still; what the view held is enough to
            # keep older watch events from bringing the object back.
            self.view.forget(kind, (namespace, name), int(held["metadata"]["resourceVersion"]))
        return gone

    def request_token(self, namespace: str, account: str, pod: str, pod_uid: str,
                      seconds: int) -> str:
        """A TokenRequest for ServiceAccount ``account`` bound to the Pod (as the kubelet's
        projected token); NotFound when the account (or the pod) does not exist."""
        from lightkube.models.authentication_v1 import BoundObjectReference, TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=account, namespace=namespace),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=seconds,
                                  boundObjectRef=BoundObjectReference(
                                      kind="Pod", apiVersion="v1", name=pod, uid=pod_uid)))
        try:
            made = self.client.create(request, account, namespace=namespace)
        except ApiError as err:
            if _code(err) == 404:
                raise NotFound(err.status.message or f"serviceaccounts {account!r} not found"
                               ) from None
            raise
        assert made.status is not None
        return str(made.status.token)

    def update_status(self, kind: str, namespace: str, name: str, status: Obj) -> Obj:
        """A JSON merge patch of ``status`` on the status subresource (what the kubelet and
        the Gateway controllers write); NotFound when the object is gone."""
        try:
            patched = self.client.patch(
                resource(kind).Status,
                name,
                {"status": status},
                namespace=_namespace(kind, namespace),
                patch_type=PatchType.MERGE,
            )
        except ApiError as err:
            if _code(err) == 404:
                raise NotFound(f"{kind} {namespace}/{name}") from None
            raise
        return self._seen(patched)


class Informers:
    """One informer thread per kind, all feeding one LiveView."""

    def __init__(self, client: Client, view: LiveView, *, watch_timeout: int = 300) -> None:
        self.informers = [
            Informer(
                client,
                resource(kind),
                namespace="*" if namespaced(kind) else "",
                on_delta=view.feed(kind),
                watch_timeout=watch_timeout,
                backoff=API_BACKOFF,
            )
            for kind in view.kinds
        ]
        self.threads: list[threading.Thread] = []

    def start(self) -> Informers:
        for informer in self.informers:
            name = f"informer-{getattr(informer.resource, '__name__', '')}"
            thread = threading.Thread(target=informer.run, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def synced(self) -> bool:
        """Every kind has been listed in full at least once."""
        return all(i.synced.is_set() for i in self.informers)

    def stop(self, timeout: float = 1.0) -> None:
        for informer in self.informers:
            informer.stop()
        for thread in self.threads:
            thread.join(timeout / max(1, len(self.threads)))
