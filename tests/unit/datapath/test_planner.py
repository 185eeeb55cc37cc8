"""The incremental planner equals a full replan, after any sequence of object changes.

Objects come from a small universe (few names, few addresses) so that random sequences
create and break the interesting cases: Services contesting one ClusterIP and port, slices
moving between Services, IPv6 slices, terminating endpoints, pods changing identity or node,
policies, Nodes claiming waypoint addresses, routes turning ports L7, namespaces enrolled in
mTLS and PeerAuthentications (mesh, namespace, workload, port-level) changing pods' modes.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.datapath.desired import DesiredDatapath, desired_datapath, l7_keys, view_of
from agent.datapath.external import node_site
from agent.datapath.planner import Change, Planner
from agent.model.convert import ConversionError, from_dict
from agent.model.resource import Resource
from gatewayapi import RouteCompiler

NODE = "n1"
WAYPOINT = (IPv4Address("10.244.1.254"), 15001)
NAMESPACES = ("a", "b")
NAMES = ("x", "y")
VIPS = ("10.96.0.1", "10.96.0.2", "None", "fd00::10")
POD_IPS = ("10.244.1.2", "10.244.1.3", "10.244.2.2", "10.244.2.3")
PORTS = (
    {"name": "http", "port": 80, "targetPort": 8080},
    {"name": "dns", "port": 53, "protocol": "UDP"},
    {"port": 80, "targetPort": 9090},
)
HTTP, DNS = {"name": "http", "port": 8080}, {"name": "dns", "port": 5353, "protocol": "UDP"}
SLICE_PORTS = ([HTTP], [HTTP], [HTTP, DNS], [{"name": "", "port": 9090}], [])

names = st.sampled_from(NAMES)
namespaces = st.sampled_from(NAMESPACES)
labels = st.dictionaries(st.sampled_from(("app", "tier")), st.sampled_from(("x", "y")), max_size=2)


@st.composite
def services(draw: Any) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(range(len(PORTS))), min_size=1, max_size=3, unique=True))
    ports = [dict(PORTS[i]) for i in chosen]
    if len(ports) > 1:  # several ports must all be named
        ports = [{**p, "name": p.get("name", "alt")} for p in ports]
    spec: dict[str, Any] = {"clusterIP": draw(st.sampled_from(VIPS)), "ports": ports}
    if draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {}, "spec": spec}


@st.composite
def endpoint_slices(draw: Any) -> dict[str, Any]:
    owner = draw(st.one_of(st.none(), names))
    ipv6 = draw(st.integers(0, 9)) == 0
    endpoints = [
        {
            "addresses": ["fd00::1" if ipv6 else draw(st.sampled_from(POD_IPS))],
            "conditions": {
                "ready": draw(st.sampled_from((True, True, False))),
                "serving": draw(st.booleans()),
                "terminating": draw(st.booleans()),
            },
        }
        for _ in range(draw(st.integers(0, 3)))
    ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"labels": {"kubernetes.io/service-name": owner} if owner else {}},
        "addressType": "IPv6" if ipv6 else "IPv4",
        "endpoints": endpoints,
        "ports": draw(st.sampled_from(SLICE_PORTS)),
    }


@st.composite
def pods(draw: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": draw(labels)},
        "spec": {
            "nodeName": draw(st.sampled_from(("n1", "n2"))),
            "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}],
        },
        "status": {
            "podIP": draw(st.sampled_from(POD_IPS)),
            "phase": draw(st.sampled_from(("Running", "Running", "Succeeded"))),
        },
    }


@st.composite
def policies(draw: Any) -> dict[str, Any]:
    peer = {"podSelector": {"matchLabels": draw(labels)}}
    rule = {"from": [peer], "ports": [{"port": draw(st.sampled_from((8080, "http")))}]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {},
        "spec": {
            "podSelector": {"matchLabels": draw(labels)},
            "policyTypes": draw(st.sampled_from((["Ingress"], ["Ingress", "Egress"]))),
            "ingress": [rule],
        },
    }


MODES = ("UNSET", "DISABLE", "PERMISSIVE", "STRICT")


@st.composite
def peer_authentications(draw: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["mtls"] = {"mode": draw(st.sampled_from(MODES))}
    selector = draw(labels)
    if selector:
        spec["selector"] = {"matchLabels": selector}
        if draw(st.booleans()):
            spec["portLevelMtls"] = {
                str(port): {"mode": draw(st.sampled_from(MODES))}
                for port in draw(st.lists(st.sampled_from((8080, 9090)), max_size=2, unique=True))
            }
    created = draw(st.sampled_from(("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", None)))
    meta = {"creationTimestamp": created} if created else {}
    return {"apiVersion": "security.tulle.io/v1", "kind": "PeerAuthentication",
            "metadata": meta, "spec": spec}


@st.composite
def authorization_policies(draw: Any) -> dict[str, Any]:
    """Selector, namespace-wide or targetRefs: they guard pods and steer Services."""
    spec: dict[str, Any] = {"action": draw(st.sampled_from(("ALLOW", "DENY")))}
    how = draw(st.integers(0, 2))
    if how == 0:
        spec["selector"] = {"matchLabels": draw(labels)}
    elif how == 1:
        spec["targetRefs"] = [{"kind": "Service", "name": draw(names)}]
    return {"apiVersion": "security.tulle.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {}, "spec": spec}


@st.composite
def nodes(draw: Any) -> dict[str, Any]:
    internal = draw(st.sampled_from(("10.240.0.2", "10.240.0.3", "10.244.1.254")))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {},
        "spec": {"podCIDR": draw(st.sampled_from(("10.244.1.0/24", "10.244.2.0/24")))},
        "status": {"addresses": [{"type": "InternalIP", "address": internal}]},
    }


@st.composite
def routes(draw: Any) -> dict[str, Any]:
    parent: dict[str, Any] = {"group": "", "kind": "Service", "name": draw(names)}
    if draw(st.booleans()):
        parent["port"] = 80
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {},
        "spec": {"parentRefs": [parent], "rules": [{"backendRefs": [{"name": "x", "port": 80}]}]},
    }


@st.composite
def targeted_policies(draw: Any, kind: str) -> dict[str, Any]:
    """A rate limit or BackendTrafficPolicy: it steers the Service it names to the waypoint."""
    target = {"group": "", "kind": "Service", "name": draw(names)}
    if kind == "HTTPLocalRateLimitPolicy":
        return {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "HTTPLocalRateLimitPolicy",
                "metadata": {}, "spec": {"targetRefs": [target], "total": {"requestsPerSecond": 5}}}
    return {"apiVersion": "policy.tulle.io/v1alpha1", "kind": "BackendTrafficPolicy",
            "metadata": {}, "spec": {"targetRefs": [target]}}


@st.composite
def l4_routes(draw: Any) -> dict[str, Any]:
    """A TCPRoute or UDPRoute on the Gateway "a/x" or "b/y", to weighted Services."""
    kind = draw(st.sampled_from(("TCPRoute", "UDPRoute")))
    parent = {"name": draw(names), "namespace": draw(namespaces)}
    refs = [{"name": n, "port": draw(st.sampled_from((80, 53))), "weight": draw(st.integers(0, 3))}
            for n in draw(st.lists(names, min_size=1, max_size=2, unique=True))]
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": kind, "metadata": {},
            "spec": {"parentRefs": [parent], "rules": [{"backendRefs": refs}]}}


@st.composite
def gateways(draw: Any) -> dict[str, Any]:
    listeners = [{"name": "t", "port": 80, "protocol": "TCP"},
                 {"name": "u", "port": 53, "protocol": "UDP"}]
    if draw(st.booleans()):
        for listener in listeners:
            listener["allowedRoutes"] = {"namespaces": {"from": "All"}}
    address = draw(st.sampled_from(("10.240.0.241", "10.240.0.242", "10.96.0.1")))
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {},
            "spec": {"gatewayClassName": "tulle", "listeners": listeners},
            "status": {"addresses": [{"type": "IPAddress", "value": address}]}}


KINDS = ("Service", "Service", "EndpointSlice", "EndpointSlice", "EndpointSlice", "Pod", "Pod",
         "NetworkPolicy", "Node", "Namespace", "HTTPRoute", "PeerAuthentication",
         "AuthorizationPolicy", "TargetedPolicy", "L4Route", "Gateway", "GatewayClass")


MTLS_KINDS = ("Pod", "Namespace", "PeerAuthentication")


@st.composite
def changes(
    draw: Any, kinds: tuple[str, ...] = KINDS
) -> tuple[str, str, str, dict[str, Any] | None]:
    kind = draw(st.sampled_from(kinds))
    if kind == "TargetedPolicy":
        kind = draw(st.sampled_from(("HTTPLocalRateLimitPolicy", "BackendTrafficPolicy")))
    if kind == "L4Route":
        kind = draw(st.sampled_from(("TCPRoute", "UDPRoute")))
    ns, name = draw(namespaces), draw(names)
    if kind == "GatewayClass":
        ns, name = "", "tulle"
    if kind == "Node":
        ns, name = "", draw(st.sampled_from(("n1", "n2")))
    if kind == "Namespace":
        ns = ""
        name = draw(namespaces)
    if kind in ("PeerAuthentication", "AuthorizationPolicy") and draw(st.integers(0, 3)) == 0:
        ns = "tulle-system"  # the mesh-wide level
    if draw(st.integers(0, 4)) == 0:
        return kind, ns, name, None  # deleted
    if kind == "Node":
        doc = nodes()
    elif kind == "GatewayClass":
        doc = st.just({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                       "metadata": {}, "spec": {"controllerName": "tulle.io/gateway-controller"}})
    elif kind in ("TCPRoute", "UDPRoute"):
        doc = l4_routes().map(lambda d: {**d, "kind": kind})
    elif kind == "Namespace":
        enrolled = {"tulle.io/mtls": "true"} if draw(st.integers(0, 3)) else {}
        doc = st.just({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"labels": {**draw(labels), **enrolled}}})
    else:
        doc = {"Service": services(), "EndpointSlice": endpoint_slices(), "Pod": pods(),
               "NetworkPolicy": policies(), "HTTPRoute": routes(), "Gateway": gateways(),
               "PeerAuthentication": peer_authentications(),
               "AuthorizationPolicy": authorization_policies(),
               "HTTPLocalRateLimitPolicy": targeted_policies("HTTPLocalRateLimitPolicy"),
               "BackendTrafficPolicy": targeted_policies("BackendTrafficPolicy")}[kind]
    body = draw(doc)
    body["metadata"] = {**body["metadata"], "name": name, "uid": f"{ns}-{name}"}
    if ns:
        body["metadata"]["namespace"] = ns
    return kind, ns, name, body


def decoded(doc: dict[str, Any]) -> Resource | None:
    """As the agent decodes: an invalid object (e.g. two ports 80/TCP) counts as absent."""
    try:
        return from_dict(doc)
    except ConversionError:
        return None


def full_replan(objects: dict[tuple[str, str, str], Resource]) -> DesiredDatapath:
    view = view_of(objects.values())
    address = node_site(view.nodes, NODE).address  # Gateways' nodePorts are served there
    return desired_datapath(view, NODE, None, l7_keys(view, RouteCompiler(), address), WAYPOINT)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(changes(), st.integers(0, 5)), min_size=1, max_size=30))
def test_incremental_plan_equals_full_replan(steps: list[Any]) -> None:
    planner = Planner(NODE, WAYPOINT)
    objects: dict[tuple[str, str, str], Resource] = {}
    for (kind, ns, name, doc), how in steps:
        key = (kind, ns, name)
        obj = decoded(doc) if doc is not None else None
        if obj is None:
            objects.pop(key, None)
        else:
            objects[key] = obj
        if how == 0:  # a resync (relist): the planner finds the deltas itself
            planner.reset(list(objects.values()))
        else:
            planner.update([Change(kind, ns, name, obj)])
        # Every change is checked, and the maps' full contents compared: entries with their
        # backends and Maglev tables, ipcache, policy, endpoints, L7 flags, errors.
        assert planner.desired() == full_replan(objects)
    fresh = Planner(NODE, WAYPOINT)
    fresh.reset(objects.values())
    assert fresh.desired() == planner.desired()


@st.composite
def mtls_changes(draw: Any) -> tuple[str, str, str, dict[str, Any] | None]:
    """Pods, Namespaces and PeerAuthentications only, with one label key, so that selectors,
    enrolment and port overrides meet often."""
    kind, ns, name, body = draw(changes(MTLS_KINDS))
    if body is None:
        return kind, ns, name, None
    if kind == "Pod":
        body["metadata"]["labels"] = {"app": "x" if draw(st.integers(0, 3)) else "y"}
        body["status"]["phase"] = "Running"
    elif kind == "PeerAuthentication":
        body["spec"]["selector"] = {"matchLabels": {"app": "x"}} if draw(st.booleans()) else {}
        if body["spec"]["selector"] and draw(st.booleans()):
            # A port mode unlike the policy's own, mostly: an override the kernel must see.
            body["spec"]["mtls"] = {"mode": draw(st.sampled_from(("STRICT", "UNSET")))}
            mode = draw(st.sampled_from(("DISABLE", "PERMISSIVE", "UNSET")))
            body["spec"]["portLevelMtls"] = {"8080": {"mode": mode}}
        else:
            body["spec"].pop("portLevelMtls", None)
    return kind, ns, name, body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(mtls_changes(), st.integers(0, 5)), min_size=1, max_size=30))
def test_incremental_mtls_plan_equals_full_replan(steps: list[Any]) -> None:
    """The same, in the corner of the universe the mTLS plan reads (Pods, Namespaces,
    PeerAuthentications), so that enrolment, modes and port overrides come and go often."""
    test_incremental_plan_equals_full_replan.hypothesis.inner_test(steps)  # type: ignore[attr-defined]


# -- the cases the property test must reach, spelled out ------------------------------------

def svc(ns: str, name: str, vip: str = "10.96.0.1") -> Resource:
    return from_dict({"apiVersion": "v1", "kind": "Service",
                      "metadata": {"namespace": ns, "name": name},
                      "spec": {"clusterIP": vip, "ports": [{"name": "http", "port": 80}]}})


def eps(ns: str, name: str, owner: str, *ips: str) -> Resource:
    return from_dict({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"namespace": ns, "name": name,
                                   "labels": {"kubernetes.io/service-name": owner}},
                      "addressType": "IPv4", "ports": [HTTP],
                      "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}
                                    for ip in ips]})


def run(*changes: tuple[str, str, str, Resource | None]) -> tuple[Planner, DesiredDatapath]:
    planner = Planner(NODE, WAYPOINT)
    objects: dict[tuple[str, str, str], Resource] = {}
    for kind, ns, name, obj in changes:
        planner.update([Change(kind, ns, name, obj)])
        if obj is None:
            objects.pop((kind, ns, name), None)
        else:
            objects[(kind, ns, name)] = obj
        assert planner.desired() == full_replan(objects)
    return planner, planner.desired()


def backends_of(desired: DesiredDatapath) -> dict[str, list[str]]:
    return {f"{e.namespace}/{e.name}": [str(b) for b in e.backends]
            for e in desired.services.entries.values()}


def test_deleted_and_relabelled_slices_leave_their_service() -> None:
    _, desired = run(
        ("Service", "a", "x", svc("a", "x")),
        ("Service", "a", "y", svc("a", "y", "10.96.0.2")),
        ("EndpointSlice", "a", "s1", eps("a", "s1", "x", "10.244.1.2")),
        ("EndpointSlice", "a", "s2", eps("a", "s2", "x", "10.244.1.3")),
        ("EndpointSlice", "a", "s1", None),
        ("EndpointSlice", "a", "s2", eps("a", "s2", "y", "10.244.1.3")),
    )
    assert backends_of(desired) == {"a/x": [], "a/y": ["10.244.1.3:8080"]}


def test_contested_address_passes_to_the_next_service_when_the_first_goes() -> None:
    planner, desired = run(
        ("Service", "b", "x", svc("b", "x")),
        ("Service", "a", "x", svc("a", "x")),
        ("EndpointSlice", "b", "s", eps("b", "s", "x", "10.244.2.2")),
    )
    assert backends_of(desired) == {"a/x": []}
    assert desired.errors == ("Service b/x: 10.96.0.1:80/TCP is already served by a/x",)
    planner.update([Change("Service", "a", "x", None)])
    assert backends_of(planner.desired()) == {"b/x": ["10.244.2.2:8080"]}
    assert planner.desired().errors == ()


def test_an_endpoint_change_replans_only_its_service() -> None:
    planner, before = run(
        *[("Service", "a", f"s{i}", svc("a", f"s{i}", f"10.96.0.{i + 1}")) for i in range(3)],
        *[("EndpointSlice", "a", f"e{i}", eps("a", f"e{i}", f"s{i}", f"10.244.1.{i + 2}"))
          for i in range(3)],
    )
    planner.update([Change("EndpointSlice", "a", "e1", eps("a", "e1", "s1", "10.244.1.9"))])
    after = planner.desired()
    changed = [k for k, e in after.services.entries.items() if before.services.entries[k] is not e]
    assert [str(k) for k in changed] == ["10.96.0.2:80/TCP"]
    # The other parts are the very objects planned before: the applier skips them.
    assert after.ipcache is before.ipcache and after.identity_rules is before.identity_rules
    assert after.endpoints is before.endpoints and after.l7 is before.l7


def test_pods_without_uid_keep_their_own_identities() -> None:
    """pod_endpoints keyed label sets by metadata.uid: two pods without one (objects from
    YAML) shared the last one's identity, and policy for one applied to the other."""
    def pod(name: str, app: str, ip: str) -> Resource:
        return from_dict({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"namespace": "a", "name": name, "labels": {"app": app}},
                          "spec": {"nodeName": NODE, "containers": [{"name": "c"}]},
                          "status": {"podIP": ip, "phase": "Running"}})

    _, desired = run(("Pod", "a", "web", pod("web", "web", "10.244.1.2")),
                     ("Pod", "a", "db", pod("db", "db", "10.244.1.3")))
    web, db = desired.ipcache[IPv4Address("10.244.1.2")], desired.ipcache[IPv4Address("10.244.1.3")]
    assert web != db


