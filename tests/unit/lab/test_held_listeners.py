"""The held-listener annotation (lab.tulle.io/held-listeners: waypoint): the kubelet passes
the node's held waypoint sockets (lab/listeners.py) to each container of such a pod, under
the same fd numbers with TULLE_LISTEN_FDS naming them, at every start, so a waypoint run as
a DaemonSet pod serves spawn mode's addresses and keeps them across its restarts."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab import listeners
from lab.components import role

from .kubelet_harness import make_kubelet, until

HELD = {role("waypoint", "node1"): "10.0.0.1:15001=7,10.0.0.1:15008=9"}
# Reports what it was given: TULLE_LISTEN_FDS, and each named fd's socket (still listening).
REPORT = """
import json, os, socket, sys
value = os.environ.get("TULLE_LISTEN_FDS", "")
fds = [int(e.rsplit("=", 1)[1]) for e in value.split(",") if e]
socks = [socket.socket(fileno=fd) for fd in fds]
got = [[s.getsockname()[1], s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]
       for s in socks]
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"value": value, "socks": got}) + "\\n")
sys.exit(3)
"""


def test_the_annotation_picks_the_nodes_waypoint_sockets() -> None:
    annotated = {listeners.HELD_ANNOTATION: "waypoint"}
    system = {"namespace": "tulle-system", "host_network": True}
    assert listeners.pod_listeners(annotated, "node1", HELD, **system) == (
        "10.0.0.1:15001=7,10.0.0.1:15008=9", (7, 9), "")
    assert listeners.pod_listeners({}, "node1", HELD, **system) == ("", (), "")
    assert listeners.pod_listeners(annotated, "node2", HELD, **system) == ("", (), "")
    assert listeners.pod_listeners(annotated, "node1", {}, **system) == ("", (), "")
    _, _, error = listeners.pod_listeners({listeners.HELD_ANNOTATION: "gateway"}, "node1", HELD,
                                          **system)
    assert error == ("annotation lab.tulle.io/held-listeners: unsupported value 'gateway' "
                     "(supported: waypoint)")


@pytest.mark.parametrize(("namespace", "host_network"), [
    ("tenant", True), ("tulle-system", False), ("kube-system", True)])
def test_no_other_pod_gets_the_waypoints_sockets(namespace: str, host_network: bool) -> None:
    # A tenant's pod holding them would accept connections the datapath redirects to the
    # waypoint: the annotation is honoured only for Tulle's own hostNetwork pods.
    annotated = {listeners.HELD_ANNOTATION: "waypoint"}
    value, fds, error = listeners.pod_listeners(annotated, "node1", HELD, namespace=namespace,
                                                host_network=host_network)
    assert (value, fds) == ("", ())
    assert error.startswith("annotation lab.tulle.io/held-listeners: only hostNetwork pods "
                            "of namespace tulle-system")
    assert f"namespace {namespace}, hostNetwork {str(host_network).lower()}" in error


@pytest.fixture
def held() -> Iterator[list[socket.socket]]:
    socks = [listeners._listen("127.0.0.1", 0), listeners._listen("127.0.0.1", 0)]
    yield socks
    for sock in socks:
        sock.close()


def test_each_start_gets_the_held_sockets(tmp_path: Path, held: list[socket.socket]) -> None:
    out = tmp_path / "report"
    spec = {"hostNetwork": True, "nodeName": "node1", "restartPolicy": "OnFailure",
            "containers": [{"name": "wp", "command": [sys.executable, "-c", REPORT, str(out)]}]}
    pod = from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "wp", "namespace": "tulle-system", "uid": "u1",
        "annotations": {listeners.HELD_ANNOTATION: "waypoint"}}, "spec": spec})
    assert isinstance(pod, Pod)
    kubelet, _, _ = make_kubelet(tmp_path, pod)
    kubelet.pods.clear()  # through the kubelet's own pod set-up instead
    value = listeners.listen_fds(held)
    kubelet.held = {role("waypoint", "node1"): value}
    rt = kubelet._create(pod)
    kubelet.pods[rt.uid] = rt
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["restartCount"] >= 1
          and out.exists() and len(out.read_text().splitlines()) >= 2)
    kubelet.shutdown()
    ports = sorted(s.getsockname()[1] for s in held)
    for line in out.read_text().splitlines()[:2]:  # the first start and a restart
        got = json.loads(line)
        assert got["value"] == value
        assert sorted(port for port, _ in got["socks"]) == ports
        assert all(listening == 1 for _, listening in got["socks"])
