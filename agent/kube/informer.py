"""An informer: list, then watch from the list's revision with bookmarks; relist on 410 Gone;
reconnect with capped, jittered back-off when the API server is away. Each change reaches the
cache (agent.kube.cache) and ``on_delta`` once, in revision order.

Built on lightkube's sync client: its typed resources, kubeconfig/in-cluster config and TLS.
Its own ``watch`` never asks for bookmarks and relists on its own terms, so the loop here
drives the watch request itself (``Client._client``, lightkube 1.x's generic client).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import ApiError, Client

from agent.kube.cache import Cache, Delta
from agent.store.retry import Backoff

log = logging.getLogger(__name__)
R = TypeVar("R")
ALL_NAMESPACES = "*"
WATCH_BACKOFF = Backoff(initial=0.1, cap=10.0)


class Informer(Generic[R]):
    def __init__(
        self,
        client: Client,
        resource: type[R],
        *,
        namespace: str = ALL_NAMESPACES,
        on_delta: Callable[[Delta[R]], None] | None = None,
        watch_timeout: int = 300,
        backoff: Backoff = WATCH_BACKOFF,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.cache: Cache[R] = Cache()
        self.synced = threading.Event()  # set after the first full list
        self.list_revisions: list[int] = []  # the revision of every full list, in order
        self._on_delta = on_delta
        self._watch_timeout = watch_timeout
        self._backoff = backoff
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ends ``run`` at the next event, bookmark or watch timeout."""
        self._stop.set()

    def run(self) -> None:
        failures = 0
        listed = False
        while not self._stop.is_set():
            try:
                if not listed:
                    self._list()
                    listed = True
                for type_, obj in self._watch(self.cache.revision):
                    if self._stop.is_set():
                        return
                    self._emit(self.cache.apply(type_, obj))
                failures = 0  # the server ended the watch (timeoutSeconds): resume
            except ApiError as err:
                if err.status.code == 410:
                    log.info("%s: revision %d expired, relisting", self._name, self.cache.revision)
                    listed = False
                    continue
                failures += 1
                log.warning("%s: %s; retrying", self._name, err)
            except (httpx.HTTPError, OSError) as err:
                failures += 1
                log.warning("%s: API server unreachable (%s); retrying", self._name, err)
            if failures:
                self._stop.wait(self._backoff.delay(failures))

    @property
    def _name(self) -> str:
        return f"informer {getattr(self.resource, '__name__', self.resource)}"

    def _emit(self, delta: Delta[R] | None) -> None:
        if delta is not None and self._on_delta is not None:
            self._on_delta(delta)

    def _list(self) -> None:
        listing = self.client.list(self.resource, namespace=self.namespace)  # type: ignore[call-overload,type-var]
        items = list(listing)
        revision = int(listing.resourceVersion)
        for delta in self.cache.replace(items, revision):
            self._emit(delta)
        self.list_revisions.append(revision)
        self.synced.set()

    def _watch(self, revision: int) -> Iterator[tuple[str, Any]]:
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
            },
        )
        # on_error raise: 410 and connection errors come back here, where the loop decides.
        # When the server ends the stream (timeoutSeconds) lightkube re-watches from the last
        # revision it saw, which is the cache's: nothing is replayed or skipped.
        yield from generic.watch(request)
