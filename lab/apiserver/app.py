"""The API as a function from request to response (no sockets here; ``server.py`` carries bytes)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from lab.apiserver import (
    auth,
    bodies,
    crds,
    deletion,
    discovery,
    events_view,
    fieldvalidation,
    impersonation,
    openapi,
    rbac,
    reads,
    stored,
    subresources,
    tables,
    tokenrequest,
    tokenreview,
    writes,
)
from lab.apiserver.errors import NOT_FOUND, ApiError
from lab.apiserver.routing import Discovery, Target, query_flag, route
from lab.apiserver.watch import WatchSettings, watch
from lab.store import Store

log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str:
        """The (first) value of a header, "" when absent."""
        return self.headers.get(name.lower(), "").split("\n")[0]

    def header_values(self, name: str) -> list[str]:
        """Every value of a header sent more than once (``Impersonate-Group``)."""
        value = self.headers.get(name.lower())
        return [] if value is None else value.split("\n")


@dataclass(slots=True)
class Response:
    status: int
    body: Any  # a JSON value, or bytes with content_type
    content_type: str = "application/json"
    stream: Iterator[dict[str, Any] | None] | None = None  # watch events; None: heartbeat
    warnings: list[str] = field(default_factory=list)  # sent as Warning headers
    headers: dict[str, str] = field(default_factory=dict)  # ETag, Cache-Control, Location...


class Api:
    def __init__(
        self,
        store: Store,
        tokens: frozenset[str],
        *,
        server_address: str = "127.0.0.1:6443",
        watch_settings: WatchSettings | None = None,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.server_address = server_address
        self.watch_settings = watch_settings or WatchSettings()
        self.stopping = threading.Event()

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except ApiError as err:
            return Response(err.code, err.status())
        except Exception as err:  # a bug must cost one request a 500, not the connection
            log.exception("%s %s failed", request.method, request.path)
            return Response(500, ApiError(500, f"Internal error occurred: {err}").status())

    def _rbac_objects(self) -> list[dict[str, Any]]:
        return self.store.list(auth.RBAC_KINDS)[0]

    def _authorize(self, user: rbac.User, attrs: rbac.Attributes) -> None:
        if user.groups and rbac.MASTERS in user.groups:
            return
        if not rbac.allowed(user, attrs, self._rbac_objects()):
            raise ApiError(403, rbac.forbidden_message(user, attrs))

    def _no_escalation(self, user: rbac.User) -> writes.Admit:
        """Refuses (403) a Role or binding granting more than ``user`` holds (``rbac.py``)."""

        def admit(obj: dict[str, Any]) -> None:
            if obj.get("kind") not in auth.RBAC_KINDS or rbac.MASTERS in user.groups:
                return
            objs = self._rbac_objects()
            why = rbac.escalation(user, obj, objs, lambda a: rbac.allowed(user, a, objs))
            if why is not None:
                raise ApiError(403, why)

        return admit

    def _impersonated(self, request: Request, user: rbac.User) -> rbac.User:
        """The user to act as: the authenticated one, or whom it may impersonate."""
        asked = {
            name: request.header_values(name)
            for name in request.headers
            if name.startswith("impersonate-")
        }
        if not impersonation.requested(asked):
            return user
        return impersonation.impersonated(asked, lambda attrs: self._authorize(user, attrs))

    def _handle(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        user = rbac.User("system:anonymous", ("system:unauthenticated",))
        if path not in PUBLIC_PATHS:
            found = auth.authenticate(self.store, self.tokens, request.header("authorization"))
            if found is None:
                raise ApiError(401, "Unauthorized")
            user = self._impersonated(request, found)
        registry = crds.registry(self.store)
        public = path in PUBLIC_PATHS or path.startswith("/openapi/")
        target = None if public else route(path, registry)
        if isinstance(target, Target):
            self._authorize(user, auth.request_attributes(request.method, request.query, target))
            return self._resource(request, target, user)
        self._authorize(user, rbac.Attributes(request.method.lower(), path=path))
        if path == "/version":
            return Response(200, discovery.version())
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain")
        if path.startswith("/openapi/"):
            return openapi.respond(
                path,
                request.header("accept"),
                registry,
                request.query.get("hash"),
                request.header("if-none-match"),
            )
        if isinstance(target, Discovery):
            if request.method != "GET":
                raise ApiError(405, f"{request.method} is not allowed on {path}")
            return discovery.respond(
                target,
                request.header("accept"),
                request.header("if-none-match"),
                self.server_address,
                registry,
            )
        raise ApiError(404, NOT_FOUND)

    def _resource(self, request: Request, target: Target, user: rbac.User) -> Response:
        q, method = request.query, request.method
        dry_run = q.get("dryRun") == "All"
        if target.resource.verbs == ("create",):
            if method != "POST" or target.name is not None:
                raise ApiError(405, f"{method} is not allowed on {target.resource.plural}")
            if target.resource.kind == "TokenReview":
                return Response(201, tokenreview.review(self.store, self.tokens, _body(request)))
            review = subresources.review(target, _body(request), user, self._rbac_objects())
            return Response(201, review)
        if target.subresource == "scale":
            return self._scale(request, target, dry_run)
        if target.subresource == "token":
            if method != "POST":
                raise ApiError(405, f"{method} is not allowed on serviceaccounts/token")
            account = stored.get(
                self.store, Target(target.resource, "v1", target.namespace, target.name)
            )
            key = tokenrequest.signing_key(self.tokens)
            if key is None:
                raise ApiError(404, NOT_FOUND)
            lookup = auth.store_lookup(self.store)
            return Response(201, tokenrequest.answer(key, account, _body(request), lookup=lookup))
        if events_view.is_view(target.resource) and method in ("POST", "PUT", "PATCH"):
            return self._write_event_view(request, target, dry_run)
        if method == "GET":
            return self._read(request, target)
        if method == "POST" and target.name is None:
            body, warnings = self._validate(target, _body(request), q)
            obj = writes.create(
                self.store,
                target,
                body,
                dry_run=dry_run,
                manager=_manager(request),
                registrar=user.name in auth.NODE_REGISTRARS,
                admit=self._no_escalation(user),
            )
            return Response(201, reads.served(target, obj), warnings=warnings)
        if method == "PUT" and target.name is not None:
            body, warnings = self._validate(target, _body(request), q)
            obj = writes.update(
                self.store,
                target,
                body,
                dry_run=dry_run,
                manager=_manager(request),
                admit=self._no_escalation(user),
            )
            return Response(200, reads.served(target, obj), warnings=warnings)
        if method == "PATCH" and target.name is not None:
            ctype = request.header("content-type").split(";")[0].strip()
            body, warnings = _body(request), []
            if ctype != writes.JSON_PATCH:
                body, warnings = self._validate(target, body, q)
            obj = writes.patch(
                self.store,
                target,
                body,
                ctype,
                dry_run=dry_run,
                manager=q.get("fieldManager") if ctype == writes.APPLY else _manager(request),
                force=query_flag(q, "force"),
                admit=self._no_escalation(user),
            )
            return Response(200, reads.served(target, obj), warnings=warnings)
        if method == "DELETE" and target.name is not None:
            options = _body(request) if request.body.strip() else {}
            if not isinstance(options, dict):
                raise ApiError(400, "the body of a DELETE must be a DeleteOptions object")
            if options.get("dryRun") == ["All"]:
                dry_run = True
            obj = deletion.delete(self.store, target, options, dry_run=dry_run)
            return Response(200, reads.served(target, obj))
        if method == "DELETE":
            items, _ = reads.list_objects(self.store, target, q)
            gone = []
            for obj in items:
                one = Target(
                    target.resource,
                    target.version,
                    obj["metadata"].get("namespace"),
                    obj["metadata"]["name"],
                )
                gone.append(deletion.delete(self.store, one, {}, dry_run=dry_run))
            return Response(200, reads.list_body(target, gone, {"resourceVersion": ""}))
        raise ApiError(405, f"{method} is not allowed on this path")

    def _write_event_view(self, request: Request, target: Target, dry_run: bool) -> Response:
        """A write to an events.k8s.io Event: checked in that shape, stored as core/v1."""
        core, q = events_view.core_target(target), request.query
        ctype = request.header("content-type").split(";")[0].strip()
        body, warnings = _body(request), list[str]()
        if request.method != "PATCH" or ctype != writes.JSON_PATCH:
            body, warnings = self._validate(target, body, q)
        manager = _manager(request)
        if request.method == "POST" and target.name is None:
            obj = writes.create(
                self.store, core, events_view.to_core(body), dry_run=dry_run, manager=manager
            )
            return Response(201, reads.served(target, obj), warnings=warnings)
        if target.name is None:
            raise ApiError(405, f"{request.method} is not allowed on this path")
        if request.method == "PATCH" and ctype != writes.APPLY:
            view = reads.served(target, stored.get(self.store, core))
            body = writes.patched_object("Event", view, body, ctype)
        elif request.method == "PATCH":
            obj = writes.patch(
                self.store,
                core,
                events_view.to_core(body),
                ctype,
                dry_run=dry_run,
                manager=q.get("fieldManager"),
                force=query_flag(q, "force"),
            )
            return Response(200, reads.served(target, obj), warnings=warnings)
        obj = writes.update(
            self.store, core, events_view.to_core(body), dry_run=dry_run, manager=manager
        )
        return Response(200, reads.served(target, obj), warnings=warnings)

    @staticmethod
    def _validate(target: Target, body: Any, query: Mapping[str, str]) -> tuple[Any, list[str]]:
        mode = query.get("fieldValidation")
        return fieldvalidation.check(target.resource, target.version, body, mode)

    def _scale(self, request: Request, target: Target, dry_run: bool) -> Response:
        main = Target(target.resource, target.version, target.namespace, target.name)
        deployment = writes.get(self.store, main)
        if request.method == "GET":
            return Response(200, subresources.scale_of(deployment))
        if request.method == "PUT":
            scale = _body(request)
        elif request.method == "PATCH":
            ctype = request.header("content-type").split(";")[0].strip()
            scale = subresources.patched_scale(deployment, _body(request), ctype)
        else:
            raise ApiError(405, f"{request.method} is not allowed on deployments/scale")
        scaled = subresources.scaled(deployment, scale)
        updated = writes.update(
            self.store, main, scaled, dry_run=dry_run, manager=_manager(request)
        )
        return Response(200, subresources.scale_of(updated))

    def _read(self, request: Request, target: Target) -> Response:
        q = dict(request.query)
        as_table = "as=Table" in request.header("accept")
        include = q.get("includeObject", "Metadata")
        if target.name is not None and query_flag(q, "watch"):
            q["fieldSelector"] = ",".join(
                s for s in (q.get("fieldSelector"), f"metadata.name={target.name}") if s
            )
            target = Target(target.resource, target.version, target.namespace)
        if target.name is not None:
            obj = writes.get(self.store, target)
            if as_table:
                meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
                return Response(200, tables.table(target, [obj], meta, include))
            return Response(200, reads.served(target, obj))
        if query_flag(q, "watch"):
            events = watch(self.store, target, q, self.watch_settings, self.stopping)
            if as_table:
                events = _as_tables(target, events, include)
            return Response(200, None, stream=events)
        reads.check_list_request(q)
        if not as_table:
            spliced = reads.list_bytes(self.store, target, q)
            if spliced is not None:
                return Response(200, spliced)
        items, meta = reads.list_objects(self.store, target, q)
        if as_table:
            return Response(200, tables.table(target, items, meta, include))
        return Response(200, reads.list_body(target, items, meta))


def _as_tables(
    target: Target, events: Iterator[dict[str, Any] | None], include: str
) -> Iterator[dict[str, Any] | None]:
    for event in events:
        if event is not None and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
            obj = event["object"]
            meta = {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
            event = {"type": event["type"], "object": tables.table(target, [obj], meta, include)}
        yield event


def _manager(request: Request) -> str:
    """The field manager: the ``fieldManager`` parameter, else the client's name from its
    User-Agent, as the API server defaults it."""
    named = request.query.get("fieldManager")
    if named:
        return named
    agent = request.header("user-agent").split("/")[0].strip()
    return agent or "unknown"


def _body(request: Request) -> Any:
    return bodies.decode(request.header("content-type"), request.body)
