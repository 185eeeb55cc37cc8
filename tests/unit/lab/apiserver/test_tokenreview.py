"""TokenReview and tokens bound to a Node or a Pod: the binding in user.extra under
Kubernetes' keys, the token dead once its object is deleted or replaced, forged and unbound
tokens, audiences, RBAC, discovery."""

from __future__ import annotations

from typing import Any

import pytest

from lab.apiserver.errors import ApiError
from lab.apiserver.tokenrequest import (
    CREDENTIAL_ID,
    NODE_NAME,
    NODE_UID,
    POD_NAME,
    POD_UID,
    answer,
    signing_key,
)
from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client

KEY = signing_key(frozenset({"admin"})) or b""
ACCOUNT = {"metadata": {"name": "agent", "namespace": "kube-system", "uid": "sa-1"}}
SAS = "/api/v1/namespaces/kube-system/serviceaccounts"
REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
NODES = "/api/v1/nodes"


def _node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def _request(ref: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    if ref is not None:
        spec["boundObjectRef"] = ref
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


def _review(token: str, audiences: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec}


def _token(client: Client, ref: dict[str, Any] | None = None, **spec: Any) -> str:
    made = client.request("POST", f"{SAS}/agent/token", _request(ref, **spec))
    assert made.status == 201, made.body
    return str(made.body["status"]["token"])


@pytest.fixture
def agent(client: Client, store: Store) -> Client:
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "agent"}}
    assert client.request("POST", SAS, sa).status == 201
    store.create(_node("n1"))  # Nodes are the kubelet's to register (NODE_REGISTRARS)
    return client


def test_a_node_bound_token_reviews_with_its_node_until_the_node_is_replaced(
    agent: Client, store: Store
) -> None:
    node_uid = agent.request("GET", f"{NODES}/n1").body["metadata"]["uid"]
    token = _token(agent, {"kind": "Node", "apiVersion": "v1", "name": "n1"})
    got = agent.request("POST", REVIEWS, _review(token))
    assert got.status == 201 and got.body["kind"] == "TokenReview"
    status = got.body["status"]
    assert status["authenticated"] is True
    assert status["audiences"] == ["https://kubernetes.default.svc.cluster.local"]
    user = status["user"]
    sa_uid = agent.request("GET", f"{SAS}/agent").body["metadata"]["uid"]
    assert user["username"] == "system:serviceaccount:kube-system:agent"
    assert user["uid"] == sa_uid
    assert "system:serviceaccounts:kube-system" in user["groups"]
    assert user["extra"][NODE_NAME] == ["n1"] and user["extra"][NODE_UID] == [node_uid]
    assert user["extra"][CREDENTIAL_ID][0].startswith("JTI=")
    # The token is also a working API credential for its account, while the node lives.
    assert agent.request("GET", "/api/v1/namespaces", token=token).status in (200, 403)
    # The Node deleted and recreated under the same name: another uid, the token is dead.
    assert agent.request("DELETE", f"{NODES}/n1").status == 200
    dead = agent.request("POST", REVIEWS, _review(token)).body["status"]
    assert dead["authenticated"] is False and "Node n1" in dead["error"]
    assert "deleted or replaced" in dead["error"] and dead["user"] == {}
    store.create(_node("n1"))
    assert agent.request("POST", REVIEWS, _review(token)).body["status"]["authenticated"] is False
    assert agent.request("GET", "/api/v1/namespaces", token=token).status == 401


def test_an_unbound_token_has_no_node_and_a_forged_one_is_refused(agent: Client) -> None:
    token = _token(agent)
    status = agent.request("POST", REVIEWS, _review(token)).body["status"]
    assert status["authenticated"] is True and NODE_NAME not in status["user"].get("extra", {})
    payload, mac = token.removeprefix("tulle-sa.").split(".")
    forged = f"tulle-sa.{payload}.{mac[:-2]}AA"
    refused = agent.request("POST", REVIEWS, _review(forged)).body["status"]
    assert refused == {
        "authenticated": False,
        "user": {},
        "error": "invalid bearer token: forged, malformed or expired",
    }
    assert agent.request("POST", REVIEWS, _review("nonsense")).body["status"]["error"] == (
        "invalid bearer token"
    )
    # The admin token reviews as the admin (no uid, no extra).
    admin = agent.request("POST", REVIEWS, _review(agent.token)).body["status"]
    assert admin["authenticated"] and admin["user"]["username"] == "tulle:admin"