# -- planning ahead (Planner.prepare: a first sync's list pages) ----------------------------

STEPS = ("update", "update", "prepare", "prepare", "check", "reset")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(changes(), st.sampled_from(STEPS)), min_size=1, max_size=30))
def test_planning_ahead_changes_no_plan(steps: list[Any]) -> None:
    """``prepare`` between changes leaves every plan as a full replan makes it, and each
    plan's ``changed`` names every entry that differs from its base plan's (the applier
    writes only those when it applied the base)."""
    planner = Planner(NODE, WAYPOINT)
    objects: dict[tuple[str, str, str], Resource] = {}
    last = planner.desired().services
    for (kind, ns, name, doc), how in steps:
        obj = decoded(doc) if doc is not None else None
        if obj is None:
            objects.pop((kind, ns, name), None)
        else:
            objects[(kind, ns, name)] = obj
        if how == "reset":
            planner.reset(list(objects.values()))
        else:
            planner.update([Change(kind, ns, name, obj)])
        if how == "prepare":
            planner.prepare()
        if how == "check":
            last = _checked(planner, objects, last)
    _checked(planner, objects, last)


def _checked(planner: Planner, objects: dict[tuple[str, str, str], Resource],
             last: Any) -> Any:
    desired = planner.desired()
    assert desired == full_replan(objects)
    plan = desired.services
    # A plan merged with TCP/UDP route entries has generation and base 0: the applier then
    # compares every entry instead of trusting ``changed`` (agent.datapath.desired.assemble).
    if plan is not last and plan.base and last.generation:
        assert plan.base == last.generation
        keys = set(plan.entries) | set(last.entries)
        differ = {k for k in keys if plan.entries.get(k) != last.entries.get(k)}
        assert differ <= plan.changed
    return plan


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(changes(), min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_a_list_planned_page_by_page_is_the_list_planned_whole(
    steps: list[Any], random: Any
) -> None:
    """A first sync: the list's pages go in as they arrive (in any order, a page of any
    size), each planned ahead; the resync over the whole list then plans what a fresh
    planner plans from it."""
    objects: dict[tuple[str, str, str], Resource] = {}
    for kind, ns, name, doc in steps:
        obj = decoded(doc) if doc is not None else None
        if obj is not None:
            objects[(kind, ns, name)] = obj
    listed = list(objects.items())
    random.shuffle(listed)
    # In the list's order: which of two Pods claiming one IP is local follows the order.
    objects = dict(listed)
    planner = Planner(NODE, WAYPOINT)
    while listed:
        size = random.randint(1, 4)
        page, listed = listed[:size], listed[size:]
        planner.update([Change(*key, obj) for key, obj in page])
        planner.prepare()
    planner.reset(list(objects.values()))
    fresh = Planner(NODE, WAYPOINT)
    fresh.reset(list(objects.values()))
    assert planner.desired() == fresh.desired() == full_replan(objects)


def test_the_resync_after_planning_ahead_builds_no_table_again(monkeypatch: Any) -> None:
    """What ``prepare`` planned from the list's pages is not planned again by the resync over
    the same objects: the Maglev tables are built while the pages arrive."""
    from agent.datapath import service_state

    built: list[int] = []
    real = service_state.many_service_entries

    def counted(requests: Any, *args: Any) -> Any:
        built.append(len(requests))
        return real(requests, *args)

    monkeypatch.setattr(service_state, "many_service_entries", counted)
    services = [svc("a", f"s{i}", f"10.96.0.{i + 1}") for i in range(4)]
    slices = [eps("a", f"e{i}", f"s{i}", f"10.244.1.{i + 2}") for i in range(4)]
    planner = Planner(NODE, WAYPOINT)
    planner.update([Change("Service", "a", f"s{i}", s) for i, s in enumerate(services)])
    assert planner.prepare() == 0  # no slices yet: nothing worth planning
    planner.update([Change("EndpointSlice", "a", f"e{i}", s) for i, s in enumerate(slices[:2])])
    assert planner.prepare() == 2
    planner.update([Change("EndpointSlice", "a", f"e{i}", s) for i, s in enumerate(slices[2:], 2)])
    assert planner.prepare() == 2
    assert built == [2, 2]
    planner.reset([*services, *slices])
    desired = planner.desired()
    assert built == [2, 2, 0]  # the resync planned no Service again
    assert len(desired.services.entries) == 4
    assert all(len(e.backends) == 1 for e in desired.services.entries.values())
