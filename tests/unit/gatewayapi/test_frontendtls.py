"""Gateway ``spec.tls.frontend`` (GEP-91): the reader's errors, which validation each HTTPS
listener gets (perPort over default), and the listener and Gateway conditions for refs that
do not resolve, as the v1.6 API documents them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.model.convert import ConversionError, from_dict, to_dict
from agent.model.gateway import Gateway
from gatewayapi import CONTROLLER_NAME, RouteCompiler, RoutingInputs, compute_status

pytest.importorskip("cryptography")
from tests.unit.l7proxy.frontend_pki import Authority  # noqa: E402

GW = "gateway.networking.k8s.io/v1"
CA = Authority("client CA").pem.decode()


def gateway_doc(frontend: dict[str, Any] | None, namespace: str = "infra") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "gatewayClassName": "tulle",
        "listeners": [
            {"name": "https", "port": 443, "protocol": "HTTPS",
             "tls": {"certificateRefs": [{"name": "server"}]}},
            {"name": "alt", "port": 8443, "protocol": "HTTPS",
             "tls": {"certificateRefs": [{"name": "server"}]}},
            {"name": "http", "port": 80, "protocol": "HTTP"},
        ],
    }
    if frontend is not None:
        spec["tls"] = {"frontend": frontend}
    return {"apiVersion": GW, "kind": "Gateway",
            "metadata": {"name": "gw", "namespace": namespace}, "spec": spec}


def validation(*names: str, mode: str | None = None, **ref: str) -> dict[str, Any]:
    refs = [{"group": "", "kind": "ConfigMap", "name": n, **ref} for n in names]
    out: dict[str, Any] = {"caCertificateRefs": refs}
    if mode:
        out["mode"] = mode
    return {"validation": out}


def config_map(name: str, data: dict[str, str], namespace: str = "infra") -> Any:
    return from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": name, "namespace": namespace}, "data": data})


SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
          "metadata": {"name": "server", "namespace": "infra"},
          "data": {"tls.crt": "Y3J0", "tls.key": "a2V5"}}
CLASS = {"apiVersion": GW, "kind": "GatewayClass", "metadata": {"name": "tulle"},
         "spec": {"controllerName": CONTROLLER_NAME}}


def inputs(frontend: dict[str, Any] | None, config_maps: list[Any],
           grants: list[dict[str, Any]] = ()) -> RoutingInputs:  # type: ignore[assignment]
    return RoutingInputs.of(
        gateways=[from_dict(gateway_doc(frontend))],
        gateway_classes=[from_dict(CLASS)],
        secrets=[from_dict(SECRET)],
        reference_grants=[from_dict(g) for g in grants],
        config_maps=config_maps,
    )


def listener_conditions(status: Any, name: str) -> dict[str, tuple[str, str, str]]:
    [entry] = [ls for ls in status.gateways["infra/gw"]["listeners"] if ls["name"] == name]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in entry["conditions"]}


# --- reader ------------------------------------------------------------------------------


def test_reader_applies_defaults_and_round_trips() -> None:
    doc = gateway_doc({"default": validation("ca"),
                       "perPort": [{"port": 8443, "tls": validation("ca", mode=
                                                                    "AllowInsecureFallback")}]})
    gateway = from_dict(doc)
    assert isinstance(gateway, Gateway)
    assert gateway.spec.tls is not None and gateway.spec.tls.frontend is not None
    frontend = gateway.spec.tls.frontend
    default = frontend.for_port(443)
    assert default is not None and default.mode.value == "AllowValidOnly"
    override = frontend.for_port(8443)
    assert override is not None and override.mode.value == "AllowInsecureFallback"
    assert from_dict(to_dict(gateway)) == gateway


def _with(frontend: dict[str, Any]) -> dict[str, Any]:
    return gateway_doc(frontend)


@pytest.mark.parametrize(("frontend", "message"), [
    ({}, "spec.tls.frontend.default"),
    ({"default": {"validation": {"caCertificateRefs": []}}}, "caCertificateRefs"),
    ({"default": validation("ca", mode="Sometimes")}, "mode"),
    ({"default": validation("ca"), "perPort": [{"port": 443, "tls": validation("a")},
                                               {"port": 443, "tls": validation("b")}]},
     "perPort"),
    ({"default": validation("ca"), "perPort": [{"port": 0, "tls": validation("a")}]},
     "perPort[0].port"),
    ({"default": {"validation": {"caCertificateRefs": [{"kind": "ConfigMap"}]}}}, "name"),
])
def test_reader_rejects_invalid_frontend_tls(frontend: dict[str, Any], message: str) -> None:
    with pytest.raises(ConversionError, match=message.replace(".", r"\.").replace("[", r"\[")):
        from_dict(copy.deepcopy(_with(frontend)))


# --- status ------------------------------------------------------------------------------


def test_resolved_ca_programs_the_https_listeners_with_their_port_validation() -> None:
    frontend = {"default": validation("ca"),
                "perPort": [{"port": 8443, "tls": validation("ca", mode=
                                                             "AllowInsecureFallback")}]}
    the_inputs = inputs(frontend, [config_map("ca", {"ca.crt": CA})])
    status = compute_status(the_inputs)
    for name in ("https", "alt", "http"):
        conditions = listener_conditions(status, name)
        assert conditions["ResolvedRefs"][0] == "True", name
        assert conditions["Programmed"][0] == "True", name
    listeners = {info.name: info for info in RouteCompiler().compile(the_inputs).listeners}
    assert listeners["https"].client_ca == CA.encode()
    assert not listeners["https"].client_ca_optional
    assert listeners["alt"].client_ca_optional
    assert listeners["http"].client_ca is None
    gateway = {c["type"]: c for c in status.gateways["infra/gw"]["conditions"]}
    insecure = gateway["InsecureFrontendValidationMode"]
    assert (insecure["status"], insecure["reason"]) == ("True", "ConfigurationChanged")
    assert "port 8443" in insecure["message"]


def test_no_insecure_condition_when_every_port_needs_a_valid_certificate() -> None:
    status = compute_status(inputs({"default": validation("ca")},
                                   [config_map("ca", {"ca.crt": CA})]))
    types = {c["type"] for c in status.gateways["infra/gw"]["conditions"]}
    assert "InsecureFrontendValidationMode" not in types


@pytest.mark.parametrize(("ref", "config_maps", "reason", "words"), [
    ({}, [], "InvalidCACertificateRef", "ConfigMap infra/ca not found"),
    ({}, [config_map("ca", {"other": CA})], "InvalidCACertificateRef", "has no key ca.crt"),
    ({}, [config_map("ca", {"ca.crt": "garbage"})], "InvalidCACertificateRef",
     "holds no PEM certificate"),
    ({}, [config_map("ca", {"ca.crt": "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                      "-----END CERTIFICATE-----\n"})],
     "InvalidCACertificateRef", "no usable CA certificate"),
    ({"kind": "Secret"}, [], "InvalidCACertificateKind", "unsupported kind Secret"),
    ({"namespace": "certs"}, [config_map("ca", {"ca.crt": CA}, "certs")], "RefNotPermitted",
     "no ReferenceGrant in certs"),
])
def test_unresolved_ca_refs_stop_the_https_listeners_only(
    ref: dict[str, str], config_maps: list[Any], reason: str, words: str
) -> None:
    status = compute_status(inputs({"default": validation("ca", **ref)}, config_maps))
    for name in ("https", "alt"):
        conditions = listener_conditions(status, name)
        assert conditions["ResolvedRefs"][:2] == ("False", reason)
        assert words in conditions["ResolvedRefs"][2]
        assert conditions["Accepted"][:2] == ("False", "NoValidCACertificate")
        assert conditions["Programmed"][0] == "False"
    http = listener_conditions(status, "http")
    assert http["Accepted"][0] == http["ResolvedRefs"][0] == http["Programmed"][0] == "True"
    served = {info.name for info in RouteCompiler().compile(inputs({"default": validation("ca", **ref)},
                                                          config_maps)).listeners}
    assert served == {"http"}  # never served without the validation asked for


def test_a_reference_grant_allows_a_cross_namespace_ca() -> None:
    grant = {"apiVersion": "gateway.networking.k8s.io/v1beta1", "kind": "ReferenceGrant",
             "metadata": {"name": "ca", "namespace": "certs"},
             "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                "namespace": "infra"}],
                      "to": [{"group": "", "kind": "ConfigMap"}]}}
    status = compute_status(inputs({"default": validation("ca", namespace="certs")},
                                   [config_map("ca", {"ca.crt": CA}, "certs")], [grant]))
    assert listener_conditions(status, "https")["ResolvedRefs"][0] == "True"


def test_one_bad_ref_beside_a_good_one_reports_but_keeps_serving() -> None:
    the_inputs = inputs({"default": validation("ca", "missing")},
                        [config_map("ca", {"ca.crt": CA})])
    conditions = listener_conditions(compute_status(the_inputs), "https")
    assert conditions["ResolvedRefs"][:2] == ("False", "InvalidCACertificateRef")
    assert "caCertificateRefs[1] ConfigMap infra/missing" in conditions["ResolvedRefs"][2]
    assert conditions["Accepted"][0] == "True" and conditions["Programmed"][0] == "True"
    [https] = [i for i in RouteCompiler().compile(the_inputs).listeners if i.name == "https"]
    assert https.client_ca == CA.encode()


def test_per_port_override_replaces_the_default_for_its_port_only() -> None:
    status = compute_status(inputs(
        {"default": validation("missing"), "perPort": [{"port": 8443, "tls": validation("ca")}]},
        [config_map("ca", {"ca.crt": CA})],
    ))
    assert listener_conditions(status, "https")["Accepted"][1] == "NoValidCACertificate"
    assert listener_conditions(status, "alt")["Accepted"][0] == "True"


def test_only_the_referenced_ca_config_maps_recompile_the_tables() -> None:
    """Routing reads a ConfigMap only through a Gateway's caCertificateRefs: another one
    changing (an application's configuration) must not recompile every waypoint's tables;
    the referenced one changing (a CA rotation) must."""
    frontend = {"default": validation("ca")}
    compiler = RouteCompiler()
    compiler.compile(inputs(frontend, [config_map("ca", {"ca.crt": CA})]))
    compiler.compile(inputs(frontend, [config_map("ca", {"ca.crt": CA}),
                                       config_map("app", {"a": "1"}),
                                       config_map("ca", {"ca.crt": "x"}, namespace="other")]))
    assert compiler.compilations == 1
    tables = compiler.compile(inputs(frontend, [config_map("ca", {"ca.crt": CA + "\n"})]))
    assert compiler.compilations == 2
    [https] = [i for i in tables.listeners if i.name == "https"]
    assert https.client_ca == (CA + "\n").encode()
