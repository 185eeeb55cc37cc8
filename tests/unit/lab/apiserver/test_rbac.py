"""RBAC: rules, bindings and ServiceAccount tokens; allow and deny over HTTPS."""

from __future__ import annotations

import base64

import pytest

from lab.apiserver.rbac import Attributes, User, allowed, forbidden_message, rule_allows
from tests.unit.lab.apiserver.conftest import Client, configmap

ROBOT = User(
    "system:serviceaccount:shop:robot",
    ("system:serviceaccounts", "system:serviceaccounts:shop", "system:authenticated"),
)
READ_CMS = {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["configmaps"]}


@pytest.mark.parametrize(
    ("rule", "attrs", "expected"),
    [
        (READ_CMS, Attributes("list", "", "configmaps", namespace="shop"), True),
        (READ_CMS, Attributes("delete", "", "configmaps", namespace="shop", name="c"), False),
        (READ_CMS, Attributes("list", "apps", "configmaps"), False),
        (READ_CMS, Attributes("get", "", "secrets", name="s"), False),
        (
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            Attributes("patch", "apps", "deployments", "scale"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments"]},
            Attributes("get", "apps", "deployments", "scale", name="d"),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["deployments/scale"]},
            Attributes("get", "apps", "deployments", "scale", name="d"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/scale"]},
            Attributes("get", "apps", "deployments", "scale", name="d"),
            True,
        ),
        (
            {
                "verbs": ["get"],
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["a"],
            },
            Attributes("get", "", "configmaps", name="a"),
            True,
        ),
        (
            {
                "verbs": ["get"],
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["a"],
            },
            Attributes("get", "", "configmaps", name="b"),
            False,
        ),
        (
            {
                "verbs": ["list"],
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["a"],
            },
            Attributes("list", "", "configmaps"),
            False,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/metrics"]},
            Attributes("get", path="/metrics"),
            True,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]},
            Attributes("get", path="/logs/x"),
            True,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/metrics"]},
            Attributes("get", path="/other"),
            False,
        ),
    ],
)
def test_rules(rule: dict, attrs: Attributes, expected: bool) -> None:
    assert rule_allows(rule, attrs) is expected


def _meta(kind: str, name: str, ns: str = "") -> dict:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"kind": kind, "metadata": meta}


ROLES = [
    {**_meta("ClusterRole", "cm-reader"), "rules": [READ_CMS]},
    {
        **_meta("Role", "deployer", "shop"),
        "rules": [{"verbs": ["create"], "apiGroups": ["apps"], "resources": ["deployments"]}],
    },
]


