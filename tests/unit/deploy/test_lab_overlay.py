"""The lab overlay's patches (deploy/overlays/lab): where a lab node differs from a cluster's
node, and nothing else. Each assertion is one row of the lab's flag table (lab/README.md)."""

from __future__ import annotations

from typing import Any

from tests.unit.deploy.rendered import one, render


def _container(objs: list[dict[str, Any]], workload: str, name: str) -> dict[str, Any]:
    pod = one(objs, "DaemonSet", workload)["spec"]["template"]["spec"]
    [found] = [c for c in pod["containers"] if c["name"] == name]
    return found


def test_metrics_stay_on_the_node_loopback_in_the_lab_only() -> None:
    lab, prod = render("lab"), render("production")
    assert "--metrics-address=127.0.0.1:9965" in _container(lab, "tulle-agent", "agent")["args"]
    assert "--metrics-address=$(HOST_IP):9965" in _container(prod, "tulle-agent", "agent")["args"]
    for name in ("waypoint", "waypoint-standby"):
        c = _container(lab, "tulle-waypoint", name)
        assert "--metrics-address=127.0.0.1:9966" in c["args"]
        assert c["livenessProbe"]["httpGet"]["host"] == "127.0.0.1"
        assert c["readinessProbe"]["httpGet"]["host"] == "127.0.0.1"
    assert not any("HOST_IP" in a for c in ("waypoint", "waypoint-standby")
                   for a in _container(lab, "tulle-waypoint", c)["args"])


def test_the_agent_announces_on_the_node_uplink() -> None:
    assert "--announce-interface=eth0" in _container(render("lab"), "tulle-agent", "agent")["args"]
    assert not any(a.startswith("--announce-interface")
                   for a in _container(render("production"), "tulle-agent", "agent")["args"])


def test_the_waypoint_pair_shares_a_lock_on_the_pod_tmp_and_the_held_listeners() -> None:
    objs = render("lab")
    template = one(objs, "DaemonSet", "tulle-waypoint")["spec"]["template"]
    assert template["metadata"]["annotations"] == {"lab.tulle.io/held-listeners": "waypoint"}
    active = _container(objs, "tulle-waypoint", "waypoint")
    standby = _container(objs, "tulle-waypoint", "waypoint-standby")
    assert "--active-lock=/tmp/waypoint.lock" in active["args"]
    assert "--standby" not in active["args"]
    assert standby["args"][-2:] == ["--active-lock=/tmp/waypoint.lock", "--standby"]
    # the same process otherwise: command, mounts, grants
    assert standby["command"] == active["command"]
    assert standby["volumeMounts"] == active["volumeMounts"]
    assert standby["securityContext"] == active["securityContext"]
    assert [a for a in standby["args"] if a != "--standby"] == active["args"]
    tmp = {m["name"]: m["mountPath"] for m in active["volumeMounts"]}["tmp"]
    assert tmp == "/tmp"


def test_the_identity_service_is_headless_in_the_lab_and_the_relay_is_the_lab_s() -> None:
    lab, prod = render("lab"), render("production")
    assert one(lab, "Service", "tulle-controlplane")["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in one(prod, "Service", "tulle-controlplane")["spec"]
    assert one(lab, "Deployment", "tulle-relay")["spec"]["replicas"] == 0
