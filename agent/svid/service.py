"""The SVID manager as part of the node agent (``tulle agent --ca-address``): what it needs
from the agent's cluster state, the trust bundle's watch, and their threads.

``start(...)`` builds the client (the agent's bearer token), the manager and the bundle
watch, and starts a thread for each; ``SvidService.stop()`` ends them. The agent calls
``changed()`` when a Pod or Namespace changed. Everything here runs beside the datapath and
never blocks it: a failure to start is logged and reported, and the agent runs without SVIDs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from lightkube import Client
from prometheus_client import CollectorRegistry

from agent.kube.source import ClusterSource
from agent.svid.bundlewatch import BundleWatch
from agent.svid.client import CertificateClient, token_source
from agent.svid.manager import SvidConfig, SvidManager
from agent.svid.schedule import Workload, needed
from identity.system import ca_service_name


def pods_needed(source: ClusterSource, node: str) -> Callable[[], frozenset[Workload] | None]:
    """The identities the node's pods need now, from the agent's cluster state; None until
    Pods and Namespaces are listed (a partial list would start drops' grace for nothing)."""

    def read() -> frozenset[Workload] | None:
        with source.lock:
            state = source.state
            if not {"Pod", "Namespace"} <= state.listed:
                return None
            return needed(state.of_kind("Pod"), state.of_kind("Namespace"), node)

    return read


class SvidService:
    def __init__(
        self,
        manager: SvidManager,
        watch: BundleWatch,
        client: CertificateClient,
        stop: threading.Event,
    ) -> None:
        self.manager = manager
        self.watch = watch
        self.client = client
        self._stop = stop
        self._threads: list[threading.Thread] = []

    def start(self) -> SvidService:
        for target, name in (
            (self.watch.run, "watch-trust-bundle"),
            (lambda: self.manager.run(self._stop), "svids"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def changed(self) -> None:
        self.manager.changed.set()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self.watch.stop()
        self.manager.changed.set()
        for thread in self._threads:
            thread.join(timeout)
        self.client.close()


def start(
    client: Client,
    kubeconfig: str | None,
    source: ClusterSource,
    node: str,
    address: str,
    config: SvidConfig,
    registry: CollectorRegistry | None,
) -> SvidService:
    ca = CertificateClient(
        address, token_source(kubeconfig), server_name=ca_service_name(config.system_namespace)
    )
    manager = SvidManager(config, ca, pods_needed(source, node), registry=registry)
    watch = BundleWatch(client, manager, config.system_namespace)
    return SvidService(manager, watch, ca, threading.Event()).start()


def svid_dir(svid_dir: str | None, state_dir: str | None) -> Path:
    """``--svid-dir``, else ``<state-dir>/svid``; ValueError when neither is set."""
    if svid_dir:
        return Path(svid_dir)
    if state_dir:
        return Path(state_dir) / "svid"
    raise ValueError("--ca-address needs --svid-dir (or a --state-dir to put svid/ in)")
