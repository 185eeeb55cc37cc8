"""Gateway ``spec.tls.backend.clientCertificateRef`` (GEP-3155): the reader, the Gateway's
``ResolvedRefs`` condition with the v1.6 API's reasons (InvalidClientCertificateRef,
RefNotPermitted), ReferenceGrants, and what the waypoint is given to present."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.gateway import Gateway
from gatewayapi import CONTROLLER_NAME, RoutingInputs, compute_status
from gatewayapi.backendclientcert import client_certificates
from gatewayapi.backends import Grants
from l7proxy.tlscerts import certificate_problem

pytest.importorskip("cryptography")
from tests.unit.l7proxy.frontend_pki import Authority, Leaf  # noqa: E402

GW = "gateway.networking.k8s.io/v1"
CLASS = {"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tulle"},
         "spec": {"controllerName": CONTROLLER_NAME}}
LEAF = Authority("gateway client CA").issue("gateway", client=True)


def gateway_doc(ref: dict[str, Any] | None, namespace: str = "infra") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "gatewayClassName": "tulle",
        "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}],
    }
    if ref is not None:
        spec["tls"] = {"backend": {"clientCertificateRef": ref}}
    return {"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": namespace}, "spec": spec}


def secret(name: str = "client", namespace: str = "infra", leaf: Leaf = LEAF,
           type_: str = "kubernetes.io/tls", key: bytes | None = None) -> Any:
    data = {"tls.crt": base64.b64encode(leaf.crt).decode(),
            "tls.key": base64.b64encode(leaf.key if key is None else key).decode()}
    return from_dict({"apiVersion": "v1", "kind": "Secret", "type": type_,
                      "metadata": {"name": name, "namespace": namespace}, "data": data})


GRANT = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
         "metadata": {"name": "client", "namespace": "certs"},
         "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                            "namespace": "infra"}],
                  "to": [{"group": "", "kind": "Secret"}]}}


def inputs(ref: dict[str, Any] | None, secrets: list[Any],
           grants: tuple[dict[str, Any], ...] = ()) -> RoutingInputs:
    return RoutingInputs.of(
        gateways=[from_dict(gateway_doc(ref))],
        gateway_classes=[from_dict(CLASS)],
        secrets=secrets,
        reference_grants=[from_dict(g) for g in grants],
    )


def conditions(ref: dict[str, Any] | None, secrets: list[Any],
               grants: tuple[dict[str, Any], ...] = ()) -> dict[str, tuple[str, str, str]]:
    status = compute_status(inputs(ref, secrets, grants), certificate_check=certificate_problem)
    return {c["type"]: (c["status"], c["reason"], c["message"])
            for c in status.gateways["infra/gw"]["conditions"]}


# --- reader ------------------------------------------------------------------------------


def test_reader_defaults_the_kind_to_secret_and_round_trips() -> None:
    gateway = from_dict(gateway_doc({"name": "client"}))
    assert isinstance(gateway, Gateway)
    assert gateway.spec.tls is not None and gateway.spec.tls.backend is not None
    ref = gateway.spec.tls.backend.client_certificate_ref
    assert ref is not None and (ref.group, ref.kind, ref.name, ref.namespace) == (
        "", "Secret", "client", None)
    assert from_dict(to_dict(gateway)) == gateway


@pytest.mark.parametrize(("ref", "field"), [
    ({"kind": "Secret"}, "clientCertificateRef.name"),
    ({"name": "client", "namespace": "Not_A_Namespace"}, "clientCertificateRef.namespace"),
    ({"name": "client", "kind": "not a kind"}, "clientCertificateRef.kind"),
])
def test_reader_rejects_a_malformed_reference(ref: dict[str, Any], field: str) -> None:
    with pytest.raises(ConversionError, match=field.replace(".", r"\.")):
        from_dict(copy.deepcopy(gateway_doc(ref)))


# --- status ------------------------------------------------------------------------------


def test_a_resolved_reference_is_resolved_refs_true() -> None:
    got = conditions({"name": "client"}, [secret()])
    assert got["ResolvedRefs"][:2] == ("True", "ResolvedRefs")
    assert got["Accepted"][0] == got["Programmed"][0] == "True"


def test_a_gateway_without_backend_tls_has_no_resolved_refs_condition() -> None:
    assert "ResolvedRefs" not in conditions(None, [secret()])


@pytest.mark.parametrize(("ref", "secrets", "reason", "words"), [
    ({"name": "missing"}, [], "InvalidClientCertificateRef", "Secret infra/missing not found"),
    ({"name": "client"}, [secret(type_="Opaque")], "InvalidClientCertificateRef",
     "must be of type kubernetes.io/tls"),
    ({"name": "client", "kind": "ConfigMap"}, [secret()], "InvalidClientCertificateRef",
     "unsupported kind ConfigMap"),
    ({"name": "client", "group": "example.com", "kind": "Secret"}, [secret()],
     "InvalidClientCertificateRef", "unsupported kind example.com/Secret"),
    # the attacker's: a Secret of another namespace, without a ReferenceGrant there
    ({"name": "client", "namespace": "certs"}, [secret(namespace="certs")], "RefNotPermitted",
     "no ReferenceGrant in certs allows Gateways from infra"),
    # RefNotPermitted first: a missing Secret elsewhere is not revealed without a grant
    ({"name": "missing", "namespace": "certs"}, [], "RefNotPermitted", "no ReferenceGrant"),
    # a malformed PEM, and a certificate whose key is another's
    ({"name": "client"}, [secret(leaf=Leaf(b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                           b"-----END CERTIFICATE-----\n", LEAF.key))],
     "InvalidClientCertificateRef", "tls.crt holds no valid PEM certificate"),
    ({"name": "client"}, [secret(key=Authority("x").issue("y", client=True).key)],
     "InvalidClientCertificateRef", "tls.key is not a valid private key for tls.crt"),
])
def test_an_unresolved_reference_says_why(
    ref: dict[str, Any], secrets: list[Any], reason: str, words: str
) -> None:
    got = conditions(ref, secrets)
    assert got["ResolvedRefs"][:2] == ("False", reason)
    assert words in got["ResolvedRefs"][2]
    # the Gateway still serves: only its connections to mutual-TLS backends are affected
    assert got["Accepted"][0] == got["Programmed"][0] == "True"
    gateways = inputs(ref, secrets).gateways
    assert client_certificates(gateways, secrets, Grants(()), certificate_problem) == {}


def test_a_reference_grant_allows_a_secret_of_another_namespace() -> None:
    ref = {"name": "client", "namespace": "certs"}
    got = conditions(ref, [secret(namespace="certs")], (GRANT,))
    assert got["ResolvedRefs"][:2] == ("True", "ResolvedRefs")
    found = client_certificates(inputs(ref, []).gateways, [secret(namespace="certs")],
                                Grants([from_dict(GRANT)]), certificate_problem)
    assert set(found) == {("infra", "gw")}
    assert (found[("infra", "gw")].cert_pem, found[("infra", "gw")].key_pem) == (
        LEAF.crt, LEAF.key)


def test_a_grant_for_another_namespace_or_kind_does_not_allow_it() -> None:
    other_from = copy.deepcopy(GRANT)
    other_from["spec"]["from"][0]["namespace"] = "elsewhere"
    other_to = copy.deepcopy(GRANT)
    other_to["spec"]["to"][0]["kind"] = "ConfigMap"
    named_other = copy.deepcopy(GRANT)
    named_other["spec"]["to"][0]["name"] = "another-secret"
    for grant in (other_from, other_to, named_other):
        got = conditions({"name": "client", "namespace": "certs"}, [secret(namespace="certs")],
                         (grant,))
        assert got["ResolvedRefs"][:2] == ("False", "RefNotPermitted")


def test_the_waypoint_gets_the_certificate_of_each_gateway_that_resolves() -> None:
    good = from_dict(gateway_doc({"name": "client"}))
    bad = from_dict({**gateway_doc({"name": "missing"}),
                     "metadata": {"name": "bad", "namespace": "infra"}})
    plain = from_dict({**gateway_doc(None), "metadata": {"name": "plain", "namespace": "infra"}})
    found = client_certificates([good, bad, plain], [secret()], Grants(()), certificate_problem)
    assert list(found) == [("infra", "gw")] and found[("infra", "gw")].gateway == "infra/gw"
