"""gateway.networking.k8s.io/v1 BackendTLSPolicy and v1 ConfigMap: read, written back,
refused by field with the CRD's messages."""

from __future__ import annotations

from typing import Any

import pytest

from agent.model.backendtls import (
    BackendTLSPolicy,
    LocalObjectReference,
    SubjectAltName,
    SubjectAltNameType,
    TLSPolicyTargetReference,
    WellKnownCACertificates,
)
from agent.model.convert import from_dict, to_dict
from agent.model.core import ConfigMap
from agent.model.kinds import resolve_kind
from tests.unit.model.helpers import DELETE, edit, error_of

POLICY: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "BackendTLSPolicy",
    "metadata": {"name": "echo-tls", "namespace": "shop"},
    "spec": {
        "targetRefs": [{"group": "", "kind": "Service", "name": "echo", "sectionName": "https"}],
        "validation": {
            "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "echo-ca"}],
            "hostname": "echo.shop.svc.cluster.local",
            "subjectAltNames": [
                {"type": "Hostname", "hostname": "*.shop.svc.cluster.local"},
                {"type": "URI", "uri": "spiffe://cluster.local/ns/shop/sa/echo"},
            ],
        },
        "options": {"example.com/min-version": "1.3"},
    },
}
WHERE = "BackendTLSPolicy shop/echo-tls"


def test_reads_the_policy_and_writes_it_back() -> None:
    policy = from_dict(POLICY)
    assert isinstance(policy, BackendTLSPolicy)
    assert policy.spec.target_refs == (TLSPolicyTargetReference("", "Service", "echo", "https"),)
    validation = policy.spec.validation
    assert validation.ca_certificate_refs == (LocalObjectReference("", "ConfigMap", "echo-ca"),)
    assert validation.well_known_ca_certificates is None
    assert validation.hostname == "echo.shop.svc.cluster.local"
    assert validation.subject_alt_names == (
        SubjectAltName(SubjectAltNameType.HOSTNAME, hostname="*.shop.svc.cluster.local"),
        SubjectAltName(SubjectAltNameType.URI, uri="spiffe://cluster.local/ns/shop/sa/echo"),
    )
    assert dict(policy.spec.options) == {"example.com/min-version": "1.3"}
    assert to_dict(policy) == POLICY
    assert from_dict(to_dict(policy)) == policy


def test_system_trust_store_instead_of_refs() -> None:
    doc = edit(POLICY, "spec.validation.caCertificateRefs", DELETE)
    doc = edit(doc, "spec.validation.wellKnownCACertificates", "System")
    policy = from_dict(doc)
    assert isinstance(policy, BackendTLSPolicy)
    assert policy.spec.validation.well_known_ca_certificates is WellKnownCACertificates.SYSTEM
    assert from_dict(to_dict(policy)) == policy


def test_a_reference_of_another_kind_is_kept_for_the_status_to_refuse() -> None:
    """InvalidKind is a ResolvedRefs condition (the spec), not a schema error."""
    doc = edit(POLICY, "spec.validation.caCertificateRefs[0].kind", "Secret")
    policy = from_dict(doc)
    assert isinstance(policy, BackendTLSPolicy)
    assert policy.spec.validation.ca_certificate_refs[0].kind == "Secret"


