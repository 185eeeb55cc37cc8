"""The lab's components run as ServiceAccounts with the ClusterRoles the cluster manifests
ship (deploy/daemonset/rbac.yaml, lab/apiserver/lab-rbac.yaml): least privilege, tested."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.apiserver import identities
from lab.store import Store
from tests.unit.lab.apiserver.conftest import Client, service

SERVICES = "/api/v1/namespaces/default/services"


@pytest.fixture
def tokens(store: Store) -> dict[str, str]:
    return identities.seed(store, identities.load(identities.MANIFESTS))


def test_every_component_gets_a_token(tokens: dict[str, str]) -> None:
    assert sorted(tokens) == [
        "tulle-agent",
        "tulle-controller",
        "tulle-controlplane",
        "tulle-lab-controller",
        "tulle-lab-dns",
        "tulle-relay",  # deploy/daemonset/rbac.yaml: the relay lists Nodes
        "tulle-waypoint",
    ]
    assert len(set(tokens.values())) == 7


def test_the_control_plane_reviews_tokens_and_keeps_to_kube_system(
    client: Client, tokens: dict[str, str]
) -> None:
    ca = tokens["tulle-controlplane"]
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": tokens["tulle-agent"]},
    }
    got = client.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review, token=ca)
    assert got.status == 201 and got.body["status"]["authenticated"] is True
    assert client.request("GET", "/api/v1/pods", token=ca).status == 200
    cms = "/api/v1/namespaces/tulle-system/configmaps"
    assert client.request("GET", f"{cms}/tulle-trust-bundle", token=ca).status == 404  # allowed
    assert client.request("GET", "/api/v1/namespaces/default/secrets/x", token=ca).status == 403
    assert client.request("GET", f"{cms}/other", token=ca).status == 403  # only its two objects
    # The agent may watch the bundle (that one ConfigMap), not the others, nor review tokens.
    agent = tokens["tulle-agent"]
    one = f"{cms}?fieldSelector=metadata.name%3Dtulle-trust-bundle"
    assert client.request("GET", one, token=agent).status == 200
    assert client.request("GET", cms, token=agent).status == 403
    assert (
        client.request(
            "POST", "/apis/authentication.k8s.io/v1/tokenreviews", review, token=agent
        ).status
        == 403
    )


def test_seeding_again_keeps_the_tokens(store: Store, tokens: dict[str, str]) -> None:
    assert identities.seed(store, identities.load(identities.MANIFESTS)) == tokens


def test_the_agent_reads_but_cannot_write(client: Client, tokens: dict[str, str]) -> None:
    agent = tokens["tulle-agent"]
    assert client.request("GET", SERVICES, token=agent).status == 200
    assert (
        client.request("GET", "/apis/discovery.k8s.io/v1/endpointslices", token=agent).status == 200
    )
    assert client.request("GET", "/api/v1/nodes", token=agent).status == 200
    denied = client.request("POST", SERVICES, service("web"), token=agent)
    assert denied.status == 403
    assert denied.body["reason"] == "Forbidden"
    assert client.request("GET", "/api/v1/secrets", token=agent).status == 403


def test_the_dns_cannot_read_secrets_or_nodes(client: Client, tokens: dict[str, str]) -> None:
    dns = tokens["tulle-lab-dns"]
    assert client.request("GET", SERVICES, token=dns).status == 200
    assert client.request("GET", "/api/v1/namespaces/tulle-system/secrets", token=dns).status == 403
    assert client.request("GET", "/api/v1/nodes", token=dns).status == 403


def test_the_controller_writes_endpointslices_not_secrets(
    client: Client, tokens: dict[str, str]
) -> None:
    ctl = tokens["tulle-lab-controller"]
    slice_ = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-1", "namespace": "default"},
        "addressType": "IPv4",
        "endpoints": [],
    }
    created = client.request(
        "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", slice_, token=ctl
    )
    assert created.status == 201, created.body
    # It may create Services now (each Gateway's own), but never a Secret.
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "stolen", "namespace": "default"}, "stringData": {"k": "v"}}
    assert client.request("POST", "/api/v1/namespaces/default/secrets", secret,
                          token=ctl).status == 403


def test_a_manifest_with_another_kind_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "rbac.yaml"
    bad.write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: default}\n")
    with pytest.raises(identities.IdentityError, match="kind 'Secret'"):
        identities.load([bad])


def test_the_relay_lists_nodes_and_reads_nothing_else(
    client: Client, tokens: dict[str, str]
) -> None:
    """agent/observer/relayd.py lists Nodes (no watch) to find the agents; the API server
    enforces exactly that for its account."""
    relay = tokens["tulle-relay"]
    assert client.request("GET", "/api/v1/nodes", token=relay).status == 200
    assert client.request("GET", "/api/v1/nodes?watch=true", token=relay).status == 403
    assert client.request("GET", "/api/v1/pods", token=relay).status == 403
    assert client.request("GET", "/api/v1/namespaces/tulle-system/secrets", token=relay).status \
        == 403
