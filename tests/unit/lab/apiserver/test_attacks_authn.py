"""Attacks on authentication, over HTTPS against a served instance: garbled, foreign and
replayed tokens must be a clean 401 (never a 500, never someone else's identity)."""

from __future__ import annotations

import base64
import json

import pytest

from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client

SAS = "/api/v1/namespaces/{ns}/serviceaccounts"
SECRETS = "/api/v1/namespaces/{ns}/secrets"
REVIEW = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
SA_NAME = "kubernetes.io/service-account.name"
SA_UID = "kubernetes.io/service-account.uid"


def _namespace(admin: Client, ns: str) -> None:
    admin.request("POST", "/api/v1/namespaces", {"kind": "Namespace", "metadata": {"name": ns}})


def _account(admin: Client, ns: str, name: str) -> dict:
    made = admin.request(
        "POST", SAS.format(ns=ns), {"kind": "ServiceAccount", "metadata": {"name": name}}
    )
    assert made.status == 201, made.body
    return made.body


def _token_secret(admin: Client, ns: str, account: str, name: str, **extra: object) -> dict:
    secret = {
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": name, "annotations": {SA_NAME: account}},
        **extra,
    }
    made = admin.request("POST", SECRETS.format(ns=ns), secret)
    assert made.status == 201, made.body
    return made.body


def _token(secret: dict) -> str:
    return base64.b64decode(secret["data"]["token"]).decode()


def _whoami(client: Client, token: str) -> tuple[int, str | None]:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    reply = client.request("POST", REVIEW, review, token=token)
    if reply.status != 201:
        return reply.status, None
    return reply.status, reply.body["status"]["userInfo"]["username"]


