"""Impersonation (kubectl --as/--as-group/--as-uid): the checks it needs, and requests
through the server with a ServiceAccount that may impersonate some users and groups."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from lab.apiserver.errors import ApiError
from lab.apiserver.impersonation import checks
from lab.apiserver.rbac import Attributes, User
from tests.unit.lab.apiserver.conftest import Client, configmap


def test_a_user_and_groups_each_need_impersonate() -> None:
    user, needed = checks({"impersonate-user": ["alice"], "impersonate-group": ["a", "b"]})
    assert user == User("alice", ("a", "b", "system:authenticated"))
    assert needed == [
        Attributes("impersonate", "", "users", name="alice"),
        Attributes("impersonate", "", "groups", name="a"),
        Attributes("impersonate", "", "groups", name="b"),
    ]


def test_a_service_account_is_checked_in_its_namespace_and_gets_its_groups() -> None:
    user, needed = checks({"impersonate-user": ["system:serviceaccount:shop:robot"]})
    assert needed == [Attributes("impersonate", "", "serviceaccounts", "", "shop", "robot")]
    assert user.groups == (
        "system:serviceaccounts",
        "system:serviceaccounts:shop",
        "system:authenticated",
    )


@pytest.mark.parametrize(
    ("user", "groups", "expected"),
    [
        # Groups asked for replace a ServiceAccount's own.
        ("system:serviceaccount:shop:robot", ["g"], ("g", "system:authenticated")),
        ("alice", ["system:authenticated"], ("system:authenticated",)),
        ("alice", ["system:unauthenticated"], ("system:unauthenticated",)),
        ("system:anonymous", [], ("system:unauthenticated",)),
        ("system:anonymous", ["g"], ("g", "system:unauthenticated")),
    ],
)
def test_implied_groups_as_the_real_filter_adds_them(
    user: str, groups: list[str], expected: tuple[str, ...]
) -> None:
    headers = {"impersonate-user": [user]}
    if groups:
        headers["impersonate-group"] = groups
    assert checks(headers)[0].groups == expected


def test_uid_and_extras_are_checked_in_authentication() -> None:
    _, needed = checks(
        {
            "impersonate-user": ["alice"],
            "impersonate-uid": ["123"],
            "impersonate-extra-scopes%2Fx": ["view", "edit"],
        }
    )
    assert needed[1:] == [
        Attributes("impersonate", "authentication.k8s.io", "uids", name="123"),
        Attributes("impersonate", "authentication.k8s.io", "userextras", "scopes/x", name="view"),
        Attributes("impersonate", "authentication.k8s.io", "userextras", "scopes/x", name="edit"),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"impersonate-group": ["readers"]},
        {"impersonate-uid": ["1"]},
        {"impersonate-user": ["a", "b"]},
        {"impersonate-user": ["a"], "impersonate-uid": ["1", "2"]},
    ],
)
def test_malformed_impersonation_is_a_bad_request(headers: dict[str, list[str]]) -> None:
    with pytest.raises(ApiError) as err:
        checks(headers)
    assert err.value.code == 400


RBAC = "/apis/rbac.authorization.k8s.io/v1"


def _robot(client: Client) -> str:
    """A ServiceAccount that may impersonate alice and the group readers; its token."""
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}
    assert client.request("POST", "/api/v1/namespaces/default/serviceaccounts", sa).status == 201
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "robot-token",
            "annotations": {"kubernetes.io/service-account.name": "robot"},
        },
    }
    made = client.request("POST", "/api/v1/namespaces/default/secrets", secret).body
    role = {
        "kind": "ClusterRole",
        "metadata": {"name": "impersonator"},
        "rules": [
            {
                "verbs": ["impersonate"],
                "apiGroups": [""],
                "resources": ["users"],
                "resourceNames": ["alice"],
            },
            {
                "verbs": ["impersonate"],
                "apiGroups": [""],
                "resources": ["groups"],
                "resourceNames": ["readers"],
            },
        ],
    }
    binding: dict[str, Any] = {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "robot-impersonates"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "impersonator",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
    }
    reader = {
        "kind": "Role",
        "metadata": {"name": "cm-reader", "namespace": "default"},
        "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["configmaps"]}],
    }
    readers = {
        "kind": "RoleBinding",
        "metadata": {"name": "readers-read", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "Group", "name": "readers"}],
    }
    for path, obj in (
        (f"{RBAC}/clusterroles", role),
        (f"{RBAC}/clusterrolebindings", binding),
        (f"{RBAC}/namespaces/default/roles", reader),
        (f"{RBAC}/namespaces/default/rolebindings", readers),
    ):
        assert (
            client.request(
                "POST", path, {"apiVersion": "rbac.authorization.k8s.io/v1", **obj}
            ).status
            == 201
        )
    return base64.b64decode(made["data"]["token"]).decode()


CMS = "/api/v1/namespaces/default/configmaps"


def test_requests_run_as_the_impersonated_user(client: Client) -> None:
    token = _robot(client)
    assert client.request("POST", CMS, configmap("c")).status == 201
    alone = client.request("GET", CMS, token=token, headers=[("Impersonate-User", "alice")])
    assert alone.status == 403
    assert alone.body["message"].startswith('configmaps is forbidden: User "alice" cannot list')
    # Groups come as repeated headers; every one must be allowed.
    as_reader = client.request(
        "GET",
        CMS,
        token=token,
        headers=[("Impersonate-User", "alice"), ("Impersonate-Group", "readers")],
    )
    assert as_reader.status == 200 and [i["metadata"]["name"] for i in as_reader.body["items"]] == [
        "c"
    ]
    who = client.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=token,
        headers=[("Impersonate-User", "alice"), ("Impersonate-Group", "readers")],
    )
    assert who.body["status"]["userInfo"] == {
        "username": "alice",
        "groups": ["readers", "system:authenticated"],
    }


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            [("Impersonate-User", "bob")],
            'users "bob" is forbidden: User "system:serviceaccount:default:robot" cannot impersonate resource "users" in API group "" at the cluster scope',
        ),
        (
            [
                ("Impersonate-User", "alice"),
                ("Impersonate-Group", "readers"),
                ("Impersonate-Group", "system:masters"),
            ],
            'groups "system:masters" is forbidden',
        ),
        (
            [("Impersonate-User", "system:serviceaccount:kube-system:admin")],
            'serviceaccounts "admin" is forbidden: User "system:serviceaccount:default:robot" cannot impersonate resource "serviceaccounts" in API group "" in the namespace "kube-system"',
        ),
        (
            [("Impersonate-User", "alice"), ("Impersonate-Uid", "1")],
            'uids.authentication.k8s.io "1" is forbidden',
        ),
    ],
)
def test_impersonating_without_the_right_is_forbidden(
    client: Client, headers: list[tuple[str, str]], message: str
) -> None:
    token = _robot(client)
    reply = client.request("GET", CMS, token=token, headers=headers)
    assert reply.status == 403 and reply.body["reason"] == "Forbidden"
    assert reply.body["message"].startswith(message)


def test_an_unauthenticated_request_cannot_impersonate(client: Client) -> None:
    reply = client.request("GET", CMS, token="nope", headers=[("Impersonate-User", "alice")])
    assert reply.status == 401
