import ipaddress
import json
from typing import Any

from agent.model.convert import from_dict
from agent.model.core import Pod
from lab import kubelet as kubelet_mod
from lab import procs
from lab.kubelet import ContainerRuntime, Kubelet, PodRuntime, pod_status
from lab.podspec import container_argv, resolv_conf
from lab.state import LabPaths
from lab.topology import plan_lab


def _container(**spec):
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", **spec}]},
        }
    )
    assert isinstance(obj, Pod)
    return obj.spec.containers[0]


def test_no_command_runs_the_echo_server_on_declared_tcp_ports():
    argv, ready = container_argv(
        _container(ports=[{"containerPort": 9090}, {"containerPort": 53, "protocol": "UDP"}]), "/py"
    )
    assert argv == ("/py", "-m", "lab.echo.server", "--port", "9090")
    assert set(ready) == {(9090, "TCP"), (53, "UDP")}


def test_no_ports_means_echo_on_8080():
    argv, ready = container_argv(_container(), "/py")
    assert argv[-2:] == ("--port", "8080") and ready == ((8080, "TCP"),)


def test_command_and_args_run_as_given():
    argv, ready = container_argv(_container(command=["sleep"], args=["60"]), "/py")
    assert argv == ("sleep", "60") and ready == ()


def _runtime(*containers: ContainerRuntime, attached: bool = True) -> PodRuntime:
    node = plan_lab("t", 1).nodes[0]
    return PodRuntime(
        "uid",
        "shop",
        "p",
        node,
        "ns",
        ipaddress.IPv4Address("10.244.1.2"),
        "Always",
        list(containers),
        start_time="2026-11-22T10:00:00Z",
        host_veth="lxc0123456789a",
        attached=attached,
    )


def test_status_reports_crashloop_and_not_ready_while_restarting():
    c = ContainerRuntime("c", ("x",), {}, ((8080, "TCP"),), restarts=2)
    status = pod_status(_runtime(c), {"c": False})
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "CrashLoopBackOff"}}
    assert {"type": "Ready", "status": "False"} in status["conditions"]
    assert status["podIP"] == "10.244.1.2" and status["hostIP"] == "10.240.0.11"


def test_finished_containers_give_a_terminal_phase():
    ok = ContainerRuntime("c", ("x",), {}, (), finished=True, last_exit=0)
    bad = ContainerRuntime("d", ("x",), {}, (), finished=True, last_exit=3)
    assert pod_status(_runtime(ok), {})["phase"] == "Succeeded"
    assert pod_status(_runtime(ok, bad), {})["phase"] == "Failed"


def test_resolv_conf_searches_the_pod_namespace_first():
    conf = resolv_conf("shop")
    assert conf.splitlines() == [
        "nameserver 169.254.20.10",
        "search shop.svc.cluster.local svc.cluster.local cluster.local",
        "options ndots:5",
    ]


class _Statuses:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def update_status(self, kind: str, ns: str, name: str, status: dict[str, Any]) -> None:
        self.written.append(status)


def _gated_kubelet(tmp_path, probe, datapath=True):
    paths = LabPaths("t", tmp_path)
    paths.make_dirs()
    paths.lab_file.write_text(json.dumps({"name": "t", "nodes": 1, "datapath": datapath}))
    store = _Statuses()
    kubelet = Kubelet(plan_lab("t", 1), paths, store, probe=probe)  # type: ignore[arg-type]
    started: list[str] = []
    kubelet._start_container = lambda rt, c: started.append(c.name)  # type: ignore[method-assign]
    rt = _runtime(ContainerRuntime("c", ("x",), {}, ()), attached=kubelet.attached is None)
    kubelet.pods[rt.uid] = rt
    return kubelet, rt, store, started


def _condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_no_container_starts_before_the_datapath_is_attached(tmp_path):
    attached = {"now": False}
    probed: list[tuple[str, str]] = []

    def probe(node, veth):
        probed.append((node.name, veth))
        return attached["now"]

    kubelet, rt, store, started = _gated_kubelet(tmp_path, probe)
    for _ in range(3):
        rt.next_attach_check = 0.0
        kubelet.tick()
    assert started == [] and probed[0] == ("node1", "lxc0123456789a")
    status = store.written[-1]
    assert status["podIP"] == "10.244.1.2"  # written, so the agent can find the pod's veth
    sandbox = _condition(status, "PodReadyToStartContainers")
    assert sandbox["status"] == "False" and sandbox["reason"] == "WaitingForDatapath"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"

    attached["now"] = True
    rt.next_attach_check = 0.0
    kubelet.tick()
    assert started == ["c"]
    assert _condition(store.written[-1], "PodReadyToStartContainers")["status"] == "True"


