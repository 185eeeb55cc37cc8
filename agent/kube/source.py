"""A process's view of the cluster through the Kubernetes API: a lightkube client from a
kubeconfig (or the in-cluster ServiceAccount, as in a DaemonSet pod), one informer per
watched kind (list, watch with bookmarks, relist on 410, back-off while the API server is
away), all feeding one ClusterState.

Consumers read ``source.state`` under ``source.lock``; ``on_change(kind, delta)`` runs under
the same lock after each change is applied (``delta`` None: ``kind`` was (re)listed), one at
a time whatever informer thread delivers it. ``on_page(kind, items)`` gets each list page's
(transformed) objects on its informer's thread as the page arrives, not under the lock: they
are not in the state until the list ends (agent.kube.informer).

``transforms`` (kind -> function) replace a kind's decoded dicts by what the function makes
of them (the agent keeps EndpointSlices as agent.model objects: 100,000 endpoints held as
raw dicts beside their models were 57 MB); other consumers see dicts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import httpx2 as httpx  # lightkube 1.x's HTTP client
from lightkube import Client, ConfigError, KubeConfig

from agent.kube.backoff import Backoff
from agent.kube.cache import Delta
from agent.kube.informer import WATCH_BACKOFF, Informer, Transform
from agent.kube.resources import resource_for
from agent.kube.state import ClusterState, Obj

OnChange = Callable[[str, "Delta[Obj] | None"], None]
OnPage = Callable[[str, list[Any]], None]
REQUEST_TIMEOUT = 10.0


class KubeconfigError(ValueError):
    """No usable kubeconfig or in-cluster configuration; the message says what to pass."""


def connect(kubeconfig: str | Path | None) -> Client:
    """A client from ``kubeconfig``, or from the in-cluster ServiceAccount when None."""
    try:
        if kubeconfig is None:
            config = KubeConfig.from_service_account()
        else:
            config = KubeConfig.from_file(kubeconfig)
        # trust_env off: a proxy set for the host must not carry a node's API traffic.
        return Client(config=config, timeout=httpx.Timeout(REQUEST_TIMEOUT), trust_env=False)
    except (ConfigError, OSError, ValueError, KeyError) as err:
        where = (
            f"--kubeconfig {kubeconfig}"
            if kubeconfig is not None
            else "no --kubeconfig, and the in-cluster ServiceAccount"
        )
        raise KubeconfigError(
            f"{where}: {err or type(err).__name__}. Pass --kubeconfig FILE (in a lab: "
            "`tulle lab kubeconfig --component tulle-agent`), or run in a pod with a "
            "ServiceAccount token mounted."
        ) from err


class ClusterSource:
    def __init__(
        self,
        client: Client,
        kinds: Sequence[str],
        on_change: OnChange | None = None,
        *,
        watch_timeout: int = 300,
        backoff: Backoff = WATCH_BACKOFF,
        transforms: Mapping[str, Transform] | None = None,
        on_page: OnPage | None = None,
    ) -> None:
        self.state = ClusterState(kinds)
        transforms = transforms or {}
        self.lock = threading.Lock()
        self.changed = threading.Event()  # set on every change; consumers clear it
        self._on_change = on_change
        self.informers: list[Informer[Any]] = [
            Informer(
                client,
                resource_for(kind),
                on_delta=partial(self._delta, kind),
                on_listed=partial(self._listed, kind),
                on_page=None if on_page is None else partial(on_page, kind),
                watch_timeout=watch_timeout,
                backoff=backoff,
                transform=transforms.get(kind),
            )
            for kind in kinds
        ]
        self._threads: list[threading.Thread] = []

    def start(self) -> ClusterSource:
        for kind, informer in zip(self.state.kinds, self.informers, strict=True):
            thread = threading.Thread(target=informer.run, name=f"watch-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        for informer in self.informers:
            informer.stop()
        for thread in self._threads:
            thread.join(timeout)

    @property
    def synced(self) -> bool:
        with self.lock:
            return self.state.synced

    def _delta(self, kind: str, delta: Delta[Obj]) -> None:
        with self.lock:
            self.state.apply(kind, delta)
            if self._on_change is not None:
                self._on_change(kind, delta)
        self.changed.set()

    def _listed(self, kind: str, revision: int) -> None:
        with self.lock:
            self.state.mark_listed(kind, revision)
            if self._on_change is not None:
                self._on_change(kind, None)
        self.changed.set()
