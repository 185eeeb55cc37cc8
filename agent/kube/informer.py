"""An informer: list, then watch from the list's revision with bookmarks; relist on 410 Gone;
reconnect with capped, jittered back-off when the API server is away. Each change reaches the
cache (agent.kube.cache) and ``on_delta`` once, in revision order; ``on_listed`` follows every
full list (its deltas came first). ``on_page`` sees each list page's objects as the page
arrives, before the list's end turns them into deltas: a consumer may start on them ahead
(the agent plans a first sync's Services while the next page is on its way), but only the
deltas say what the cluster holds.

Built on lightkube's sync client: its kubeconfig/in-cluster config, TLS, authentication,
URLs and errors. Its own ``watch`` never asks for bookmarks, relists on its own terms and
decodes each event's metadata into a typed model, so the loop here sends the list and watch
requests itself (``Client._client``, lightkube 1.x's generic client) and decodes the bodies:
lightkube's typed models for typed resources, plain dicts (``kind`` and ``apiVersion``
filled in, as list items lack them) for the generic ones of agent.kube.resources.

A kind the server does not serve (404: say, Gateway API CRDs not installed, or their CRD
deleted) counts as empty and synced, so a node works without it; it is listed again with
back-off (logged and reported to ``on_listed`` once per absence, not per retry) and picked up
when its CRD is established.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import httpx2 as httpx  # lightkube 1.x's HTTP client
import msgspec
from lightkube import ApiError, Client
from lightkube.core import decoders
from lightkube.core import resource as res
from lightkube.generic_resource import Generic as GenericDict

from agent.kube import gcpause
from agent.kube.backoff import Backoff
from agent.kube.cache import Cache, CacheError, Delta, key_of, revision_of
from agent.kube.compact import compact

log = logging.getLogger(__name__)
R = TypeVar("R")
# What an informer keeps of a decoded object instead of the object (client-go's transform):
# say, its model, so the raw dict is not held beside it. Must keep metadata's name,
# namespace and resource version readable (agent.kube.cache.key_of, revision_of), and
# return what it made itself unchanged. A transform with a ``decode_page(kind, raw)``
# method (agent.kube.models.to_model) decodes list pages itself: see ``_decode_page``.
Transform = Callable[[Any], Any]
ALL_NAMESPACES = "*"
WATCH_BACKOFF = Backoff(initial=0.1, cap=10.0)
# Objects per list page, as client-go's reflector asks: a 10,000-EndpointSlice list then never
# sits in memory as one 20 MB body beside its decoded objects. (Pages of 2,000 measured at
# 10,000 Services: +19 MB peak on a fresh node's first sync, no faster.)
LIST_PAGE = 500
# An unserved kind is not an outage: its looks start where a third failure's retry would
# (0.4-0.8 s, not 0.05-0.1 s, with WATCH_BACKOFF), so a cluster without the Gateway API does
# not have its 4 kinds asked for 5 times each during a first sync's lists.
UNSERVED_HEAD_START = 3
READ_SLACK = 30.0  # a watch silent this long past its timeoutSeconds is a dead connection
_decode_json = msgspec.json.decode


class Informer(Generic[R]):
    def __init__(
        self,
        client: Client,
        resource: type[R],
        *,
        namespace: str | None = ALL_NAMESPACES,
        on_delta: Callable[[Delta[R]], None] | None = None,
        on_listed: Callable[[int], None] | None = None,
        on_page: Callable[[list[R]], None] | None = None,
        watch_timeout: int = 300,
        backoff: Backoff = WATCH_BACKOFF,
        transform: Transform | None = None,
        field_selector: str | None = None,
    ) -> None:
        """``field_selector``: list and watch only what it selects (``metadata.name=X``:
        one object, which RBAC can grant by ``resourceNames``)."""
        self.client = client
        self._selector = {"fieldSelector": field_selector} if field_selector else {}
        self._transform = transform
        self._page_decoder = getattr(transform, "decode_page", None)
        self.resource = resource
        # A cluster-scoped kind has no namespace in its path, not even "all".
        namespaced = issubclass(resource, res.NamespacedResource | res.NamespacedResourceG)
        self.namespace = namespace if namespaced else None
        self.cache: Cache[R] = Cache()
        self.synced = threading.Event()  # set after the first full list
        self.list_revisions: list[int] = []  # the revision of every full list, in order
        self._on_delta = on_delta
        self._on_listed = on_listed
        self._on_page = on_page
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._stop = threading.Event()
        self._response: httpx.Response | None = None  # the open watch stream, for stop()
        self._served: bool | None = None  # whether the last list found the kind served
        info = res.api_info(resource)  # type: ignore[arg-type]
        self._as_dict = issubclass(resource, GenericDict)
        self._stamp = {"apiVersion": info.resource.api_version, "kind": info.resource.kind}
        self._kind = info.resource.kind

    def stop(self) -> None:
        """Ends ``run`` now: an open watch stream is closed under it."""
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # the reading thread may be closing it too
                pass

    def run(self) -> None:
        failures = 0
        unserved = 0  # lists in a row that found the kind not served
        listed = False
        while not self._stop.is_set():
            try:
                if not listed:
                    listed = self._list()
                    if not listed:  # not served: empty until the next look
                        unserved += 1
                        self._stop.wait(self._backoff.delay(unserved + UNSERVED_HEAD_START))
                        continue
                    unserved = 0
                for type_, obj in self._watch(self.cache.revision):
                    if self._stop.is_set():
                        return
                    self._apply(type_, obj)
                failures = 0  # the server ended the watch (timeoutSeconds): resume
            except ApiError as err:
                if err.status.code == 410:
                    log.info("%s: revision %d expired, relisting", self._name, self.cache.revision)
                    listed = False
                    continue
                if err.status.code == 404:  # no longer served (its CRD went): list says so
                    listed = False
                    continue
                failures += 1
                log.warning("%s: %s; retrying", self._name, err)
            except (httpx.HTTPError, httpx.StreamError, OSError) as err:
                if self._stop.is_set():
                    return
                failures += 1
                log.warning("%s: API server unreachable (%s); retrying", self._name, err)
            except (msgspec.MsgspecError, CacheError) as err:
                failures += 1
                log.warning("%s: unreadable response (%s); watching again", self._name, err)
            except Exception:  # a consumer's bug must not end the informer silently
                failures += 1
                log.exception("%s: failed; retrying", self._name)
            if failures:
                self._stop.wait(self._backoff.delay(failures))

    @property
    def _name(self) -> str:
        return f"informer {getattr(self.resource, '__name__', self.resource)}"

    def _emit(self, delta: Delta[R] | None) -> None:
        if delta is not None and self._on_delta is not None:
            self._on_delta(delta)

    def _apply(self, type_: str, obj: Any) -> None:
        if type_ != "BOOKMARK":  # a bookmark carries only a revision
            try:
                key_of(obj), revision_of(obj)
            except CacheError as err:
                log.error("%s: ignoring a %s event: %s", self._name, type_, err)
                return
            obj = self._transformed(obj)
        try:
            delta = self.cache.apply(type_, obj)
        except CacheError as err:
            log.error("%s: ignoring a %s event: %s", self._name, type_, err)
            return
        self._emit(delta)

    def _placeable(self, items: list[Any]) -> list[Any]:
        """The listed objects the cache can hold; the others are logged and left out."""
        good = []
        for item in items:
            try:
                key_of(item), revision_of(item)
            except CacheError as err:
                log.error("%s: ignoring a listed object: %s", self._name, err)
                continue
            good.append(self._transformed(item))
        return good

    def _transformed(self, obj: Any) -> Any:
        """What the cache keeps of ``obj``: the object itself when the transform fails."""
        if self._transform is None:
            return obj
        try:
            return self._transform(obj)
        except Exception:
            log.exception("%s: transform failed; keeping the object as decoded", self._name)
            return obj

    def _decode(self, raw: bytes) -> Any:
        if not self._as_dict:
            return decoders.decode_object(raw, self.resource)
        obj = _decode_json(raw)
        if not isinstance(obj, dict):
            raise CacheError(f"not an object: {bytes(raw)[:200]!r}")
        compact(self._kind, obj)
        obj.update(self._stamp)
        return obj

    def _list(self) -> bool:
        """One full list into the cache; False when the server does not serve the kind."""
        generic = self.client._client  # noqa: SLF001 - see the module docstring
        request = generic.prepare_request(
            "list",
            self.resource,  # type: ignore[arg-type]
            namespace=self.namespace,
            params={"limit": str(LIST_PAGE), **self._selector},
        )
        items: list[Any] = []
        first = True
        while True:
            response = generic.send(generic.build_adapter_request(request))
            if response.status_code == 404 and first:
                if self._served is False and not self.cache.objects:
                    return False  # still absent: nothing to tell (no "listed" per retry)
                # Once per absence, not per retry.
                log.warning("%s: not served by the API server; empty until it is", self._name)
                self._served = False
                self._listed(self.cache.replace([], self.cache.revision))
                return False
            generic.raise_for_status(response)
            with gcpause.paused():  # a page is 1,000s of containers that all stay
                revision, more, page = self._decode_page(response.content)
            # Placed (and transformed) page by page: a page's raw dicts are freed before
            # the next page decodes, not all held until the list ends.
            placed = self._placeable(page)
            items.extend(placed)
            if placed and self._on_page is not None:
                self._on_page(placed)
            first = False
            if not more:
                break
            request.params["continue"] = more
        try:
            listed_at = int(revision or 0)
        except (TypeError, ValueError):
            raise CacheError(f"list resourceVersion {revision!r} is not a revision") from None
        if self._served is False:
            log.info("%s: now served by the API server", self._name)
        self._served = True
        self._listed(self.cache.replace(items, listed_at))
        return True

    def _decode_page(self, raw: bytes) -> tuple[Any, Any, list[Any]]:
        """A list page's revision, continue token and items. The transform's page decoder
        goes first; the items it leaves out (None) are read from the page's plain decode."""
        if not self._as_dict:
            more, revision, items = decoders.decode_list(raw, self.resource)
            return revision, more, items
        fast = self._page_decoder(self._kind, raw) if self._page_decoder else None
        if fast is not None and not any(model is None for model in fast.models):
            return fast.revision, fast.more, fast.models
        body = _decode_json(raw)
        if not isinstance(body, dict) or not isinstance(body.get("items") or [], list):
            raise CacheError(f"a list response without a list of items: {body!r:.200}")
        page = body.get("items") or []
        if fast is not None and len(fast.models) == len(page):  # the same JSON: i is i
            page = [item if model is None else model
                    for model, item in zip(fast.models, page, strict=True)]
        for item in page:
            if isinstance(item, dict):  # the others are logged and left out by _placeable
                compact(self._kind, item)
                item.update(self._stamp)
        meta = body.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return meta.get("resourceVersion"), meta.get("continue"), page

    def _listed(self, deltas: list[Delta[R]]) -> None:
        for delta in deltas:
            self._emit(delta)
        self.list_revisions.append(self.cache.revision)
        self.synced.set()
        if self._on_listed is not None:
            self._on_listed(self.cache.revision)

    def _watch(self, revision: int) -> Iterator[tuple[str, Any]]:
        """Events until the server ends the stream; a 410 (or any error event) raises."""
        generic = self.client._client  # noqa: SLF001 - see the module docstring
        request = generic.prepare_request(
            "list",
            self.resource,  # type: ignore[arg-type]
            namespace=self.namespace,
            watch=True,
            params={
                "resourceVersion": str(revision),
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self._watch_timeout),
                **self._selector,
            },
        )
        request.timeout = httpx.Timeout(10.0, read=self._watch_timeout + READ_SLACK)
        response = generic.send(generic.build_adapter_request(request), stream=True)
        self._response = response
        try:
            if self._stop.is_set():
                return
            if response.is_error:
                response.read()
                generic.raise_for_status(response)
            for line in response.iter_lines():
                if not line:
                    continue
                event = decoders.decode_watch_event(line)
                if event.type == "ERROR":
                    raise ApiError(status=decoders.decode_status(event.object))
                try:
                    obj = self._decode(event.object)
                except (CacheError, ValueError, TypeError, msgspec.MsgspecError) as err:
                    # Skipped, not retried: watching again from the same revision would
                    # replay it for ever. The cache keeps the object's last good version.
                    log.error(
                        "%s: skipping an undecodable %s event: %s", self._name, event.type, err
                    )
                    continue
                yield event.type, obj
        finally:
            self._response = None
            response.close()
