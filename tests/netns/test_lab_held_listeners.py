"""The held-listener annotation on the session's lab: a hostNetwork pod annotated
``lab.tulle.io/held-listeners: waypoint`` gets the node's held waypoint sockets (the ones
spawn mode's waypoint serves, lab/listeners.py) under TULLE_LISTEN_FDS, still listening on
the node's waypoint address, as a waypoint DaemonSet pod will. Only Tulle's own hostNetwork
pods may: a tenant's pod with the annotation does not start and holds nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import labstatus
from lab.state import LabPaths
from lab.topology import WAYPOINT_PORT

from .conftest import Lab
from .test_datapath import wait_for
from .test_kubectl_lab import Kubectl, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "held-lab"
REPORT = """
import json, os, socket, time
value = os.environ["TULLE_LISTEN_FDS"]
fds = [int(e.rsplit("=", 1)[1]) for e in value.split(",")]
socks = [socket.socket(fileno=fd) for fd in fds]
print(json.dumps([[*s.getsockname(), s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]
                  for s in socks]), flush=True)
time.sleep(3600)
"""


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-held"), NS)


SYSTEM_NS = "tulle-system"


def _pod(namespace: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "wp", "namespace": namespace,
                         "annotations": {"lab.tulle.io/held-listeners": "waypoint"}},
            "spec": {"nodeName": "node1", "hostNetwork": True,
                     "containers": [{"name": "wp", "image": "tulle",
                                     "command": ["python3", "-c", REPORT]}]}}


def test_a_tenants_annotated_pod_gets_no_listener_and_does_not_start(k: Kubectl) -> None:
    k.out("apply", "-f", k.write("tenant.yaml", [_pod(NS)]))

    def waiting() -> dict[str, object] | None:
        pod = json.loads(k.out("get", "pod", "wp", "-n", NS, "-o", "json"))
        status = pod.get("status") or {}  # none until the kubelet first reports
        for c in status.get("containerStatuses") or []:
            if "waiting" in c.get("state", {}):
                return dict(c["state"]["waiting"])
        return None

    state = wait_for(lambda: (w := waiting()) and w.get("reason") == "CreateContainerConfigError"
                     and w, timeout=60, what="the tenant pod held in CreateContainerConfigError")
    assert "only hostNetwork pods of namespace tulle-system" in str(state.get("message"))
    assert f"namespace {NS}" in str(state.get("message"))


def test_an_annotated_pod_gets_the_nodes_waypoint_sockets(lab: Lab, k: Kubectl) -> None:
    try:
        _serves_the_held_sockets(lab, k)
    finally:
        k.run("delete", "pod", "wp", "-n", SYSTEM_NS, "--ignore-not-found", "--wait=false",
              ok=False)


def _serves_the_held_sockets(lab: Lab, k: Kubectl) -> None:
    k.out("apply", "-f", k.write("wp.yaml", [_pod(SYSTEM_NS)]))
    paths = LabPaths(lab.name, Path(lab.env["TULLE_STATE_DIR"]) / lab.name)
    log = paths.pod_log(SYSTEM_NS, "wp", "wp")  # the lab API server serves no pods/log
    logs = wait_for(lambda: log.exists() and log.read_text().strip(), timeout=60,
                    what="the pod's report in its log")
    got = json.loads(logs.splitlines()[0])
    plan = labstatus.load_plan(paths)
    assert plan is not None
    ports = sorted(port for _, port, _ in got)
    assert WAYPOINT_PORT in ports and len(ports) == 3  # L7 and the two HBONE ports
    assert all(listening == 1 for _, _, listening in got)
    assert {host for host, _, _ in got} == {str(plan.node("node1").waypoint_ip)}
