"""The projected ServiceAccount token in the lab (lab/satoken.py), through kubectl as on a
cluster: a pod that asks for it gets token, ca.crt and namespace at
/var/run/secrets/kubernetes.io/serviceaccount (read-only), and the agent's in-cluster config
(KUBERNETES_SERVICE_HOST/PORT + that token + ca.crt) works from inside it, allowed what the
account's RBAC allows and refused (403) the rest; a pod whose ServiceAccount is missing
waits with a FailedMount event naming it, and starts once it exists; a pod that opts out
gets none.

hostNetwork pods: the node's netns reaches the API server's fabric address (a pod netns
does not yet: no route from the fabric back to pod CIDRs, design §3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import wait_for
from .test_kubectl_lab import Kubectl, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "sa-lab"
TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# The agent's own in-cluster client (agent/kube/source.py: connect(None)).
IN_CLUSTER = """
import sys
from lightkube import ApiError
from lightkube.resources.core_v1 import ConfigMap, Secret
from agent.kube.source import connect
client = connect(None)
print(",".join(sorted(c.metadata.name for c in client.list(ConfigMap, namespace=sys.argv[1]))))
try:
    list(client.list(Secret, namespace=sys.argv[1]))
except ApiError as err:
    print(err.status.code)
"""


def pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": "node1", "hostNetwork": True,
                 "containers": [{"name": "app", "image": "busybox",
                                 "command": ["sleep", "3600"]}], **spec},
    }


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-sa"), NS)


def _running(k: Kubectl, name: str) -> bool:
    obj = json.loads(k.out("get", "pod", name, "-n", NS, "-o", "json"))
    statuses = (obj.get("status") or {}).get("containerStatuses") or [{}]
    return "running" in (statuses[0].get("state") or {})


def test_a_pod_with_a_token_talks_to_the_api_as_its_account(lab: Lab, k: Kubectl) -> None:
    reader = [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "cm-reader", "namespace": NS},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "cm-reader", "namespace": NS},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "cm-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": NS}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hello", "namespace": NS},
         "data": {"a": "b"}},
        pod("token", automountServiceAccountToken=True),
    ]
    k.out("apply", "-f", k.write("token.yaml", reader))
    wait_for(lambda: _running(k, "token"), timeout=60, what="the token pod running")
    names = lab.exec(NS, "token", "ls", TOKEN_DIR).stdout.split()
    assert names == ["ca.crt", "namespace", "token"]
    assert lab.exec(NS, "token", "cat", f"{TOKEN_DIR}/namespace").stdout == NS
    refused = lab.exec(NS, "token", "sh", "-c", f"echo x > {TOKEN_DIR}/token", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    # ConfigMaps: listed (the Role); Secrets: refused.
    said = lab.exec(NS, "token", "python3", "-c", IN_CLUSTER, NS).stdout.split()
    assert "hello" in said[0].split(",") and said[1] == "403"


def test_a_missing_service_account_holds_the_pod_until_it_exists(lab: Lab, k: Kubectl) -> None:
    k.out("apply", "-f", k.write("late.yaml", [pod("late", serviceAccountName="late-sa",
                                                   automountServiceAccountToken=True)]))

    def failed_mount() -> bool:
        events = json.loads(k.out("get", "events", "-n", NS, "-o", "json"))["items"]
        return any(e.get("reason") == "FailedMount" and '"late-sa" not found' in e["message"]
                   for e in events if e["involvedObject"]["name"] == "late")

    wait_for(failed_mount, timeout=60, what="a FailedMount event naming late-sa")
    assert not _running(k, "late")
    k.out("create", "serviceaccount", "late-sa", "-n", NS)
    wait_for(lambda: _running(k, "late"), timeout=60, what="late running once late-sa exists")
    assert lab.exec(NS, "late", "ls", f"{TOKEN_DIR}/token").returncode == 0


def test_a_pod_that_opts_out_gets_no_token(lab: Lab, k: Kubectl) -> None:
    spec = pod("none", automountServiceAccountToken=False,
               volumes=[{"name": "scratch", "emptyDir": {}}])
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/tmp"}]
    k.out("apply", "-f", k.write("none.yaml", [spec]))
    wait_for(lambda: _running(k, "none"), timeout=60, what="the opted-out pod running")
    assert lab.exec(NS, "none", "ls", TOKEN_DIR, check=False).returncode != 0