def test_audiences_must_meet(agent: Client) -> None:
    token = _token(agent, audiences=["tulle-ca"])
    ok = agent.request("POST", REVIEWS, _review(token, ["tulle-ca", "other"])).body["status"]
    assert ok["authenticated"] and ok["audiences"] == ["tulle-ca"]
    no = agent.request("POST", REVIEWS, _review(token)).body["status"]
    assert no["authenticated"] is False and "invalid for the target audiences" in no["error"]
    # Nor is it an API credential: it was minted for someone else.
    assert agent.request("GET", "/api/v1/namespaces", token=token).status == 401


def test_a_pod_bound_token_names_the_pod_and_its_node() -> None:
    objects = {
        ("Pod", "kube-system", "agent-x"): {
            "metadata": {"name": "agent-x", "uid": "pod-1"},
            "spec": {"nodeName": "n2"},
        },
        ("Node", "", "n2"): {"metadata": {"name": "n2", "uid": "node-2"}},
    }
    made = answer(
        KEY,
        ACCOUNT,
        _request({"kind": "Pod", "name": "agent-x"}),
        lookup=lambda k, ns, n: objects.get((k, ns, n)),
    )
    assert made["spec"]["boundObjectRef"] == {
        "kind": "Pod",
        "apiVersion": "v1",
        "name": "agent-x",
        "uid": "pod-1",
    }
    from lab.apiserver.tokenrequest import binding_alive, extras, verify

    claims = verify(KEY, made["status"]["token"])
    assert claims is not None
    got = extras(claims)
    assert got[POD_NAME] == ["agent-x"] and got[POD_UID] == ["pod-1"]
    assert got[NODE_NAME] == ["n2"] and got[NODE_UID] == ["node-2"]
    assert binding_alive(claims, lambda k, ns, n: objects.get((k, ns, n)))
    del objects[("Pod", "kube-system", "agent-x")]
    assert not binding_alive(claims, lambda k, ns, n: objects.get((k, ns, n)))


@pytest.mark.parametrize(
    ("ref", "code", "message"),
    [
        ({"kind": "Secret", "name": "s"}, 422, "Unsupported value: 'Secret'"),
        ({"kind": "Node"}, 422, "spec.boundObjectRef.name: Required value"),
        ({"kind": "Node", "name": "n1", "apiVersion": "v2"}, 422, "apiVersion"),
        ({"kind": "Node", "name": "n9"}, 404, 'nodes "n9" not found'),
        ({"kind": "Node", "name": "n1", "uid": "other"}, 404, "with uid other not found"),
        ("Node/n1", 422, "must be an object"),
    ],
)
def test_bad_bindings_are_refused(ref: Any, code: int, message: str) -> None:
    nodes = {("Node", "", "n1"): {"metadata": {"name": "n1", "uid": "u1"}}}
    with pytest.raises(ApiError) as err:
        answer(KEY, ACCOUNT, _request(ref), lookup=lambda k, ns, n: nodes.get((k, ns, n)))
    assert err.value.code == code and message in err.value.message


def test_reviews_need_rbac_a_token_and_are_discoverable(agent: Client) -> None:
    token = _token(agent)
    # An account without create on tokenreviews may not ask (system:auth-delegator's right).
    assert agent.request("POST", REVIEWS, _review(token), token=token).status == 403
    assert agent.request("POST", REVIEWS, {"kind": "TokenReview", "spec": {}}).status == 400
    assert agent.request("GET", REVIEWS).status == 405
    found = agent.request("GET", "/apis/authentication.k8s.io/v1").body
    entry = next(r for r in found["resources"] if r["name"] == "tokenreviews")
    assert entry["verbs"] == ["create"] and entry["namespaced"] is False


def test_kubectl_creates_a_node_bound_token_and_reviews_it(
    lab: tuple[Store, Any, Any], tmp_path: Any
) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    store, kubeconfig, _ = lab
    kubectl = Path(sys.executable).parent / "kubectl"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def run(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [str(kubectl), *args], capture_output=True, text=True, timeout=60, env=env, input=stdin
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("create", "serviceaccount", "agent", "-n", "kube-system")
    store.create(_node("n1"))
    token = run(
        "create",
        "token",
        "agent",
        "-n",
        "kube-system",
        "--bound-object-kind",
        "Node",
        "--bound-object-name",
        "n1",
    ).strip()
    review = json.dumps(_review(token))
    got = json.loads(run("create", "-f", "-", "-o", "json", stdin=review))
    assert got["status"]["authenticated"] is True
    assert got["status"]["user"]["extra"][NODE_NAME] == ["n1"]
