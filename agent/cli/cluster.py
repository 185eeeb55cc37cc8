"""One connection to a cluster for one CLI command: lightkube's client from the chosen
kubeconfig (agent.cli.context), what the server serves (agent.cli.discovery), and errors
that read as kubectl's do, naming the server when it cannot be reached.

Objects stay Kubernetes-shaped dicts (lightkube's generic resources), so every kind the
server serves works the same way, custom resources included. Requests that lightkube's
typed methods cannot shape (``fieldValidation``, a label selector as typed, ``Table``
responses, discovery documents) go through its generic client (``Client._client``,
lightkube 1.x), with the same configuration, TLS and credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import ApiError, Client, ConfigError
from lightkube.core.generic_client import ALL_NS
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    create_api_info,
)

from agent.cli import context
from agent.cli.discovery import (
    ApiResource,
    first_named,
    group_might_hold,
    parse_resource_list,
    preferred_versions,
    unserved,
)

JSON = "application/json"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "tulle"


class ClusterError(click.ClickException):
    """A request failed; the message reads as kubectl's (``Error from server (NotFound): ...``)."""

    def __init__(
        self,
        message: str,
        reason: str = "",
        code: int = 0,
        causes: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = code
        self.causes = causes  # (field, message) pairs of a 422 Invalid

    def show(self, file: Any = None) -> None:
        # kubectl's wording for the server's refusals; click's for the rest
        server = self.message.startswith("Error from server")
        click.echo(self.message if server else f"Error: {self.message}", err=True)

    @property
    def detail(self) -> str:
        """The causes naming their fields, else the server's message."""
        if self.causes and self.reason == "Invalid":
            return "; ".join(f"{f}: {m}" if f else m for f, m in self.causes)
        return self.message.removeprefix(f"Error from server ({self.reason}): ")


def explain(err: Exception, server: str, why: str = "") -> ClusterError:
    """Turn a client exception into a message a user can act on."""
    where = f"{server} ({why})" if why else server
    if isinstance(err, ApiError):
        status = err.status
        reason = status.reason or str(status.code)
        causes = tuple(
            (c.field or "", c.message or "")
            for c in (status.details.causes or [] if status.details else [])
        )
        return ClusterError(
            f"Error from server ({reason}): {status.message}",
            reason,
            int(status.code or 0),
            causes,
        )
    if isinstance(err, httpx.HTTPStatusError):
        resp = err.response
        body = resp.text.strip()[:200]
        return ClusterError(
            f"Error from server ({resp.status_code} {resp.reason_phrase}): {body or 'no body'}",
            resp.reason_phrase,
            resp.status_code,
        )
    if isinstance(err, httpx.TimeoutException):
        return ClusterError(f"the Kubernetes API at {where} did not answer in time ({err})")
    if isinstance(err, (httpx.TransportError, OSError)):
        return ClusterError(
            f"cannot reach the Kubernetes API at {where}: {err or type(err).__name__}. "
            "Is the cluster up (for a lab: `tulle lab status`)?"
        )
    return ClusterError(f"{type(err).__name__}: {err}")


@functools.cache
def _generic(res: ApiResource) -> type[Any]:
    """A lightkube generic resource class for ``res``, kept out of lightkube's global
    registry (where a second class for the same kind would be refused)."""
    base = GenericNamespacedResource if res.namespaced else GenericGlobalResource
    info = create_api_info(res.group, res.version, res.kind, res.plural)
    return type(res.kind, (base,), {"_api_info": info})


class Cluster:
    def __init__(self, client: Client, why: str) -> None:
        self.client = client
        self.why = why
        self.server = str(client.config.cluster.server)
        self.namespace = str(client.namespace)  # the context's namespace, "default" if none
        self._generic_client = client._client  # noqa: SLF001 - see the module docstring
        self._lists: dict[str, list[ApiResource]] = {}
        self._group_versions: list[str] | None = None

    def close(self) -> None:
        self.client.close()

    @contextmanager
    def talking(self) -> Iterator[None]:
        """Translate client exceptions raised inside into ClusterError."""
        try:
            yield
        except (ApiError, httpx.HTTPError, OSError) as err:
            raise explain(err, self.server, self.why) from err

    # discovery

    def get_json(self, path: str, params: dict[str, str] | None = None, accept: str = JSON) -> Any:
        http = self._generic_client._client  # noqa: SLF001 - the configured httpx client
        with self.talking():
            resp = http.get(path, params=params or {}, headers={"Accept": accept})
            self._generic_client.raise_for_status(resp)
            return resp.json()

    def forget_discovery(self) -> None:
        """After a CRD is established: ask the server again."""
        self._lists.clear()
        self._group_versions = None

    def resources_of(self, group_version: str) -> list[ApiResource]:
        if group_version not in self._lists:
            path = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
            try:
                self._lists[group_version] = parse_resource_list(self.get_json(path))
            except ClusterError as err:
                if err.code != 404:
                    raise
                self._lists[group_version] = []
        return self._lists[group_version]

    def group_versions(self) -> list[str]:
        if self._group_versions is None:
            self._group_versions = preferred_versions(self.get_json("/apis"))
        return self._group_versions

    def resource(self, text: str) -> ApiResource:
        """What ``text`` names ("svc", "httproutes.gateway.networking.k8s.io"), as kubectl
        resolves it; a ClickException when the server serves nothing by that name."""
        found = first_named(self.resources_of("v1"), text)
        for group_version in self.group_versions():
            if found is not None:
                break
            if group_might_hold(group_version.partition("/")[0], text):
                found = first_named(self.resources_of(group_version), text)
        if found is None:
            raise click.ClickException(unserved(text, self.server))
        return found

    def resource_for(self, api_version: str, kind: str) -> ApiResource | None:
        """The resource serving objects of ``apiVersion``/``kind`` (as in a manifest)."""
        return next((r for r in self.resources_of(api_version) if r.kind == kind), None)

    # objects (Kubernetes-shaped dicts)

    def get(self, res: ApiResource, name: str, namespace: str) -> dict[str, Any]:
        with self.talking():
            obj = self._generic_client.request(
                "get", _generic(res), name=name, namespace=self._ns(res, namespace)
            )
        return dict(obj)

    def list(
        self,
        res: ApiResource,
        namespace: str | None,
        selector: str | None = None,
        fields: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every page of a list; ``namespace`` None lists across namespaces."""
        params = {"labelSelector": selector, "fieldSelector": fields}
        ns = (ALL_NS if namespace is None else namespace) if res.namespaced else None
        with self.talking():
            request = self._generic_client.prepare_request(
                "list", _generic(res), namespace=ns, params=params
            )
            return [dict(o) for o in self._generic_client.list(request)]

    def table(
        self,
        res: ApiResource,
        namespace: str | None,
        name: str | None = None,
        selector: str | None = None,
    ) -> dict[str, Any]:
        """The server's ``Table``: the columns ``kubectl get`` prints."""
        params = {"labelSelector": selector} if selector and not name else None
        path = res.path(namespace if res.namespaced else None, name)
        return dict(self.get_json(path, params=params, accept=TABLE))

    def apply(
        self, res: ApiResource, obj: dict[str, Any], *, dry_run: bool, force: bool
    ) -> dict[str, Any]:
        """Server-side apply with field manager ``tulle`` and strict field validation."""
        meta = obj["metadata"]
        params = {"fieldManager": FIELD_MANAGER, "fieldValidation": "Strict"}
        if dry_run:
            params["dryRun"] = "All"
        if force:
            params["force"] = "true"
        with self.talking():
            applied = self._generic_client.request(
                "patch",
                _generic(res),
                obj=obj,
                name=meta["name"],
                namespace=self._ns(res, meta.get("namespace")),
                headers={"Content-Type": APPLY_PATCH},
                params=params,
            )
        return dict(applied)

    def delete(self, res: ApiResource, name: str, namespace: str | None) -> None:
        with self.talking():
            self._generic_client.request(
                "delete",
                _generic(res),
                name=name,
                namespace=self._ns(res, namespace),
                params={"propagationPolicy": "Background"},
            )

    def _ns(self, res: ApiResource, namespace: str | None) -> str | None:
        return (namespace or self.namespace) if res.namespaced else None


def connect_to(choice: context.Choice, context_name: str | None = None) -> Cluster:
    config = context.load(choice)
    try:
        client = Client(config=config.get(context_name) if context_name else config)
    except ConfigError as err:
        raise click.ClickException(f"kubeconfig ({choice.why}): {err}") from err
    except (KeyError, AssertionError) as err:  # lightkube: an unknown context or user
        what = f"context {context_name!r}" if context_name else "its current context"
        raise click.ClickException(
            f"kubeconfig ({choice.why}) has no usable {what}: missing {err}"
        ) from err
    return Cluster(client, choice.why)


def connect(
    ctx: click.Context, kubeconfig: str | None = None, context_name: str | None = None
) -> Cluster:
    """The cluster this command talks to (see agent.cli.context), closed with ``ctx``."""
    root = ctx.find_root()
    cluster = connect_to(
        context.choice_for(ctx, kubeconfig), context_name or root.params.get("context_name")
    )
    ctx.call_on_close(cluster.close)
    return cluster
