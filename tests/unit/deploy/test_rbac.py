"""RBAC, least privilege: each ClusterRole the manifests ship grants exactly the list and
watch of the kinds its component's code watches (AGENT_KINDS, the waypoint's KINDS) plus the
agent's nodes/status patch, no verb more or less; the rendered RBAC is the very set the lab
seeds and enforces (lab/apiserver/identities.py), so a missing verb fails the lab's tests
too; every workload's ServiceAccount is shipped."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.kinds import kind_info
from agent.node_agent import AGENT_KINDS
from agent.svid import bundlewatch
from controlplane.issuer import AGENT_ACCOUNT
from identity.system import SYSTEM_NAMESPACE
from l7proxy.feed import KINDS as WAYPOINT_KINDS
from lab.apiserver import identities
from tests.unit.deploy.rendered import OVERLAYS, one, pod_specs, render

Grant = tuple[str, str, str]  # (API group, resource, verb)


def _watched(kinds: tuple[str, ...]) -> set[Grant]:
    out = set()
    for kind in kinds:
        info = kind_info(kind)
        group = info.api_version.rpartition("/")[0]
        out |= {(group, info.plural, "list"), (group, info.plural, "watch")}
    return out


def _granted(role: dict[str, Any]) -> set[Grant]:
    return {(group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]}


def test_the_agents_cluster_role_is_exactly_what_it_watches_and_patches() -> None:
    role = one(render("production"), "ClusterRole", "tulle-agent")
    assert _granted(role) == _watched(AGENT_KINDS) | {("", "nodes/status", "patch")}
    assert not any("resourceNames" in rule for rule in role["rules"])


def test_the_waypoints_cluster_role_is_exactly_what_it_watches() -> None:
    role = one(render("production"), "ClusterRole", "tulle-waypoint")
    # Nodes and PeerAuthentications only with --svid-dir (HBONE peers, backends' mTLS
    # modes for the L7 hop), as the lab runs it.
    assert _granted(role) == _watched((*WAYPOINT_KINDS, "Node", "PeerAuthentication"))


def test_the_agent_reads_one_configmap_the_trust_bundle() -> None:
    objs = render("production")
    role = one(objs, "Role", "tulle-agent-trust-bundle")
    assert role["metadata"]["namespace"] == bundlewatch.NAMESPACE
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": [bundlewatch.NAME], "verbs": ["list", "watch"]}]
    binding = one(objs, "RoleBinding", "tulle-agent-trust-bundle")
    [subject] = binding["subjects"]
    assert f"{subject['namespace']}/{subject['name']}" == AGENT_ACCOUNT


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_rendered_rbac_is_what_the_lab_seeds_and_enforces(overlay: str) -> None:
    shipped = [p for p in identities.MANIFESTS if "deploy" in p.parts]
    seeded = identities.load(shipped)
    rendered = [o for o in render(overlay) if o["kind"] in identities.SEEDED_KINDS]
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(rendered, key=key) == sorted(seeded, key=key)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_runs_as_a_shipped_account_with_its_token_only(overlay: str) -> None:
    objs = render(overlay)
    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"])
                for o in objs if o["kind"] == "ServiceAccount"}
    workloads = {o["metadata"]["name"]: o for o in objs if o["kind"] in ("DaemonSet", "Deployment")}
    for name, pod in pod_specs(objs):
        namespace = workloads[name]["metadata"]["namespace"]
        assert (namespace, pod["serviceAccountName"]) in accounts, name
    agent = one(objs, "DaemonSet", "tulle-agent")["spec"]["template"]["spec"]
    namespace = one(objs, "DaemonSet", "tulle-agent")["metadata"]["namespace"]
    assert f"{namespace}/{agent['serviceAccountName']}" == AGENT_ACCOUNT  # the CA signs for it
    assert namespace == SYSTEM_NAMESPACE
    assert {o["metadata"]["namespace"] for o in objs if "namespace" in o["metadata"]} == {
        SYSTEM_NAMESPACE}  # nothing of Tulle's in kube-system or elsewhere
    subjects = [s for o in objs if o["kind"].endswith("Binding") for s in o["subjects"]]
    assert {s["namespace"] for s in subjects} == {SYSTEM_NAMESPACE}


def test_a_grant_added_or_removed_is_seen() -> None:
    """The comparison above can fail either way."""
    role = one(render("production"), "ClusterRole", "tulle-agent")
    wanted = _watched(AGENT_KINDS) | {("", "nodes/status", "patch")}
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]})
    assert _granted(role) - wanted == {("", "secrets", "list")}
    role["rules"] = role["rules"][1:-1]
    assert wanted - _granted(role)
