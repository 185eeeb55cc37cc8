from lab.controllers.endpointslice import MANAGED_BY, desired_slices

from .factories import pod, service

NAMED = [{"name": "http", "containerPort": 8080}]


def test_ready_and_unready_pods_become_endpoints_with_conditions():
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http"}])
    pods = [
        pod("a", labels={"app": "web"}, node="node1", ip="10.244.1.2", ports=NAMED),
        pod("b", labels={"app": "web"}, node="node2", ip="10.244.2.2", ports=NAMED, ready=False),
    ]
    (slc,) = desired_slices(svc, pods)
    assert slc["metadata"]["labels"] == {
        "kubernetes.io/service-name": "web",
        "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
    }
    assert slc["ports"] == [{"name": "http", "protocol": "TCP", "port": 8080}]
    eps = {ep["addresses"][0]: ep for ep in slc["endpoints"]}
    assert eps["10.244.1.2"]["conditions"] == {"ready": True, "serving": True, "terminating": False}
    assert eps["10.244.2.2"]["conditions"]["ready"] is False
    assert eps["10.244.2.2"]["nodeName"] == "node2"
    assert eps["10.244.1.2"]["targetRef"]["name"] == "a"


def test_named_target_ports_resolving_differently_split_slices():
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "http"}])
    pods = [
        pod("a", labels={"app": "web"}, ip="10.244.1.2", ports=NAMED),
        pod(
            "b",
            labels={"app": "web"},
            ip="10.244.1.3",
            ports=[{"name": "http", "containerPort": 9090}],
        ),
    ]
    slices = desired_slices(svc, pods)
    assert sorted(s["ports"][0]["port"] for s in slices) == [8080, 9090]
    assert len({s["metadata"]["name"] for s in slices}) == 2


def test_selection_needs_labels_namespace_and_an_ip():
    svc = service()
    pods = [
        pod("nolabel", ip="10.244.1.2"),
        pod("noip", labels={"app": "web"}),
        pod("other-ns", ns="elsewhere", labels={"app": "web"}, ip="10.244.1.4"),
        pod("ok", labels={"app": "web"}, ip="10.244.1.5"),
    ]
    (slc,) = desired_slices(svc, pods)
    assert [ep["addresses"] for ep in slc["endpoints"]] == [["10.244.1.5"]]


def test_service_without_selector_gets_no_managed_slice():
    assert (
        desired_slices(service(selector={}), [pod("a", labels={"app": "web"}, ip="10.244.1.2")])
        == []
    )
