"""TokenRequest (kubectl create token): tokens bound to the account and an expiry."""

from __future__ import annotations

import pytest

from lab.apiserver.errors import ApiError
from lab.apiserver.tokenrequest import PREFIX, answer, mint, signing_key, verify
from tests.unit.lab.apiserver.conftest import Client

_KEY = signing_key(frozenset({"admin"}))
assert _KEY is not None
KEY: bytes = _KEY
ACCOUNT = {"metadata": {"name": "robot", "namespace": "shop", "uid": "u-1"}}


def test_a_token_verifies_until_it_expires_and_only_under_its_key() -> None:
    token = answer(KEY, ACCOUNT, {"spec": {"expirationSeconds": 600}}, now=1000)["status"]["token"]
    claims = verify(KEY, token, now=1599)
    assert claims is not None and len(claims.pop("jti")) == 32  # a fresh id per token
    assert claims == {
        "ns": "shop", "name": "robot", "uid": "u-1", "exp": 1600,
        "aud": ["https://kubernetes.default.svc.cluster.local"],
    }  # fmt: skip
    assert verify(KEY, token, now=1600) is None
    assert verify(signing_key(frozenset({"other"})), token, now=1000) is None
    # Without an admin token there is no key: nothing verifies, not even a token minted
    # under a key derived from nothing.
    assert signing_key(frozenset()) is None and verify(None, token, now=1000) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "tulle-sa.",
        "tulle-sa.e30.AAAA",  # {} with a wrong mac
        mint(KEY, {"ns": "a", "name": "b", "uid": "c"}),  # no expiry
        mint(KEY, {"exp": "soon"}),
        PREFIX + "%%%." + "x",
    ],
)
def test_forged_or_malformed_tokens_do_not_verify(token: str) -> None:
    assert verify(KEY, token, now=0) is None


def test_a_tampered_payload_does_not_verify() -> None:
    token = mint(KEY, {"ns": "shop", "name": "robot", "uid": "u-1", "exp": 10**10})
    _, mac = token.removeprefix(PREFIX).split(".")
    forged = mint(b"guess", {"ns": "kube-system", "name": "admin", "uid": "", "exp": 10**10})
    assert verify(KEY, f"{PREFIX}{forged.removeprefix(PREFIX).split('.')[0]}.{mac}") is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"expirationSeconds": 60}, "may not specify a duration less than 10 minutes"),
        ({"expirationSeconds": "1h"}, "not a number"),
        ({"boundObjectRef": {"kind": "Pod", "name": "p"}}, "binds no tokens"),
    ],
)
def test_specs_the_server_cannot_honour_are_invalid(spec: dict, message: str) -> None:
    with pytest.raises(ApiError) as err:
        answer(KEY, ACCOUNT, {"spec": spec})
    assert err.value.code == 422 and message in err.value.message


SAS = "/api/v1/namespaces/default/serviceaccounts"


def test_kubectl_create_token_through_the_server(client: Client) -> None:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}}
    assert client.request("POST", SAS, sa).status == 201
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}}
    made = client.request("POST", f"{SAS}/robot/token", request)
    assert made.status == 201 and made.body["kind"] == "TokenRequest"
    token = made.body["status"]["token"]
    who = client.request(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        token=token,
    )
    assert who.body["status"]["userInfo"]["username"] == "system:serviceaccount:default:robot"
    # The token dies with its account, and does not pass to a new one of the same name.
    assert client.request("DELETE", f"{SAS}/robot").status == 200
    assert client.request("POST", SAS, sa).status == 201
    assert client.request("GET", SAS, token=token).status == 401
    assert client.request("POST", f"{SAS}/nope/token", request).status == 404
    assert client.request("GET", f"{SAS}/robot/token").status == 405
