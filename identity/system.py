"""Tulle's system namespace: where its own processes run and keep their objects.

One setting, default ``tulle-system`` (issue 13), overridable per process by the flag
``--system-namespace`` or the environment variable ``TULLE_SYSTEM_NAMESPACE`` (the flag wins).
Every Tulle process reads it through ``system_namespace``, so the names below agree:

- the agent's ServiceAccount ``<ns>/tulle-agent``, the one account the CA signs for;
- the identity service ``tulle-controlplane.<ns>.svc`` (its serving certificate's DNS SAN);
- the CA's Secret ``<ns>/tulle-ca`` and the trust bundle ConfigMap ``<ns>/tulle-trust-bundle``.

``kube-system`` stays Kubernetes' own (its controllers, TokenReview's system accounts), never
Tulle's. Here and not in ``agent``: the agent, the waypoint, the control plane and the lab
all import ``identity`` (pyproject.toml, import-linter), and this module is pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SYSTEM_NAMESPACE = "tulle-system"
ENV = "TULLE_SYSTEM_NAMESPACE"
FLAG = "--system-namespace"
AGENT_SERVICE_ACCOUNT = "tulle-agent"  # deploy/daemonset/rbac.yaml
CONTROLPLANE_SERVICE = "tulle-controlplane"  # deploy/controlplane/controlplane.yaml
# A Namespace's name is a DNS-1123 label (Kubernetes API conventions, "Names").
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class SystemNamespaceError(ValueError):
    """The name given is not one a Namespace can have."""


def check_namespace(name: str) -> str:
    """``name`` if it is a valid Namespace name; SystemNamespaceError saying why not."""
    if not name:
        raise SystemNamespaceError("the system namespace is empty")
    if len(name) > 63 or not _LABEL.match(name):
        raise SystemNamespaceError(
            f"system namespace {name!r} is not a DNS-1123 label (lowercase letters, digits "
            "and '-', starting and ending with a letter or digit, at most 63 characters)"
        )
    return name


def system_namespace(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The flag's value, else ``TULLE_SYSTEM_NAMESPACE`` from ``environ``, else tulle-system;
    validated (SystemNamespaceError, naming where the bad value came from)."""
    if flag is not None:
        source, value = FLAG, flag
    elif environ is not None and ENV in environ:
        source, value = ENV, environ[ENV]
    else:
        return SYSTEM_NAMESPACE
    try:
        return check_namespace(value)
    except SystemNamespaceError as err:
        raise SystemNamespaceError(f"{source}: {err}") from None


def agent_account(namespace: str = SYSTEM_NAMESPACE) -> str:
    """The agent's ServiceAccount as ``<namespace>/<name>`` (what controlplane.auth reports)."""
    return f"{namespace}/{AGENT_SERVICE_ACCOUNT}"


def ca_service_name(namespace: str = SYSTEM_NAMESPACE) -> str:
    """The identity service's in-cluster DNS name, which its serving certificate carries."""
    return f"{CONTROLPLANE_SERVICE}.{namespace}.svc"
