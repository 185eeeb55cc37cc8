"""A lab with Tulle installed from deploy/ (`tulle lab up --install manifests`, the CLI's
default): the real kubectl applies deploy/overlays/lab, and the lab kubelet runs the agents and waypoints as DaemonSet
pods on every node and the CA and tulle-controller as Deployments.

One two-node lab of its own (module scope). Its tests, in file order: the install is what
`kubectl get ds,deploy` shows and nothing is lab-spawned; a pod reaches a Service through
the DaemonSet's datapath; deleting an agent pod gets it recreated while a TCP stream opened
before keeps flowing (the new agent adopts the pinned maps); a verb removed from the agent's
ClusterRole is a denial the new agent's log names, and the agent recovers once it is back;
an HTTPRoute is served by the waypoint DaemonSet, its status written by tulle-controller; a
rolling update of the agent DaemonSet (`kubectl rollout restart`) loses no L4 connection.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lab import components, lifecycle, network, procs
from lab.install import kubectl_binary
from lab.state import BPF_PIN_ROOT, LabPaths

from . import clients
from .conftest import Lab, new_lab_env
from .test_datapath import PY, apply, deployment, namespace, pods_of, service, wait_for

pytestmark = [pytest.mark.root, pytest.mark.netns]

NS = "frommanifests"
SYSTEM = "tulle-system"
# Reads one stream until told to stop on stdin ("mark" first): bytes before and after the
# mark, and whether the connection ever failed. Stdlib only (runs in a lab pod).
MARKED_STREAM = r"""
import json, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
pod = s.makefile("rb").readline().strip().decode()
print(json.dumps({"ready": pod}), flush=True)
state = {"bytes": 0, "at_mark": None, "error": None}
def read():
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                state["error"] = "closed"
                return
            state["bytes"] += len(chunk)
    except OSError as e:
        state["error"] = repr(e)
threading.Thread(target=read, daemon=True).start()
for line in sys.stdin:
    if line.strip() == "mark":
        state["at_mark"] = state["bytes"]
    elif line.strip() == "stop":
        break
