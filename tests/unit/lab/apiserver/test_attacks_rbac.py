"""Attacks on authorization, over HTTPS: a tenant granting itself more through Roles and
bindings (escalate/bind), impersonation without the verb, and the components' accounts
(deploy/daemonset/rbac.yaml) reaching Secrets by every read path a cluster has."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.apiserver import identities
from lab.apiserver.auth import with_token
from lab.store import Store
from tests.unit.lab.apiserver.conftest import TABLE, Client, Reply, configmap
from tests.unit.lab.apiserver.test_kubectl import PYPI_KUBECTL

RBAC = "/apis/rbac.authorization.k8s.io/v1"
ROLES = f"{RBAC}/namespaces/shop/roles"
BINDINGS = f"{RBAC}/namespaces/shop/rolebindings"
WRITE_RBAC = {
    "apiGroups": ["rbac.authorization.k8s.io"],
    "resources": ["roles", "rolebindings"],
    "verbs": ["get", "create", "update", "patch"],
}
READ_CMS = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}
READ_SECRETS = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}


def _role(name: str, *rules: dict, kind: str = "Role") -> dict:
    meta = {"name": name, **({"namespace": "shop"} if kind == "Role" else {})}
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "rules": list(rules),
    }


def _binding(name: str, ref_kind: str, ref: str, account: str = "tenant") -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": "shop"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": "shop"}],
    }


def _ok(reply: Reply) -> None:
    assert reply.status in (200, 201), reply.body


@pytest.fixture
def tenant(client: Client) -> str:
    """The token of shop's "tenant" account, which may write Roles and RoleBindings in shop
    and read its ConfigMaps, and nothing else."""
    _ok(
        client.request(
            "POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "shop"}}
        )
    )
    sa = {"kind": "ServiceAccount", "metadata": {"name": "tenant"}}
    _ok(client.request("POST", "/api/v1/namespaces/shop/serviceaccounts", sa))
    secret = {
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": "tenant-token",
            "annotations": {"kubernetes.io/service-account.name": "tenant"},
        },
    }
    made = client.request("POST", "/api/v1/namespaces/shop/secrets", secret)
    _ok(made)
    _ok(client.request("POST", ROLES, _role("tenant", WRITE_RBAC, READ_CMS)))
    _ok(client.request("POST", BINDINGS, _binding("tenant", "Role", "tenant")))
    _ok(
        client.request(
            "POST",
            f"{RBAC}/clusterroles",
            _role(
                "everything",
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                kind="ClusterRole",
            ),
        )
    )
    return base64.b64decode(made.body["data"]["token"]).decode()


def _forbidden(reply: Reply) -> str:
    assert reply.status == 403, reply.body
    body = reply.body
    assert body["reason"] == "Forbidden"
    return str(body["message"])


def test_a_role_with_rules_the_creator_holds_is_allowed(client: Client, tenant: str) -> None:
    _ok(client.request("POST", ROLES, _role("cm-reader", READ_CMS), token=tenant))
    _ok(client.request("POST", BINDINGS, _binding("b", "Role", "cm-reader"), token=tenant))


@pytest.mark.parametrize(
    "rule",
    [
        READ_SECRETS,
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},  # a wildcard verb
        {"apiGroups": ["*"], "resources": ["configmaps"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ],
)
def test_a_role_granting_more_than_the_creator_holds_is_forbidden(
    client: Client, tenant: str, rule: dict
) -> None:
    message = _forbidden(client.request("POST", ROLES, _role("more", rule), token=tenant))
    assert 'user "system:serviceaccount:shop:tenant"' in message
    assert "attempting to grant RBAC permissions not currently held" in message
    assert client.request("GET", f"{ROLES}/more").status == 404  # nothing stored


def test_every_write_path_to_a_role_is_checked(client: Client, tenant: str) -> None:
    _ok(client.request("POST", ROLES, _role("cm-reader", READ_CMS), token=tenant))
    path = f"{ROLES}/cm-reader"
    current = client.request("GET", path).body
    grown = {**current, "rules": [READ_CMS, READ_SECRETS]}
    attempts = [
        client.request("PUT", path, grown, token=tenant),
        client.request(
            "PATCH",
            path,
            {"rules": [READ_SECRETS]},
            ctype="application/merge-patch+json",
            token=tenant,
        ),
        client.request(
            "PATCH",
            path,
            [{"op": "add", "path": "/rules/-", "value": READ_SECRETS}],
            ctype="application/json-patch+json",
            token=tenant,
        ),
        client.request(
            "PATCH",
            path,
            {"rules": [READ_SECRETS]},
            ctype="application/strategic-merge-patch+json",
            token=tenant,
        ),
        client.request(
            "PATCH",
            path,
            _role("cm-reader", READ_SECRETS),
            ctype="application/apply-patch+yaml",
            query={"fieldManager": "t", "force": "true"},
            token=tenant,
        ),
        client.request(
            "PATCH",
            f"{ROLES}/new",
            _role("new", READ_SECRETS),
            ctype="application/apply-patch+yaml",
            query={"fieldManager": "t"},
            token=tenant,
        ),
        client.request(
            "POST", ROLES, _role("dry", READ_SECRETS), query={"dryRun": "All"}, token=tenant
        ),
        client.request(
            "PUT",
            f"{ROLES}/tenant",
            {
                **_role("tenant", WRITE_RBAC, READ_CMS, READ_SECRETS),
                "metadata": {"name": "tenant", "namespace": "shop"},
            },
            token=tenant,
        ),
    ]
    for reply in attempts:
        _forbidden(reply)
    assert client.request("GET", path).body["rules"] == [READ_CMS]
    assert client.request("GET", f"{ROLES}/tenant").body["rules"] == [WRITE_RBAC, READ_CMS]
    assert client.request("GET", "/api/v1/namespaces/shop/secrets", token=tenant).status == 403


def test_binding_to_a_role_the_tenant_does_not_hold_is_forbidden(
    client: Client, tenant: str
) -> None:
    message = _forbidden(
        client.request(
            "POST", BINDINGS, _binding("root", "ClusterRole", "everything"), token=tenant
        )
    )
    assert "not currently held" in message
    message = _forbidden(
        client.request("POST", BINDINGS, _binding("later", "ClusterRole", "not-yet"), token=tenant)
    )
    assert "does not exist" in message
    # Re-pointing its own binding, or binding another account, is the same.
    path = f"{BINDINGS}/tenant"
    _forbidden(
        client.request(
            "PATCH",
            path,
            {"roleRef": {"name": "everything", "kind": "ClusterRole"}},
            ctype="application/merge-patch+json",
            token=tenant,
        )
    )
    assert client.request("GET", "/api/v1/namespaces/shop/secrets", token=tenant).status == 403


def test_escalate_and_bind_verbs_allow_what_they_name(client: Client, tenant: str) -> None:
    extra = {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles"],
        "verbs": ["escalate"],
    }
    bind = {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["clusterroles"],
        "verbs": ["bind"],
        "resourceNames": ["everything"],
    }
    _ok(client.request("POST", ROLES, _role("powers", extra, bind)))
    _ok(client.request("POST", BINDINGS, _binding("powers", "Role", "powers")))
    _ok(client.request("POST", ROLES, _role("more", READ_SECRETS), token=tenant))
    _ok(
        client.request(
            "POST", BINDINGS, _binding("root", "ClusterRole", "everything"), token=tenant
        )
    )
    assert client.request("GET", "/api/v1/namespaces/shop/secrets", token=tenant).status == 200


def test_a_rule_multiplying_into_millions_is_refused(client: Client, tenant: str) -> None:
    many = [f"r{i}" for i in range(400)]
    rule = {"apiGroups": many, "resources": many, "verbs": many}
    message = _forbidden(client.request("POST", ROLES, _role("bomb", rule), token=tenant))
    assert "combinations" in message


# -- impersonation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("Impersonate-User", "tulle:admin"), ("Impersonate-Group", "system:masters")],
        [("Impersonate-Group", "system:masters")],  # a group without a user: 400
        [
            ("Impersonate-User", "system:serviceaccount:shop:tenant"),
            ("Impersonate-Group", "system:masters"),
        ],
        [("Impersonate-User", "system:serviceaccount:kube-system:tulle-lab-controller")],
        [("Impersonate-User", "system:serviceaccount:shop:tenant"), ("Impersonate-Uid", "1")],
        [
            ("Impersonate-User", "system:serviceaccount:shop:tenant"),
            ("Impersonate-Extra-Scopes", "x"),
        ],
    ],
)
def test_impersonation_without_the_verb_goes_nowhere(
    client: Client, tenant: str, headers: list
) -> None:
    reply = client.request("GET", "/api/v1/namespaces/shop/secrets", token=tenant, headers=headers)
    assert reply.status in (400, 403), reply.body


def test_impersonating_oneself_into_masters_needs_the_group_verb(
    client: Client, tenant: str
) -> None:
    users_only = {
        "apiGroups": [""],
        "resources": ["users", "serviceaccounts"],
        "verbs": ["impersonate"],
    }
    _ok(client.request("POST", ROLES, _role("imp", users_only)))
    _ok(client.request("POST", BINDINGS, _binding("imp", "Role", "imp")))
    masters = [
        ("Impersonate-User", "system:serviceaccount:shop:tenant"),
        ("Impersonate-Group", "system:masters"),
    ]
    message = _forbidden(
        client.request("GET", "/api/v1/namespaces/shop/secrets", token=tenant, headers=masters)
    )
    assert "impersonate" in message


# -- the components' accounts and Secrets ---------------------------------------------------


@pytest.fixture
def agent_token(client: Client, store: Store) -> str:
    client.request(
        "POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "shop"}}
    )
    secret = {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}
    _ok(client.request("POST", "/api/v1/namespaces/shop/secrets", secret))
    return identities.seed(store, identities.load(identities.MANIFESTS))["tulle-agent"]


SECRET_READS = [
    ("/api/v1/secrets", {}),
    ("/api/v1/namespaces/shop/secrets", {}),
    ("/api/v1/namespaces/shop/secrets/db", {}),
    ("/api/v1/namespaces/shop/secrets", {"watch": "1"}),
    ("/api/v1/namespaces/shop/secrets", {"watch": "true", "resourceVersion": "0"}),
    ("/api/v1/namespaces/shop/secrets/db", {"watch": "1"}),
    ("/api/v1/secrets", {"fieldSelector": "metadata.name=db"}),
    ("/api/v1/namespaces/shop/secrets", {"labelSelector": "x"}),
    ("/api/v1/namespaces/shop/secrets", {"limit": "1"}),
    ("/api/v1/namespaces/shop/secrets/db/status", {}),
    ("/api/v1/namespaces/shop/pods/../secrets/db", {}),
    ("/api/v1/namespaces/shop/secrets/../pods", {}),
    ("/api/v1/namespaces/shop/pods/%2e%2e/secrets", {}),
    ("//api//v1//namespaces//shop//secrets//db//", {}),
    ("/api/v1/namespaces/shop/secrets/", {}),
    ("/api/v1/namespaces/shop%2Fsecrets", {}),
    ("/API/v1/namespaces/shop/secrets", {}),
    ("/api/v1/namespaces/shop/Secrets", {}),
    ("/api/v1/namespaces/shop/secrets/db?x=/../../pods", {}),
]


@pytest.mark.parametrize(("path", "query"), SECRET_READS)
def test_the_agent_reads_no_secret_by_any_path(
    client: Client, agent_token: str, path: str, query: dict
) -> None:
    reply = client.request("GET", path, query=query or None, token=agent_token)
    assert reply.status in (403, 404), (reply.status, reply.body)
    assert b"hunter2" not in repr(reply.body).encode() and "aHVudGVyMg" not in repr(reply.body)


def test_the_agent_reads_no_secret_as_a_table_or_dry_run_write(
    client: Client, agent_token: str
) -> None:
    table = client.request(
        "GET", "/api/v1/namespaces/shop/secrets", accept=TABLE, token=agent_token
    )
    assert table.status == 403
    dry = client.request(
        "POST",
        "/api/v1/namespaces/shop/secrets",
        {"kind": "Secret", "metadata": {"name": "x"}},
        query={"dryRun": "All"},
        token=agent_token,
    )
    assert dry.status == 403
    delete = client.request("DELETE", "/api/v1/namespaces/shop/secrets", token=agent_token)
    assert delete.status == 403
    # ... but what it needs still works.
    assert client.request("GET", "/api/v1/pods", token=agent_token).status == 200


def test_forged_continue_tokens_stay_in_the_request_scope(client: Client) -> None:
    """A continue token names a position, never a scope: one forged to point into another
    namespace (or kind) pages the asked-for collection only."""
    client.request(
        "POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": "shop"}}
    )
    for ns in ("default", "shop"):
        for i in range(3):
            _ok(
                client.request(
                    "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(f"c{i}", ns=ns)
                )
            )
    first = client.request(
        "GET", "/api/v1/namespaces/default/configmaps", query={"limit": "1"}
    ).body
    rv = int(first["metadata"]["resourceVersion"])
    for ns, name in (("shop", ""), ("", ""), ("kube-system", "a")):
        raw = json.dumps({"rv": rv, "ns": ns, "name": name}, separators=(",", ":")).encode()
        token = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        page = client.request(
            "GET", "/api/v1/namespaces/default/configmaps", query={"continue": token}
        )
        assert page.status == 200
        assert {o["metadata"]["namespace"] for o in page.body["items"]} <= {"default"}
    for bad in ("!!", "e30", base64.urlsafe_b64encode(b'{"rv":"x"}').decode()):
        page = client.request(
            "GET", "/api/v1/namespaces/default/configmaps", query={"continue": bad}
        )
        assert page.status == 400 and "continue" in page.body["message"]


@pytest.mark.parametrize("limit", ["0", "-1", "99999999999999999999", "1e3", "x"])
def test_odd_limits_are_a_full_list_or_400(client: Client, limit: str) -> None:
    reply = client.request("GET", "/api/v1/namespaces/default/configmaps", query={"limit": limit})
    assert reply.status in (200, 400)
    if reply.status == 400:
        assert "limit" in reply.body["message"]


def test_the_agent_gets_nothing_through_protobuf_subresources_or_the_events_view(
    client: Client, agent_token: str
) -> None:
    attempts = [
        client.request(
            "POST",
            "/api/v1/namespaces/shop/secrets",
            b"k8s\x00not a secret",
            ctype="application/vnd.kubernetes.protobuf",
            token=agent_token,
        ),  # authorized before the body is read: 403, not 415
        client.request("GET", "/apis/events.k8s.io/v1/events", token=agent_token),
        client.request("GET", "/api/v1/events", token=agent_token),
        client.request(
            "GET", "/apis/apps/v1/namespaces/shop/deployments/d/scale", token=agent_token
        ),
        client.request(
            "PATCH",
            "/api/v1/namespaces/shop/pods/p/status",
            {"status": {}},
            ctype="application/merge-patch+json",
            token=agent_token,
        ),
        client.request(
            "POST",
            "/api/v1/namespaces/kube-system/serviceaccounts/tulle-lab-controller/token",
            {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "spec": {}},
            token=agent_token,
        ),
    ]
    assert [reply.status for reply in attempts] == [403] * len(attempts)


def test_a_watch_limited_to_one_secret_by_name_sees_only_that_one(
    client: Client, tenant: str
) -> None:
    """A Role granting watch on the Secret "db" only: a named watch is filtered to it, a
    collection watch selecting it by ``metadata.name`` is allowed and sees only it (as
    kube-apiserver's RequestInfoFactory takes the name from such a selector), and no field
    selector (a trailing comma, a parenthesis, another name) widens it to the others."""
    one = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["watch"], "resourceNames": ["db"]}
    _ok(client.request("POST", ROLES, _role("db-watcher", one)))
    _ok(client.request("POST", BINDINGS, _binding("db-watcher", "Role", "db-watcher")))
    for name in ("db", "other"):
        secret = {"kind": "Secret", "metadata": {"name": name}, "stringData": {"k": name}}
        _ok(client.request("POST", "/api/v1/namespaces/shop/secrets", secret))
    base = "/api/v1/namespaces/shop/secrets"
    assert client.request("GET", base, query={"watch": "1"}, token=tenant).status == 403
    for selector in ("metadata.name=other", "metadata.name!=db", "metadata.name=db2"):
        query = {"watch": "1", "fieldSelector": selector, "timeoutSeconds": "1"}
        assert client.request("GET", base, query=query, token=tenant).status == 403, selector
    for selector in ("metadata.name=db", "metadata.name==db", "metadata.name=db,metadata.name=other"):
        query = {"watch": "1", "fieldSelector": selector, "timeoutSeconds": "1"}
        reply = client.request("GET", base, query=query, token=tenant)
        assert reply.status == 200, (selector, reply.body)
        body = reply.body
        events = [body] if isinstance(body, dict) else [
            json.loads(line) for line in (body or b"").splitlines() if line.strip()
        ]
        assert {e["object"]["metadata"]["name"] for e in events} <= {"db"}, selector
    for selector in ("metadata.name!=db", "metadata.name=other", "metadata.name=(", ","):
        reply = client.request(
            "GET",
            f"{base}/db",
            query={"watch": "1", "fieldSelector": selector, "timeoutSeconds": "1"},
            token=tenant,
        )
        assert reply.status in (200, 400), reply.body
        assert b"other" not in (reply.body if isinstance(reply.body, bytes) else b"")
        if reply.status == 200 and isinstance(reply.body, bytes):
            names = {
                json.loads(line)["object"]["metadata"]["name"]
                for line in reply.body.splitlines()
                if line.strip()
            }
            assert names <= {"db"}
    assert client.request("GET", f"{base}/other", query={"watch": "1"}, token=tenant).status == 403


def test_kubectl_as_a_tenant_cannot_grant_itself_secrets(
    lab: tuple[Store, Path, Callable[[str], Path]],
) -> None:
    """kubectl 1.32+ sends `create role|rolebinding` as protobuf: the same check holds."""
    store, _, as_user = lab
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    store.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "t", "namespace": "shop"},
        }
    )
    meta = {
        "name": "t-token",
        "namespace": "shop",
        "annotations": {"kubernetes.io/service-account.name": "t"},
    }
    secret = store.create(
        with_token(
            store,
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "kubernetes.io/service-account-token",
                "metadata": meta,
            },
        )
    )
    store.create({**_role("t", WRITE_RBAC, READ_CMS)})
    store.create({**_binding("t", "Role", "t", account="t")})
    store.create(
        _role(
            "everything",
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            kind="ClusterRole",
        )
    )
    config = as_user(base64.b64decode(secret["data"]["token"]).decode())

    def kubectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PYPI_KUBECTL), "--kubeconfig", str(config), "-n", "shop", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    role = kubectl("create", "role", "more", "--verb=get", "--resource=secrets")
    assert role.returncode == 1
    assert role.stderr == (
        'Error from server (Forbidden): roles.rbac.authorization.k8s.io "more" is forbidden: '
        'user "system:serviceaccount:shop:t" (groups=["system:serviceaccounts" '
        '"system:serviceaccounts:shop" "system:authenticated"]) is attempting to grant RBAC '
        'permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}\n'
    )
    bind = kubectl(
        "create", "rolebinding", "root", "--clusterrole=everything", "--serviceaccount=shop:t"
    )
    assert bind.returncode == 1
    assert bind.stderr.startswith(  # kubectl's own wording for create rolebinding
        'error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io "root" is '
        'forbidden: user "system:serviceaccount:shop:t"'
    )
    assert bind.stderr.endswith(
        'not currently held:\n{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n'
    )
    assert kubectl("auth", "can-i", "get", "secrets").stdout.strip() == "no"
    assert kubectl("create", "role", "fine", "--verb=get", "--resource=configmaps").returncode == 0