def _raw_authorization(client: Client, value: str, path: str = "/api/v1/namespaces") -> int:
    return client.request("GET", path, token="", headers=[("Authorization", value)]).status


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer",
        "Bearer ",
        "Token {admin}",
        "Basic {basic}",  # the admin token as a password: no basic auth here
        "Bearer {admin}x",
        "Bearer x{admin}",
        "Bearer {half}",
        "Bearer \u00e9t\u00e9",  # latin-1 on the wire: hmac.compare_digest raised on it (500)
        "Bearer tulle-sa.e30.\u00e9",  # a TokenRequest-shaped one with a non-ASCII mac
        "Bearer tulle-sa.",
        "Bearer tulle-sa.!!!.!!!",
    ],
)
def test_garbled_or_foreign_credentials_are_401(client: Client, header: str) -> None:
    basic = base64.b64encode(f"admin:{client.token}".encode()).decode()
    value = header.format(
        admin=client.token, basic=basic, half=client.token[: len(client.token) // 2]
    )
    assert _raw_authorization(client, value) == 401


def test_the_scheme_is_case_insensitive_as_in_kubernetes(client: Client) -> None:
    assert _raw_authorization(client, f"bearer {client.token}") == 200


def test_a_token_in_the_query_string_is_not_a_credential(client: Client) -> None:
    for name in ("access_token", "token"):
        reply = client.request("GET", "/api/v1/namespaces", token="", query={name: client.token})
        assert reply.status == 401


def test_a_tenants_non_ascii_token_secret_breaks_no_one_elses_login(client: Client) -> None:
    """A tenant who may create Secrets stores a token Secret whose token is not ASCII; every
    ServiceAccount login that scanned past it was a 500 (hmac.compare_digest on str)."""
    _namespace(client, "a-tenant")
    _account(client, "a-tenant", "evil")
    _token_secret(
        client,
        "a-tenant",
        "evil",
        "evil-token",
        data={"token": base64.b64encode("\u00e9".encode()).decode()},
    )
    _namespace(client, "shop")
    _account(client, "shop", "robot")
    token = _token(_token_secret(client, "shop", "robot", "robot-token"))
    assert _whoami(client, token) == (201, "system:serviceaccount:shop:robot")
    assert _whoami(client, "\u00fc") == (401, None)


def test_a_secret_token_dies_with_its_account_and_not_revived_by_a_namesake(client: Client) -> None:
    _namespace(client, "shop")
    _account(client, "shop", "robot")
    token = _token(_token_secret(client, "shop", "robot", "robot-token"))
    assert _whoami(client, token) == (201, "system:serviceaccount:shop:robot")
    assert client.request("DELETE", SAS.format(ns="shop") + "/robot").status == 200
    assert _whoami(client, token) == (401, None)
    _account(client, "shop", "robot")  # a new account (new uid) that happens to share the name
    assert _whoami(client, token) == (401, None)
    fresh = _token(_token_secret(client, "shop", "robot", "robot-token-2"))
    assert _whoami(client, fresh) == (201, "system:serviceaccount:shop:robot")


def test_a_token_secret_planted_before_its_account_never_works(client: Client) -> None:
    _namespace(client, "shop")
    planted = _token_secret(client, "shop", "future", "future-token")
    assert SA_UID not in planted["metadata"]["annotations"]
    _account(client, "shop", "future")
    assert _whoami(client, _token(planted)) == (401, None)


def test_a_uid_the_client_sends_is_replaced_by_the_accounts(client: Client) -> None:
    _namespace(client, "shop")
    account = _account(client, "shop", "robot")
    secret = {
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {"name": "t", "annotations": {SA_NAME: "robot", SA_UID: "forged"}},
    }
    made = client.request("POST", SECRETS.format(ns="shop"), secret)
    assert made.body["metadata"]["annotations"][SA_UID] == account["metadata"]["uid"]
    assert _whoami(client, _token(made.body))[0] == 201


def _request_token(client: Client, ns: str, name: str, spec: dict) -> tuple[int, dict]:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    reply = client.request("POST", SAS.format(ns=ns) + f"/{name}/token", body)
    return reply.status, reply.body


def test_a_token_for_another_audience_is_not_accepted_here(client: Client) -> None:
    _account(client, "default", "robot")
    status, made = _request_token(
        client, "default", "robot", {"audiences": ["https://vault.example"]}
    )
    assert status == 201
    assert _whoami(client, made["status"]["token"]) == (401, None)
    both = ["https://vault.example", "https://kubernetes.default.svc.cluster.local"]
    _, made = _request_token(client, "default", "robot", {"audiences": both})
    assert _whoami(client, made["status"]["token"]) == (201, "system:serviceaccount:default:robot")


@pytest.mark.parametrize("audiences", ["https://a.example", [""], [1], {"a": 1}])
def test_malformed_audiences_are_422_naming_the_field(client: Client, audiences: object) -> None:
    _account(client, "default", "robot")
    status, body = _request_token(client, "default", "robot", {"audiences": audiences})
    assert status == 422 and "spec.audiences" in body["message"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize(
    "change",
    [
        {"name": "tulle-agent", "ns": "tulle-system"},  # another (more privileged) account
        {"uid": "00000000-0000-0000-0000-000000000000"},
        {"exp": 2**40},  # a longer life
        {"aud": ["https://kubernetes.default.svc.cluster.local", "x"]},
    ],
)
def test_a_tampered_token_request_token_is_401(client: Client, change: dict) -> None:
    _account(client, "default", "robot")
    _, made = _request_token(client, "default", "robot", {})
    token = made["status"]["token"]
    assert _whoami(client, token)[0] == 201
    payload, mac = token.removeprefix("tulle-sa.").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = _b64(json.dumps({**claims, **change}, sort_keys=True, separators=(",", ":")).encode())
    assert _whoami(client, f"tulle-sa.{forged}.{mac}") == (401, None)
    assert _whoami(client, f"tulle-sa.{payload}.{mac[:-2]}") == (401, None)


def test_wrong_tokens_do_not_make_the_server_read_every_secret(
    client: Client, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each unknown token scanned (and decoded) every Secret: a cheap way, for anyone who
    can reach the port, to make every request slow. Now the Secrets are read once."""
    _namespace(client, "shop")
    _account(client, "shop", "robot")
    token = _token(_token_secret(client, "shop", "robot", "robot-token"))
    for i in range(20):
        client.request(
            "POST", SECRETS.format(ns="shop"), {"kind": "Secret", "metadata": {"name": f"s{i}"}}
        )
    listed: list[object] = []
    real = store.list
    monkeypatch.setattr(
        store, "list", lambda kind=None, *a, **k: listed.append(kind) or real(kind, *a, **k)
    )
    for i in range(10):
        assert _whoami(client, f"wrong-{i}") == (401, None)
        assert _whoami(client, token)[0] == 201
    assert listed.count("Secret") <= 1


def test_a_token_secret_changed_or_deleted_takes_effect_at_once(client: Client) -> None:
    _namespace(client, "shop")
    _account(client, "shop", "robot")
    secret = _token_secret(client, "shop", "robot", "robot-token")
    old = _token(secret)
    assert _whoami(client, old)[0] == 201
    path = SECRETS.format(ns="shop") + "/robot-token"
    new = base64.b64encode(b"a-new-token").decode()
    assert client.request("PUT", path, {**secret, "data": {"token": new}}).status == 200
    assert _whoami(client, old) == (401, None)
    assert _whoami(client, "a-new-token")[0] == 201
    assert client.request("DELETE", path).status == 200
    assert _whoami(client, "a-new-token") == (401, None)
