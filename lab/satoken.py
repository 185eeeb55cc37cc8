"""The projected ServiceAccount token a lab pod gets, as a kubelet mounts the volume the
ServiceAccount admission plugin adds (``kube-api-access-<random>``): ``token``, ``ca.crt``
and ``namespace`` at /var/run/secrets/kubernetes.io/serviceaccount, read-only.

Which pods (a lab deviation, lab/README.md): a pod whose containers run in a mount
namespace, i.e. one with a volumeMount (lab.volumesetup), or one that sets
``automountServiceAccountToken: true`` itself (which then gets a mount namespace for it).
Other pods (the lab's echo pods) run on the host's filesystem and get no token: a mount
namespace per echo pod costs a bash, an unshare and a nsenter per start.

The token: a TokenRequest for the pod's ServiceAccount (``serviceAccountName``, ``default``
when unset) bound to the Pod (so the lab API server ties it to the pod's node, and it dies
with the pod), valid a year and never refreshed (a kubelet asks for an hour and refreshes
at 80%). A missing ServiceAccount keeps the containers waiting (``FailedMount``, retried).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.model.core import Pod
from lab import podvolumes

__all__ = ["TOKEN_SECONDS", "VOLUME", "TokenIssuer", "automount", "failed_message",
           "mount_namespace", "write_files"]

TOKEN_SECONDS = 365 * 24 * 3600
VOLUME = "kube-api-access"  # the admission plugin's prefix (it adds 5 random characters)
# (namespace, ServiceAccount, pod name, pod uid, seconds) -> token; lab.kubeapi's NotFound
# when the account does not exist.
TokenIssuer = Callable[[str, str, str, str, int], str]


def automount(pod: Pod, account: Mapping[str, Any] | None) -> bool:
    """Whether the pod gets a token: the Pod's ``automountServiceAccountToken`` wins, else
    the ServiceAccount's, else yes (Kubernetes' default). A missing account: yes (the
    token request then says it is missing)."""
    if pod.spec.automount_service_account_token is not None:
        return pod.spec.automount_service_account_token
    own = (account or {}).get("automountServiceAccountToken")
    return own if isinstance(own, bool) else True


def mount_namespace(pod: Pod) -> bool:
    """Whether the pod's containers run in mount namespaces of their own: a volumeMount, or
    the token asked for on the Pod itself (the lab's opt-in; see the module docstring)."""
    containers = (*pod.spec.init_containers, *pod.spec.containers)
    return (any(c.volume_mounts for c in containers)
            or pod.spec.automount_service_account_token is True)


def failed_message(error: str) -> str:
    """The FailedMount event's message, worded as a kubelet's."""
    return f'MountVolume.SetUp failed for volume "{VOLUME}" : failed to fetch token: {error}'


def write_files(pod_root: Path, token: str, ca_pem: str, namespace: str) -> Path:
    """The volume's files in the pod's directory (0644 in a 0755 dir, the projected
    volume's default mode); the directory."""
    files = podvolumes.serviceaccount_files(token, ca_pem, namespace)
    where = podvolumes.serviceaccount_dir(pod_root)
    where.mkdir(mode=0o755, exist_ok=True)
    for name, text in files.items():
        path = where / name
        path.write_text(text)
        path.chmod(0o644)
    return where