print(json.dumps(state), flush=True)
"""


@pytest.fixture(scope="module")
def mlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    name = "test" + secrets.token_hex(3)
    state = tmp_path_factory.mktemp("tulle-manifests-state")
    mp = pytest.MonkeyPatch()
    mp.setenv("TULLE_STATE_DIR", str(state))
    try:
        lifecycle.up(name, 2, lambda _m: None, mode="manifests")
        yield Lab(name, new_lab_env(state, name))
    finally:
        removed = lifecycle.down(name, lambda _m: None)
        mp.undo()
        assert any(item.startswith("state ") for item in removed)
        assert not (state / name).exists()  # node roots, pod dirs, the generated overlay
        assert not (BPF_PIN_ROOT / name).exists()
        assert network.lab_namespaces(f"tulle-{name}-") == []


def _kubectl(lab: Lab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    kubeconfig = lifecycle.kubeconfig_path(lab.name)
    done = subprocess.run([str(kubectl_binary()), "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert not check or done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def _agent_pod(lab: Lab, node: str) -> dict[str, Any] | None:
    found = [p for p in lab.get("pods", SYSTEM)
             if p["metadata"]["labels"].get("app.kubernetes.io/name") == "tulle-agent"
             and p["spec"].get("nodeName") == node and not p["metadata"].get("deletionTimestamp")]
    return found[0] if len(found) == 1 else None


def test_the_daemonsets_and_deployments_are_what_runs_tulle(mlab: Lab) -> None:
    paths = LabPaths.for_lab(mlab.name)
    assert json.loads(paths.lab_file.read_text())["install"] == "manifests"
    table = _kubectl(mlab, "get", "ds,deploy", "-n", SYSTEM).stdout
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()
            if line.startswith(("daemonset", "deployment"))}
    assert rows["daemonset.apps/tulle-agent"][:3] == ["2", "2", "2"], table  # desired/current/ready
    assert rows["daemonset.apps/tulle-waypoint"][:3] == ["2", "2", "2"], table
    assert rows["deployment.apps/tulle-controlplane"][0] == "1/1", table
    assert rows["deployment.apps/tulle-controller"][0] == "1/1", table
    pods = mlab.get("pods", SYSTEM)
    for app in ("tulle-agent", "tulle-waypoint"):
        on = sorted(p["spec"]["nodeName"] for p in pods
                    if p["metadata"]["labels"].get("app.kubernetes.io/name") == app)
        assert on == ["node1", "node2"], pods
    # Nothing of Tulle is lab-spawned: the lab's processes are its own.
    roles = {r.role for r in procs.load_records(paths.procs)}
    assert roles == {"apiserver", "controller", "relay", "dns-node1", "dns-node2"}, roles
    for node in ("node1", "node2"):  # the pod's /sys/fs/bpf/tulle, in the node's bpffs share
        pins = components.pin_dir(paths, node)
        assert pins == BPF_PIN_ROOT / mlab.name / node / "tulle" and any(pins.iterdir())
        health = json.loads(components.agent_health(paths, node).read_text())
        assert health["node"] == node and health["ready"] is True
    status = mlab.tulle("lab", "status").stdout
    assert "healthy" in status.splitlines()[0], status


def test_a_pod_reaches_a_service_through_the_daemonset_s_datapath(mlab: Lab) -> None:
    apply(mlab, namespace(NS),
          deployment(NS, "stream", 1, command=[PY, "-c", clients.STREAM_SERVER],
                     ports=[{"name": "s", "containerPort": 9000}], node="node1"),
          service(NS, "stream", port=9000, target="s"),
          deployment(NS, "echo", 1, node="node1"), service(NS, "echo"),
          deployment(NS, "client", 1, node="node2"))
    mlab.wait_pods_ready(NS, 3, timeout=120)
    client = pods_of(mlab, NS, "client")[0]["metadata"]["name"]
    [echo] = pods_of(mlab, NS, "echo")
    out = wait_for(lambda: (p := mlab.exec(NS, client, "curl", "-s", "--max-time", "2",
                                           f"http://echo.{NS}/", check=False)).returncode == 0
                   and p.stdout, timeout=30, what="the Service answers")
    assert json.loads(out)["pod"] == echo["metadata"]["name"]
    # The lab relay reads the DaemonSet agents' observer sockets (in each node's root).
    def flows_to_echo() -> set[str]:
        lines = mlab.tulle("observe", "--last", "500", "-o", "json").stdout.splitlines()
        records = [json.loads(line) for line in lines if line]
        return {r["node_name"] for r in records
                if (r["flow"].get("destination") or {}).get("pod_name") == echo["metadata"]["name"]}

    assert wait_for(flows_to_echo, timeout=20, what="the request's flows in tulle observe")


def test_l7_through_the_waypoint_daemonset_and_status_from_tulle_controller(mlab: Lab) -> None:
    """An HTTPRoute on the Service: a header picks the backend (only the waypoint pod,
    serving the node's held listeners, can do that), and the route's status is written by
    the tulle-controller Deployment, the lab controller having left it that work."""
    apply(mlab, deployment(NS, "v2", 1, node="node1"), service(NS, "v2"), {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "split", "namespace": NS},
        "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": "echo", "port": 80}],
                 "rules": [{"matches": [{"headers": [{"name": "x-version", "value": "v2"}]}],
                            "backendRefs": [{"name": "v2", "port": 80}]},
                           {"backendRefs": [{"name": "echo", "port": 80}]}]}})
    mlab.wait_pods_ready(NS, 4, timeout=120)
    client = pods_of(mlab, NS, "client")[0]["metadata"]["name"]

    def pod_for(*headers: str) -> str | None:
        args = [a for h in headers for a in ("-H", h)]
        r = mlab.exec(NS, client, "curl", "-s", "--max-time", "3", *args, f"http://echo.{NS}/",
                      check=False)
        return json.loads(r.stdout)["pod"] if r.returncode == 0 and r.stdout else None

    wait_for(lambda: (pod_for("x-version: v2") or "").startswith("v2-"), timeout=60,
             what="the waypoint routes by header")
    assert (pod_for() or "").startswith("echo-")

    def accepted() -> bool:
        [route] = mlab.get("httproutes", NS)
        return any(c["type"] == "Accepted" and c["status"] == "True"
                   for p in (route.get("status") or {}).get("parents") or []
                   for c in p.get("conditions") or [])

    wait_for(accepted, timeout=30, what="the route's Accepted status")
    # Status work is the Lease holder's, and only the tulle-controller pod contends for it.
    lease = json.loads(_kubectl(mlab, "get", "lease", "tulle-controller", "-n", SYSTEM,
                                "-o", "json").stdout)
    [controller] = [p for p in mlab.get("pods", SYSTEM)
                    if p["metadata"]["labels"].get("app.kubernetes.io/name") == "tulle-controller"]
    assert lease["spec"]["holderIdentity"].startswith(controller["metadata"]["name"] + "_"), lease


def test_deleting_an_agent_pod_recreates_it_and_streams_keep_flowing(mlab: Lab) -> None:
    paths = LabPaths.for_lab(mlab.name)
    client = pods_of(mlab, NS, "client")[0]["metadata"]["name"]
    stream = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "lab", "exec", "-n", NS, client, "--",
         PY, "-c", MARKED_STREAM, f"stream.{NS}", "9000"],
        env=mlab.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert stream.stdin is not None and stream.stdout is not None
    try:
        assert json.loads(stream.stdout.readline())["ready"].startswith("stream-")
        for node in ("node2", "node1"):  # the client's node, then the server's
            old = _agent_pod(mlab, node)
            assert old is not None
            mlab.tulle("delete", "pod", old["metadata"]["name"], "-n", SYSTEM)
            new = wait_for(lambda n=node, o=old: (p := _agent_pod(mlab, n)) is not None
                           and p["metadata"]["uid"] != o["metadata"]["uid"] and _ready(p) and p,
                           timeout=120, what=f"a new ready agent pod on {node}")
            # it adopted the pinned programs instead of compiling them again
            log = paths.pod_log(SYSTEM, new["metadata"]["name"], "agent").read_text()
            assert "datapath: adopted the programs pinned in" in log, log[-3000:]
        stream.stdin.write("mark\n")
        stream.stdin.flush()
        time.sleep(1.0)  # the server sends a chunk every 50 ms
        stream.stdin.write("stop\n")
        stream.stdin.flush()
        result = json.loads(stream.stdout.readline())
    finally:
        stream.kill()
        stream.wait(timeout=10)
    assert result["error"] is None, result
    assert result["at_mark"] is not None and result["bytes"] > result["at_mark"], result
    # and new connections work through the new agents
    out = mlab.exec(NS, client, "curl", "-s", "--max-time", "3", f"http://echo.{NS}/").stdout
    assert json.loads(out)["namespace"] == NS


def test_a_verb_removed_from_the_agent_role_is_a_named_denial(mlab: Lab) -> None:
    """RBAC is the API server's, from deploy/daemonset/rbac.yaml: take `list` on
    EndpointSlices away and a new agent cannot sync, says why, and is not Ready; give it
    back and the same agent recovers."""
    paths = LabPaths.for_lab(mlab.name)
    _kubectl(mlab, "patch", "clusterrole", "tulle-agent", "--type=json", "-p", json.dumps([
        {"op": "test", "path": "/rules/1/resources", "value": ["endpointslices"]},
        {"op": "replace", "path": "/rules/1/verbs", "value": ["watch"]}]))
    try:
        old = _agent_pod(mlab, "node1")
        assert old is not None
        mlab.tulle("delete", "pod", old["metadata"]["name"], "-n", SYSTEM)
        new = wait_for(lambda: (p := _agent_pod(mlab, "node1")) is not None
                       and p["metadata"]["uid"] != old["metadata"]["uid"] and p,
                       timeout=60, what="a new agent pod on node1")
        log_file = paths.pod_log(SYSTEM, new["metadata"]["name"], "agent")
        denial = wait_for(lambda: log_file.exists() and next(
            (line for line in log_file.read_text().splitlines()
             if "EndpointSlice" in line and "forbidden" in line), None),
            timeout=60, what="the denial in the new agent's log")
        assert "cannot list" in denial and "tulle-agent" in denial, denial
        assert not _ready(_agent_pod(mlab, "node1") or {})
    finally:
        _kubectl(mlab, "patch", "clusterrole", "tulle-agent", "--type=json", "-p", json.dumps([
            {"op": "replace", "path": "/rules/1/verbs", "value": ["list", "watch"]}]))
    recovered = wait_for(lambda: (p := _agent_pod(mlab, "node1")) is not None and _ready(p)
                         and p, timeout=90, what="the agent ready once the verb is back")
    assert recovered["metadata"]["uid"] == new["metadata"]["uid"]  # no restart was needed


def _agent_outages(events: str, nodes: tuple[str, ...]) -> list[tuple[str, float, float]]:
    """(node, from, to) for each time a node had no Ready agent pod that was not being
    deleted, replayed from `kubectl get pods -w --output-watch-events -o json` lines that
    `_watch_lines` stamped with their arrival time. The count starts once every node has
    been seen serving (the watch opens with an ADDED event per existing pod)."""
    pods: dict[str, dict[str, Any]] = {}
    down: dict[str, float] = {}
    started = False
    out: list[tuple[str, float, float]] = []
    at = 0.0
    for line in events.splitlines():
        at_text, _, body = line.partition(" ")
        at, event = float(at_text), json.loads(body)
        obj = event["object"]
        if event["type"] == "DELETED":
            pods.pop(obj["metadata"]["uid"], None)
        else:
            pods[obj["metadata"]["uid"]] = obj
        serving = {p["spec"].get("nodeName") for p in pods.values()
                   if _ready(p) and not p["metadata"].get("deletionTimestamp")}
        started = started or serving >= set(nodes)
        for node in nodes if started else ():
            if node not in serving and node not in down:
                down[node] = at
            elif node in serving and node in down:
                out.append((node, down.pop(node), at))
    return out + [(node, since, at) for node, since in down.items()]


def _watch_lines(proc: subprocess.Popen[str], sink: list[str]) -> None:
    """Each watch event kubectl prints (JSON objects, one after another), one line each,
    prefixed with the wall time it arrived."""
    decoder, buffer = json.JSONDecoder(), ""
    assert proc.stdout is not None
    for text in proc.stdout:
        buffer += text
        while buffer.strip():
            try:
                obj, end = decoder.raw_decode(buffer.lstrip())
            except ValueError:
                break
            sink.append(f"{time.time():.3f} {json.dumps(obj)}")
            buffer = buffer.lstrip()[end:]


def test_a_rolling_update_of_the_agent_daemonset_loses_no_l4_request(mlab: Lab) -> None:
    """`kubectl rollout restart ds/tulle-agent` replaces every node's agent, one node at a
    time (maxUnavailable 1), while a client on node2 opens connection after connection to a
    ClusterIP whose backend is on node1 and reads one long stream: the pinned programs and
    maps keep the datapath up while a node has no agent, and the new agent adopts them."""
    paths = LabPaths.for_lab(mlab.name)
    [stream_svc] = [s for s in mlab.get("services", NS) if s["metadata"]["name"] == "stream"]
    cluster_ip = stream_svc["spec"]["clusterIP"]
    client = pods_of(mlab, NS, "client")[0]["metadata"]["name"]
    nodes = ("node1", "node2")
    old = {node: _agent_pod(mlab, node) for node in nodes}
    assert all(p is not None and _ready(p) for p in old.values()), old
    events: list[str] = []
    watch = subprocess.Popen(
        [str(kubectl_binary()), "--kubeconfig", str(lifecycle.kubeconfig_path(mlab.name)),
         "get", "pods", "-n", SYSTEM, "-l", "app.kubernetes.io/name=tulle-agent", "-w",
         "--output-watch-events", "-o", "json"], stdout=subprocess.PIPE, text=True)
    reader = threading.Thread(target=_watch_lines, args=(watch, events), daemon=True)
    reader.start()
    load = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.main", "lab", "exec", "-n", NS, client, "--",
         PY, "-c", clients.L4_LOAD, cluster_ip, "9000", "400"],
        env=mlab.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert load.stdin is not None and load.stdout is not None
    try:
        assert json.loads(load.stdout.readline())["ready"].startswith("stream-")
        time.sleep(2.0)
        _kubectl(mlab, "-n", SYSTEM, "rollout", "restart", "ds/tulle-agent")
        done = subprocess.run(
            [str(kubectl_binary()), "--kubeconfig", str(lifecycle.kubeconfig_path(mlab.name)),
             "-n", SYSTEM, "rollout", "status", "ds/tulle-agent", "--timeout=300s"],
            capture_output=True, text=True, timeout=320, check=False)
        assert done.returncode == 0, f"rollout status: {done.stdout}{done.stderr}"
        time.sleep(2.0)
        load.stdin.write("stop\n")
        load.stdin.flush()
        result = json.loads(load.stdout.readline())
    finally:
        load.kill()
        load.wait(timeout=10)
        watch.kill()
        watch.wait(timeout=10)
    reader.join(timeout=10)
    assert 'daemon set "tulle-agent" successfully rolled out' in done.stdout, done.stdout
    new = {node: _agent_pod(mlab, node) for node in nodes}
    for node in nodes:  # every node's agent was replaced, and the new one is Ready
        was, now = old[node], new[node]
        assert was is not None and now is not None and _ready(now), (node, now)
        assert now["metadata"]["uid"] != was["metadata"]["uid"], f"{node}'s agent not replaced"
        log = paths.pod_log(SYSTEM, now["metadata"]["name"], "agent").read_text()
        assert "datapath: adopted the programs pinned in" in log, log[-3000:]
    outages = _agent_outages("\n".join(events), nodes)
    assert {node for node, _, _ in outages} == set(nodes), outages  # each node went through one
    for node, start, end in outages:  # never two nodes without their agent at once
        overlapping = [o for o in outages if o[0] != node and o[1] < end and start < o[2]]
        assert not overlapping, (node, start, end, overlapping)
    ok, fails = result["ok"], result["fails"]
    during = [t for t in ok if any(start <= t <= end for _, start, end in outages)]
    assert not fails, f"{len(fails)} of {len(ok) + len(fails)} new connections failed: {fails[:10]}"
    assert result["stream"]["error"] is None, result["stream"]
    # The load ran through the rollout, including while a node had no agent.
    assert len(ok) >= 200 and len(during) >= 20, (
        f"{len(ok)} connections, {len(during)} while a node had no agent ({outages})")
    print(f"rolling update: {len(ok)} new connections, {len(during)} while a node had no "
          f"agent, 0 failed; stream {result['stream']['bytes']} bytes unbroken; "
          f"outages {[(n, round(e - s, 1)) for n, s, e in outages]}")
