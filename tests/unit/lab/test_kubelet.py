import ipaddress

from agent.lab.kubelet import ContainerRuntime, PodRuntime, container_argv, pod_status, resolv_conf
from agent.lab.topology import plan_lab
from agent.model.convert import from_dict
from agent.model.core import Pod


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
    assert argv == ("/py", "-m", "agent.lab.echo", "--port", "9090")
    assert set(ready) == {(9090, "TCP"), (53, "UDP")}


def test_no_ports_means_echo_on_8080():
    argv, ready = container_argv(_container(), "/py")
    assert argv[-2:] == ("--port", "8080") and ready == ((8080, "TCP"),)


def test_command_and_args_run_as_given():
    argv, ready = container_argv(_container(command=["sleep"], args=["60"]), "/py")
    assert argv == ("sleep", "60") and ready == ()


def _runtime(*containers: ContainerRuntime) -> PodRuntime:
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
