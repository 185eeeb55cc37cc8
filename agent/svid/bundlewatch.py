"""The trust bundle's source: the ConfigMap ``tulle-system/tulle-trust-bundle`` (the system
namespace's: ``identity.system``), watched with
the agent's informer machinery (``agent.kube.informer``: list, watch, relist on 410,
back-off), the one object only (a ``metadata.name`` field selector, which RBAC grants by
``resourceNames``: deploy/daemonset/rbac.yaml).

Its data: ``trust-domain`` (the agent's ``--trust-domain``) and ``roots.pem`` (every root
trusted now, PEM; two during a root rotation). Each version goes to
``SvidManager.set_bundle``, which writes it to the SVID directory before using it, or keeps
the last good one when it is invalid. A deleted ConfigMap, or one without those keys, also
keeps the last good bundle and is reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightkube import Client

from agent.kube.cache import Delta
from agent.kube.informer import Informer
from agent.kube.resources import generic_resource
from agent.svid.manager import SvidManager
from identity.system import SYSTEM_NAMESPACE

NAMESPACE = SYSTEM_NAMESPACE  # the default; SvidConfig.system_namespace sets it
NAME = "tulle-trust-bundle"
TRUST_DOMAIN_KEY = "trust-domain"
ROOTS_KEY = "roots.pem"
ConfigMap = generic_resource("v1", "configmaps", "ConfigMap", namespaced=True)


def apply_configmap(
    manager: SvidManager, obj: Mapping[str, Any], namespace: str = NAMESPACE
) -> bool:
    """Hand one version of the ConfigMap to the manager; False when it is not usable."""
    data = obj.get("data") or {}
    missing = [k for k in (TRUST_DOMAIN_KEY, ROOTS_KEY) if not isinstance(data.get(k), str)]
    if missing:
        manager.bundle_missing(f"ConfigMap {namespace}/{NAME} has no {', '.join(missing)}")
        return False
    return manager.set_bundle(data[TRUST_DOMAIN_KEY].strip(), data[ROOTS_KEY].encode())


class BundleWatch:
    """An informer on the one ConfigMap, feeding ``manager``; ``run`` on a thread."""

    def __init__(self, client: Client, manager: SvidManager, namespace: str = NAMESPACE) -> None:
        self.manager = manager
        self.namespace = namespace
        self.informer: Informer[Any] = Informer(
            client,
            ConfigMap,
            namespace=namespace,
            field_selector=f"metadata.name={NAME}",
            on_delta=self._delta,
            on_listed=self._listed,
        )

    def _delta(self, delta: Delta[Any]) -> None:
        if delta.key != (self.namespace, NAME):
            return  # a server that ignored the selector: not ours
        if delta.type == "DELETED":
            self.manager.bundle_missing(f"ConfigMap {self.namespace}/{NAME} was deleted")
        else:
            apply_configmap(self.manager, delta.obj, self.namespace)

    def _listed(self, _revision: int) -> None:
        if (self.namespace, NAME) not in self.informer.cache.objects:
            self.manager.bundle_missing(f"no ConfigMap {self.namespace}/{NAME} yet")

    def run(self) -> None:
        self.informer.run()

    def stop(self) -> None:
        self.informer.stop()
