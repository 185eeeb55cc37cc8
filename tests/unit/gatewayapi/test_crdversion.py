"""The Gateway API version check (gatewayapi/crdversion.py): CRDs of several bundle versions
and channels, the one the lab installs, and the GatewayClass SupportedVersion condition."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayapi import compute_status
from gatewayapi.crdversion import (
    BUNDLE_VERSION,
    CHANNEL,
    INSTALLED_VERSION,
    VersionCheck,
    check_crds,
)
from lab import gateway_crds
from tests.unit.gatewayapi.helpers import gateway_class, inputs

NAMES = ("gatewayclasses", "gateways", "httproutes", "referencegrants")


def crd(plural: str, version: str | None = "v1.6.0", channel: str | None = "standard",
        group: str = "gateway.networking.k8s.io") -> dict[str, Any]:
    annotations = {}
    if version is not None:
        annotations[BUNDLE_VERSION] = version
    if channel is not None:
        annotations[CHANNEL] = channel
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "annotations": annotations},
        "spec": {"group": group},
    }


def bundle(version: str | None, channel: str | None = "standard") -> list[dict[str, Any]]:
    return [crd(n, version, channel) for n in NAMES]


@pytest.mark.parametrize(
    ("version", "channel"),
    [("v1.6.0", "standard"), ("v1.6.3", "standard"), ("v1.6.1", "experimental"),
     ("v1.6.0-rc.1", "standard")],
)
def test_a_v1_6_bundle_is_supported(version: str, channel: str) -> None:
    check = check_crds([*bundle(version, channel), crd("pods", "x", group="example.com")])
    assert check == VersionCheck(True, f"Gateway API CRD bundle version {version} is supported")
    assert check.reason == "SupportedVersion"


@pytest.mark.parametrize(
    ("version", "channel", "why"),
    [
        ("v1.0.0", "standard", "v1.0.0, older than Tulle supports"),
        ("v1.5.1", "standard", "v1.5.1, older than Tulle supports"),
        ("v1.7.0", "standard", "v1.7.0, newer than Tulle supports"),
        ("v2.6.0", "standard", "v2.6.0, newer than Tulle supports"),
        (None, "standard", f"has no {BUNDLE_VERSION} annotation"),
        ("", "standard", f"has no {BUNDLE_VERSION} annotation"),
        ("1.6.0", "standard", "not vMAJOR.MINOR.PATCH"),
        ("v1.6", "standard", "not vMAJOR.MINOR.PATCH"),
        ("v1.6.0", None, "channel None, not standard or experimental"),
        ("v1.6.0", "nightly", "channel 'nightly'"),
    ],
)
def test_an_older_newer_or_unknown_bundle_is_unsupported_and_says_what_to_install(
    version: str | None, channel: str | None, why: str
) -> None:
    check = check_crds(bundle(version, channel))
    assert not check.supported and check.reason == "UnsupportedVersion"
    assert why in check.message and check.message.endswith("install Gateway API v1.6.x")
    assert "CRD gatewayclasses.gateway.networking.k8s.io" in check.message


def test_one_stale_crd_among_supported_ones_is_unsupported() -> None:
    crds = [*bundle("v1.6.0")[:3], crd("referencegrants", "v1.2.0")]
    check = check_crds(crds)
    assert not check.supported
    assert "referencegrants.gateway.networking.k8s.io is bundle version v1.2.0" in check.message
    assert "gateways.gateway" not in check.message


def test_mixed_patch_versions_are_unsupported() -> None:
    check = check_crds([*bundle("v1.6.0")[:3], crd("referencegrants", "v1.6.2")])
    assert check == VersionCheck(
        False, "Gateway API CRDs of mixed versions v1.6.0, v1.6.2: install one v1.6.x"
    )


def test_no_gateway_api_crds_is_unsupported() -> None:
    assert check_crds([crd("x", group="example.com")]) == VersionCheck(
        False, "no Gateway API CRDs installed; install v1.6.x"
    )


def test_the_crds_the_lab_installs_pass() -> None:
    crds = gateway_crds.manifests(gateway_crds.CRD_DIR)
    assert {c["metadata"]["annotations"][BUNDLE_VERSION] for c in crds} == {INSTALLED_VERSION}
    assert check_crds(crds).supported


def test_the_gateway_class_reports_supported_version() -> None:
    world = inputs(gateway_class())
    for check, status in ((check_crds(bundle("v1.6.0")), "True"),
                          (check_crds(bundle("v1.4.0")), "False")):
        report = compute_status(world, crd_versions=check)
        conditions = {c["type"]: c for c in report.gateway_classes["tulle"]["conditions"]}
        assert conditions["Accepted"]["status"] == "True"  # best effort either way
        got = conditions["SupportedVersion"]
        assert (got["status"], got["reason"], got["message"]) == (
            status, check.reason, check.message)
    report = compute_status(world)  # nothing checked: no claim either way
    assert [c["type"] for c in report.gateway_classes["tulle"]["conditions"]] == ["Accepted"]