def test_a_pod_never_attached_stays_unstarted_and_says_why(tmp_path):
    kubelet, rt, store, started = _gated_kubelet(tmp_path, lambda node, veth: False)
    rt.created_at -= kubelet_mod.ATTACH_TIMEOUT + 1
    kubelet.tick()
    assert started == []
    ready = _condition(store.written[-1], "Ready")
    assert ready["status"] == "False" and ready["reason"] == "DatapathNotAttached"
    assert "lxc0123456789a" in ready["message"] and "node1" in ready["message"]


def test_a_failing_probe_is_not_taken_for_attached(tmp_path):
    def probe(node, veth):
        raise OSError("netlink busy")

    kubelet, rt, store, started = _gated_kubelet(tmp_path, probe)
    kubelet.tick()
    assert started == [] and not rt.attached


def test_a_lab_without_the_datapath_starts_pods_at_once(tmp_path):
    kubelet, rt, store, started = _gated_kubelet(tmp_path, lambda n, v: False, datapath=False)
    kubelet.tick()
    assert started == ["c"]


def test_a_status_write_that_fails_stops_no_other_pod_and_is_retried(tmp_path):
    """The API server away for one write: every pod is still supervised this tick, the error
    reaches the loop (which backs off), and the status is written again next tick."""
    import pytest

    kubelet, first, store, started = _gated_kubelet(tmp_path, lambda n, v: True, datapath=False)
    second = _runtime(ContainerRuntime("d", ("x",), {}, ()), attached=True)
    second.uid, second.name = "uid2", "q"
    kubelet.pods[second.uid] = second
    failures = [ConnectionRefusedError("the API server is away")]
    written_before = store.update_status

    def flaky(kind, ns, name, status):
        if failures:
            raise failures.pop(0)
        written_before(kind, ns, name, status)

    store.update_status = flaky  # type: ignore[method-assign]
    with pytest.raises(ConnectionRefusedError):
        kubelet.tick()
    assert started == ["c", "d"]  # the second pod started although the first write failed
    assert first.last_status is None  # not taken for written
    kubelet.tick()
    assert first.last_status is not None and len(store.written) == 2


class _Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str, str, str]] = []

    def record(
        self, about: dict[str, str], reason: str, message: str, component: str, type_: str = "Normal"
    ) -> None:
        self.recorded.append((about["kind"], about["name"], reason, message, f"{component}/{type_}"))


class _Proc:
    pid = 1

    def __init__(self) -> None:
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode


def test_the_kubelet_records_a_started_container_and_a_crashed_one_backing_off(
    tmp_path, monkeypatch
):
    """As a cluster's kubelet: `kubectl describe pod` shows Started, then BackOff."""
    paths = LabPaths("t", tmp_path)
    paths.make_dirs()
    events = _Events()
    kubelet = Kubelet(
        plan_lab("t", 1), paths, _Statuses(), probe=lambda node, veth: True, events=events
    )  # type: ignore[arg-type]
    runs = iter([_Proc(), _Proc()])
    monkeypatch.setattr(procs, "spawn", lambda *a, **kw: (next(runs), None))
    rt = _runtime(ContainerRuntime("web", ("x",), {}, ()))
    kubelet.pods[rt.uid] = rt
    kubelet.tick()
    assert events.recorded == [("Pod", "p", "Started", "Started container web", "kubelet/Normal")]
    assert rt.containers[0].proc is not None
    rt.containers[0].proc.returncode = 1  # type: ignore[attr-defined]
    kubelet.tick()
    assert events.recorded[1] == (
        "Pod",
        "p",
        "BackOff",
        "Back-off restarting failed container web in pod p_shop(uid)",
        "kubelet/Warning",
    )
    assert len(events.recorded) == 2  # the restart waits out its back-off first