def test_kind_names_resolve() -> None:
    assert resolve_kind("btlspolicy").kind == "BackendTLSPolicy"
    assert resolve_kind("backendtlspolicies.gateway.networking.k8s.io").kind == "BackendTLSPolicy"
    assert resolve_kind("cm").kind == "ConfigMap"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("spec", DELETE, "spec: required"),
        ("spec.targetRefs", [], "spec.targetRefs: must have at least 1 item"),
        ("spec.targetRefs[0].group", DELETE, "spec.targetRefs[0].group: required"),
        ("spec.targetRefs[0].kind", "", "spec.targetRefs[0].kind: invalid value"),
        ("spec.targetRefs[0].name", DELETE, "spec.targetRefs[0].name: required"),
        ("spec.targetRefs[0].sectionName", "Bad_Port", "spec.targetRefs[0].sectionName: invalid"),
        ("spec.validation", DELETE, "spec.validation: required"),
        ("spec.validation.hostname", DELETE, "spec.validation.hostname: required"),
        (
            "spec.validation.hostname",
            "*.shop.example",
            "spec.validation.hostname: invalid value \"*.shop.example\": wildcards",
        ),
        ("spec.validation.hostname", "10.0.0.1", "must be a hostname, not an IP address"),
        (
            "spec.validation.wellKnownCACertificates",
            "Mozilla",
            "spec.validation.wellKnownCACertificates: unsupported value \"Mozilla\"",
        ),
        (
            "spec.validation.wellKnownCACertificates",
            "System",
            "spec.validation: must not contain both caCertificateRefs and "
            "wellKnownCACertificates",
        ),
        (
            "spec.validation.caCertificateRefs",
            [],
            "spec.validation: must specify either caCertificateRefs or wellKnownCACertificates",
        ),
        (
            "spec.validation.caCertificateRefs",
            [{"group": "", "kind": "ConfigMap", "name": f"ca{i}"} for i in range(9)],
            "spec.validation.caCertificateRefs: must have at most 8 items, got 9",
        ),
        (
            "spec.validation.caCertificateRefs",
            [{"group": "", "kind": "ConfigMap", "name": "ca"}] * 2,
            "spec.validation.caCertificateRefs[1]: duplicate value",
        ),
        (
            "spec.validation.caCertificateRefs[0].name",
            DELETE,
            "spec.validation.caCertificateRefs[0].name: required",
        ),
        (
            "spec.validation.subjectAltNames",
            [{"type": "URI", "uri": f"spiffe://td/{i}"} for i in range(6)],
            "spec.validation.subjectAltNames: must have at most 5 items, got 6",
        ),
        (
            "spec.validation.subjectAltNames[0].type",
            "IPAddress",
            "spec.validation.subjectAltNames[0].type: unsupported value \"IPAddress\"",
        ),
        (
            "spec.validation.subjectAltNames[0]",
            {"type": "Hostname"},
            "spec.validation.subjectAltNames[0].hostname: required when type is Hostname",
        ),
        (
            "spec.validation.subjectAltNames[0]",
            {"type": "Hostname", "hostname": "a.example", "uri": "spiffe://td/a"},
            "spec.validation.subjectAltNames[0].uri: must not be set when type is Hostname",
        ),
        (
            "spec.validation.subjectAltNames[1]",
            {"type": "URI", "uri": "spiffe://td/a", "hostname": "a.example"},
            "spec.validation.subjectAltNames[1].hostname: must not be set when type is URI",
        ),
        (
            "spec.validation.subjectAltNames[1].uri",
            "echo.shop",
            "spec.validation.subjectAltNames[1].uri: invalid value \"echo.shop\": must be an "
            "absolute URI",
        ),
        (
            "spec.validation.subjectAltNames[1].uri",
            "spiffe:",
            "spec.validation.subjectAltNames[1].uri: invalid value \"spiffe:\"",
        ),
        ("spec.options", {"/bad": "x"}, "spec.options[/bad]: invalid value"),
        ("spec.options", {"a.example/k": "x" * 4097}, "must be at most 4096 characters"),
        (
            "spec.options",
            {f"example.com/k{i}": "v" for i in range(17)},
            "spec.options: must have at most 16 entries, got 17",
        ),
    ],
)
def test_refusals_name_the_field(path: str, value: Any, expected: str) -> None:
    message = error_of(edit(POLICY, path, value))
    assert message.startswith(WHERE)
    assert expected in message


def test_target_refs_are_distinct_with_section_names() -> None:
    base = {"group": "", "kind": "Service", "name": "echo"}
    same = edit(POLICY, "spec.targetRefs", [{**base, "sectionName": "a"}] * 2)
    assert "spec.targetRefs[1]: duplicate value" in error_of(same)
    mixed = edit(POLICY, "spec.targetRefs", [{**base, "sectionName": "a"}, base])
    assert (
        "spec.targetRefs[1].sectionName: sectionName must be specified when targetRefs "
        "includes 2 or more references to the same target"
    ) in error_of(mixed)
    two_ports = edit(
        POLICY, "spec.targetRefs", [{**base, "sectionName": "a"}, {**base, "sectionName": "b"}]
    )
    assert len(from_dict(two_ports).spec.target_refs) == 2  # type: ignore[union-attr]


def test_apiversion_is_v1_only() -> None:
    doc = edit(POLICY, "apiVersion", "gateway.networking.k8s.io/v1alpha3")
    assert "unsupported apiVersion" in error_of(doc)


CONFIG_MAP: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "echo-ca", "namespace": "shop"},
    "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n..."},
}


def test_config_map_reads_and_writes_back() -> None:
    config_map = from_dict(CONFIG_MAP)
    assert isinstance(config_map, ConfigMap)
    assert config_map.data["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    assert to_dict(config_map) == CONFIG_MAP


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"bad/key": "x"}, "ConfigMap shop/echo-ca: data[bad/key]: invalid value"),
        ({"ca.crt": 3}, "ConfigMap shop/echo-ca: data[ca.crt]: expected string, got integer 3"),
        ([], "ConfigMap shop/echo-ca: data: expected object, got array"),
    ],
)
def test_config_map_refusals(data: Any, expected: str) -> None:
    assert expected in error_of(edit(CONFIG_MAP, "data", data))
