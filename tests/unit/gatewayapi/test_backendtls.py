"""BackendTLSPolicy attachment (gatewayapi/backendtls.py): which TLS each Service port
gets, and the Accepted / ResolvedRefs status of each policy (GEP-1897, GEP-713)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from agent.model.backendtls import BackendTLSPolicy
from agent.model.convert import from_dict
from agent.model.core import ConfigMap, Service
from gatewayapi.backendtls import attach_backend_tls, ca_problem, gateways_by_service, tls_by_port

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

NOW = datetime.datetime(2026, 12, 6, 10, 0, tzinfo=datetime.UTC)


def _ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CA = _ca_pem()


def _service(name: str = "echo", ports: tuple[str, ...] = ("https", "http")) -> Service:
    svc = from_dict({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"ports": [{"name": p, "port": 8443 + i} for i, p in enumerate(ports)]},
    })
    assert isinstance(svc, Service)
    return svc


def _config_map(name: str = "echo-ca", data: dict[str, str] | None = None) -> ConfigMap:
    cm = from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "shop"},
                    "data": {"ca.crt": CA} if data is None else data})
    assert isinstance(cm, ConfigMap)
    return cm


def _policy(name: str = "echo-tls", *, section: str | None = "https",
            refs: list[dict[str, str]] | None = None, created: str = "2026-01-01T00:00:00Z",
            service: str = "echo") -> BackendTLSPolicy:
    target: dict[str, Any] = {"group": "", "kind": "Service", "name": service}
    if section is not None:
        target["sectionName"] = section
    validation: dict[str, Any] = {"hostname": "echo.shop.example"}
    if refs == []:
        validation["wellKnownCACertificates"] = "System"
    else:
        validation["caCertificateRefs"] = refs or [
            {"group": "", "kind": "ConfigMap", "name": "echo-ca"}
        ]
    policy = from_dict({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "BackendTLSPolicy",
        "metadata": {"name": name, "namespace": "shop", "creationTimestamp": created,
                     "generation": 2},
        "spec": {"targetRefs": [target], "validation": validation},
    })
    assert isinstance(policy, BackendTLSPolicy)
    return policy


def _conditions(status: dict[str, Any], index: int = 0) -> dict[str, tuple[str, str, str]]:
    entry = status["ancestors"][index]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in entry["conditions"]}


def test_a_port_with_a_policy_gets_its_ca_and_other_ports_stay_plaintext() -> None:
    result = attach_backend_tls([_policy()], [_service()], [_config_map()], {}, NOW)
    tls = result.lookup("shop", "echo", "https")
    assert tls is not None and tls.hostname == "echo.shop.example" and not tls.refused
    assert tls.ca_pem == CA.encode()
    assert result.lookup("shop", "echo", "http") is None
    assert result.lookup("other", "echo", "https") is None
    status = result.statuses["shop/echo-tls"]
    assert status["ancestors"][0]["ancestorRef"] == {
        "group": "", "kind": "Service", "name": "echo", "namespace": "shop",
        "sectionName": "https"}
    conditions = _conditions(status)
    assert conditions["Accepted"][:2] == ("True", "Accepted")
    assert conditions["ResolvedRefs"][:2] == ("True", "ResolvedRefs")
    assert status["ancestors"][0]["conditions"][0]["observedGeneration"] == 2


def test_system_store_and_whole_service_policies() -> None:
    result = attach_backend_tls([_policy(section=None, refs=[])], [_service()], [], {}, NOW)
    for port in ("https", "http", None):
        tls = result.lookup("shop", "echo", port)
        assert tls is not None and tls.ca_pem is None


def test_a_port_policy_wins_over_the_whole_service_one() -> None:
    whole = _policy("whole", section=None, refs=[])
    port = _policy("port", created="2026-06-01T00:00:00Z")
    result = attach_backend_tls([whole, port], [_service()], [_config_map()], {}, NOW)
    assert result.lookup("shop", "echo", "https").policy == "shop/port"  # type: ignore[union-attr]
    assert result.lookup("shop", "echo", "http").policy == "shop/whole"  # type: ignore[union-attr]


def test_the_older_policy_wins_and_the_other_is_conflicted() -> None:
    newer = _policy("b-newer", created="2026-02-01T00:00:00Z", refs=[])
    older = _policy("z-older")
    result = attach_backend_tls([newer, older], [_service()], [_config_map()], {}, NOW)
    assert result.lookup("shop", "echo", "https").policy == "shop/z-older"  # type: ignore[union-attr]
    status, reason, message = _conditions(result.statuses["shop/b-newer"])["Accepted"]
    assert (status, reason) == ("False", "Conflicted") and "shop/z-older" in message


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (_policy(service="gone"), "Service shop/gone not found"),
        (_policy(section="grpc"), "Service shop/echo port grpc not found"),
    ],
)
def test_missing_targets(policy: BackendTLSPolicy, expected: str) -> None:
    result = attach_backend_tls([policy], [_service()], [_config_map()], {}, NOW)
    assert _conditions(result.statuses["shop/echo-tls"])["Accepted"] == (
        "False", "TargetNotFound", expected)
    assert result.ports == {}


@pytest.mark.parametrize(
    ("refs", "maps", "reason", "message"),
    [
        ([{"group": "", "kind": "Secret", "name": "echo-ca"}], [_config_map()], "InvalidKind",
         "caCertificateRefs[0]: unsupported kind Secret (ConfigMap only)"),
        (None, [], "InvalidCACertificateRef",
         "caCertificateRefs[0]: ConfigMap shop/echo-ca not found"),
        (None, [_config_map(data={"tls.crt": CA})], "InvalidCACertificateRef",
         "caCertificateRefs[0]: ConfigMap shop/echo-ca has no key ca.crt"),
        (None, [_config_map(data={"ca.crt": "not a certificate"})], "InvalidCACertificateRef",
         "caCertificateRefs[0]: ConfigMap shop/echo-ca holds no PEM certificate"),
    ],
)
def test_no_usable_ca_refuses_the_port_and_says_why(
    refs: list[dict[str, str]] | None, maps: list[ConfigMap], reason: str, message: str
) -> None:
    result = attach_backend_tls([_policy(refs=refs)], [_service()], maps, {}, NOW)
    conditions = _conditions(result.statuses["shop/echo-tls"])
    assert conditions["ResolvedRefs"] == ("False", reason, message)
    assert conditions["Accepted"][:2] == ("False", "NoValidCACertificate")
    tls = result.lookup("shop", "echo", "https")
    assert tls is not None and tls.refused == message  # fails closed, never plaintext


def test_one_bad_ref_of_two_keeps_the_good_ca() -> None:
    refs = [{"group": "", "kind": "ConfigMap", "name": "gone"},
            {"group": "", "kind": "ConfigMap", "name": "echo-ca"}]
    result = attach_backend_tls([_policy(refs=refs)], [_service()], [_config_map()], {}, NOW)
    conditions = _conditions(result.statuses["shop/echo-tls"])
    assert conditions["ResolvedRefs"][:2] == ("False", "InvalidCACertificateRef")
    assert conditions["Accepted"][:2] == ("True", "Accepted")
    tls = result.lookup("shop", "echo", "https")
    assert tls is not None and tls.ca_pem == CA.encode() and not tls.refused


def test_transition_times_are_kept_while_a_condition_holds() -> None:
    first = attach_backend_tls([_policy()], [_service()], [_config_map()], {}, NOW)
    later = NOW + datetime.timedelta(hours=1)
    again = attach_backend_tls([_policy()], [_service()], [_config_map()], first.statuses,
                               later)
    assert again.statuses == first.statuses
    broken = attach_backend_tls([_policy()], [_service()], [], first.statuses, later)
    times = {c["type"]: c["lastTransitionTime"]
             for c in broken.statuses["shop/echo-tls"]["ancestors"][0]["conditions"]}
    assert times == {"Accepted": "2026-12-06T11:00:00Z", "ResolvedRefs": "2026-12-06T11:00:00Z"}


def test_ca_problem() -> None:
    assert ca_problem(CA) is None
    assert ca_problem("") == "holds no PEM certificate"
    garbled = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert (ca_problem(garbled) or "").startswith("holds no usable CA certificate")


def test_tls_by_port_maps_port_names_to_the_numbers_routes_use() -> None:
    table = tls_by_port([_policy()], [_service(), _service("plain")], [_config_map()])
    assert set(table) == {("shop", "echo", 8443)}  # "https" is 8443; "http" (8444) is not
    assert table[("shop", "echo", 8443)].ca_pem == CA.encode()


def _route(kind: str, name: str, parents: list[dict[str, Any]], backends: list[dict[str, Any]],
           ns: str = "shop") -> Any:
    version = "gateway.networking.k8s.io/v1"
    return from_dict({"apiVersion": version, "kind": kind,
                      "metadata": {"name": name, "namespace": ns},
                      "spec": {"parentRefs": parents, "rules": [{"backendRefs": backends}]}})


def test_gateways_by_service_follows_parent_and_backend_refs() -> None:
    routes = [
        _route("HTTPRoute", "a", [{"name": "edge"}, {"name": "other", "namespace": "infra"}],
               [{"name": "echo", "port": 8443}]),
        _route("GRPCRoute", "b", [{"name": "edge"}], [{"name": "echo", "port": 8443},
                                                      {"name": "api", "namespace": "x",
                                                       "port": 1}]),
        # a mesh route (a Service parent) and a non-Service backend add no Gateway
        _route("HTTPRoute", "mesh", [{"group": "", "kind": "Service", "name": "echo",
                                      "port": 8443}], [{"name": "db", "port": 5432}]),
        _route("HTTPRoute", "c", [{"name": "edge"}],
               [{"group": "example.com", "kind": "Bucket", "name": "echo"}]),
    ]
    assert gateways_by_service(routes) == {
        ("shop", "echo"): [("infra", "other"), ("shop", "edge")],
        ("x", "api"): [("shop", "edge")],
    }


def test_each_gateway_routing_to_a_target_is_an_ancestor_with_its_conditions() -> None:
    """Upstream's conformance looks the policy's conditions up under the Gateway."""
    gateways = {("shop", "echo"): [("infra", "edge")]}
    result = attach_backend_tls([_policy()], [_service()], [_config_map()], {}, NOW, gateways)
    status = result.statuses["shop/echo-tls"]
    refs = [a["ancestorRef"] for a in status["ancestors"]]
    assert refs[1] == {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                       "name": "edge", "namespace": "infra"}
    assert _conditions(status, 1) == _conditions(status, 0)
    later = NOW + datetime.timedelta(hours=1)
    again = attach_backend_tls([_policy()], [_service()], [_config_map()], result.statuses,
                               later, gateways)
    assert again.statuses == result.statuses  # transition times kept per ancestor


def test_a_gateway_routing_to_a_missing_target_is_told_so() -> None:
    gateways = {("shop", "gone"): [("shop", "edge")]}
    result = attach_backend_tls([_policy(service="gone")], [_service()], [_config_map()], {},
                                NOW, gateways)
    status = result.statuses["shop/echo-tls"]
    assert status["ancestors"][1]["ancestorRef"]["name"] == "edge"
    assert _conditions(status, 1)["Accepted"][:2] == ("False", "TargetNotFound")


def test_ancestors_are_bounded_at_sixteen() -> None:
    gateways = {("shop", "echo"): [("shop", f"gw{i:02}") for i in range(20)]}
    result = attach_backend_tls([_policy()], [_service()], [_config_map()], {}, NOW, gateways)
    ancestors = result.statuses["shop/echo-tls"]["ancestors"]
    assert len(ancestors) == 16 and ancestors[0]["ancestorRef"]["kind"] == "Service"