def _binding(kind: str, ns: str, role_kind: str, role: str, subject: dict) -> dict:
    return {
        **_meta(kind, f"b-{role}", ns),
        "roleRef": {"kind": role_kind, "name": role, "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [subject],
    }


SA = {"kind": "ServiceAccount", "name": "robot", "namespace": "shop"}


def test_role_binding_to_a_cluster_role_grants_it_in_that_namespace_only() -> None:
    objs = [
        *ROLES,
        _binding(
            "RoleBinding",
            "shop",
            "ClusterRole",
            "cm-reader",
            {"kind": "ServiceAccount", "name": "robot"},
        ),
    ]
    assert allowed(ROBOT, Attributes("list", "", "configmaps", namespace="shop"), objs)
    assert not allowed(ROBOT, Attributes("list", "", "configmaps", namespace="other"), objs)
    assert not allowed(ROBOT, Attributes("list", "", "configmaps"), objs)  # all namespaces


def test_cluster_role_binding_grants_everywhere_and_groups_match() -> None:
    objs = [
        *ROLES,
        _binding(
            "ClusterRoleBinding",
            "",
            "ClusterRole",
            "cm-reader",
            {"kind": "Group", "name": "system:serviceaccounts:shop"},
        ),
    ]
    assert allowed(ROBOT, Attributes("list", "", "configmaps"), objs)
    assert not allowed(
        User("system:serviceaccount:other:x", ("system:serviceaccounts:other",)),
        Attributes("list", "", "configmaps"),
        objs,
    )


def test_role_binding_to_a_role_in_its_namespace() -> None:
    objs = [*ROLES, _binding("RoleBinding", "shop", "Role", "deployer", SA)]
    assert allowed(ROBOT, Attributes("create", "apps", "deployments", namespace="shop"), objs)
    assert not allowed(
        ROBOT, Attributes("delete", "apps", "deployments", namespace="shop", name="d"), objs
    )


def test_nothing_bound_means_nothing_allowed_but_discovery() -> None:
    assert not allowed(
        ROBOT, Attributes("get", "", "configmaps", namespace="shop", name="c"), ROLES
    )
    assert allowed(ROBOT, Attributes("get", path="/apis/apps/v1"), ROLES)
    assert not allowed(ROBOT, Attributes("post", path="/apis/apps/v1"), ROLES)


def test_forbidden_message_reads_like_kubernetes() -> None:
    attrs = Attributes("list", "", "configmaps", namespace="shop")
    assert forbidden_message(ROBOT, attrs) == (
        'configmaps is forbidden: User "system:serviceaccount:shop:robot" cannot list resource '
        '"configmaps" in API group "" in the namespace "shop"'
    )


# -- over HTTPS with a ServiceAccount token ----------------------------------------------------


def _robot_token(admin: Client) -> str:
    admin.request("POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "shop"}})
    admin.request(
        "POST",
        "/api/v1/namespaces/shop/serviceaccounts",
        {"kind": "ServiceAccount", "metadata": {"name": "robot"}},
    )
    secret = {
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "robot-token",
            "annotations": {"kubernetes.io/service-account.name": "robot"},
        },
    }
    created = admin.request("POST", "/api/v1/namespaces/shop/secrets", secret)
    assert created.status == 201, created.body
    return base64.b64decode(created.body["data"]["token"]).decode()


def test_service_account_is_denied_until_bound(client: Client) -> None:
    token = _robot_token(client)
    denied = client.request("GET", "/api/v1/namespaces/shop/configmaps", token=token)
    assert denied.status == 403 and denied.body["reason"] == "Forbidden"
    assert (
        'User "system:serviceaccount:shop:robot" cannot list resource "configmaps"'
        in denied.body["message"]
    )
    assert client.request("GET", "/apis/apps/v1", token=token).status == 200  # discovery
    client.request(
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        {**_meta("ClusterRole", "cm-reader"), "rules": [READ_CMS]},
    )
    binding = _binding(
        "RoleBinding",
        "shop",
        "ClusterRole",
        "cm-reader",
        {"kind": "ServiceAccount", "name": "robot"},
    )
    assert (
        client.request(
            "POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/shop/rolebindings", binding
        ).status
        == 201
    )
    assert client.request("GET", "/api/v1/namespaces/shop/configmaps", token=token).status == 200
    assert client.request("GET", "/api/v1/namespaces/default/configmaps", token=token).status == 403
    assert (
        client.request(
            "POST", "/api/v1/namespaces/shop/configmaps", configmap("c", ns="shop"), token=token
        ).status
        == 403
    )


def test_self_subject_access_review_answers_for_the_caller(client: Client) -> None:
    token = _robot_token(client)
    review = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "spec": {
            "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "shop"}
        },
    }
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    assert client.request("POST", path, review, token=token).body["status"]["allowed"] is False
    assert client.request("POST", path, review).body["status"]["allowed"] is True  # admin


def test_a_deleted_service_account_token_no_longer_authenticates(client: Client) -> None:
    token = _robot_token(client)
    assert client.request("GET", "/apis/apps/v1", token=token).status == 200
    client.request("DELETE", "/api/v1/namespaces/shop/serviceaccounts/robot")
    assert client.request("GET", "/apis/apps/v1", token=token).status == 401
