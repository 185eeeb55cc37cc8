"""security.tulle.io/v1 PeerAuthentication: read, written back, and refused by field where
Istio's CEL rules refuse it (which the CRD schema cannot state)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.convert import from_dict, to_dict
from agent.model.peerauth import (
    MutualTLS,
    MutualTLSMode,
    PeerAuthentication,
    WorkloadSelector,
    mtls_policy,
)
from identity.peerauth import Level, Mode, effective_mode
from tests.unit.model.helpers import DELETE, edit, error_of

PA: dict[str, Any] = {
    "apiVersion": "security.tulle.io/v1",
    "kind": "PeerAuthentication",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "selector": {"matchLabels": {"app": "web"}},
        "mtls": {"mode": "STRICT"},
        "portLevelMtls": {"8080": {"mode": "DISABLE"}, "9090": {}},
    },
}
WHERE = "PeerAuthentication shop/web"


def test_reads_istios_shape_and_writes_it_back() -> None:
    pa = from_dict(PA)
    assert isinstance(pa, PeerAuthentication)
    assert pa.spec.selector == WorkloadSelector({"app": "web"})
    assert pa.spec.mtls == MutualTLS(MutualTLSMode.STRICT)
    assert dict(pa.spec.port_level_mtls) == {
        8080: MutualTLS(MutualTLSMode.DISABLE),
        9090: MutualTLS(MutualTLSMode.UNSET),
    }
    written = to_dict(pa)
    assert written["spec"]["portLevelMtls"] == {
        "8080": {"mode": "DISABLE"},
        "9090": {"mode": "UNSET"},
    }
    assert from_dict(written) == pa


def test_a_yaml_manifests_integer_port_keys_read_as_ports() -> None:
    text = """
apiVersion: security.tulle.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  portLevelMtls:
    8080: {mode: DISABLE}
"""
    pa = from_dict(yaml.safe_load(text))
    assert isinstance(pa, PeerAuthentication)
    assert list(pa.spec.port_level_mtls) == [8080]


def test_an_empty_spec_is_a_namespace_wide_unset_policy() -> None:
    pa = from_dict(edit(PA, "spec", {}))
    assert isinstance(pa, PeerAuthentication)
    assert pa.spec.selector is None and pa.spec.mtls is None
    assert not pa.spec.port_level_mtls


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("spec.selector", DELETE, "spec.portLevelMtls: requires spec.selector with matchLabels"),
        ("spec.selector", {}, "spec.portLevelMtls: requires spec.selector with matchLabels"),
        (
            "spec.selector.matchLabels",
            {},
            "spec.portLevelMtls: requires spec.selector with matchLabels",
        ),
        ("spec.portLevelMtls", {"0": {}}, 'spec.portLevelMtls["0"]: port must be 1-65535'),
        ("spec.portLevelMtls", {"65536": {}}, 'spec.portLevelMtls["65536"]: port must be 1-65535'),
        (
            "spec.portLevelMtls",
            {"http": {}},
            'spec.portLevelMtls["http"]: port must be a decimal number 1-65535',
        ),
        ("spec.portLevelMtls", {"080": {}}, 'spec.portLevelMtls["080"]: port must be a decimal'),
        ("spec.portLevelMtls", {"-1": {}}, 'spec.portLevelMtls["-1"]: port must be a decimal'),
        ("spec.portLevelMtls", {80: {}, "80": {}}, 'spec.portLevelMtls["80"]: duplicate port 80'),
        ("spec.portLevelMtls", ["80"], "spec.portLevelMtls: expected object, got array"),
        ("spec.portLevelMtls", {"80": "STRICT"}, 'spec.portLevelMtls["80"]: expected object'),
        (
            "spec.portLevelMtls",
            {"80": {"mode": "ON"}},
            'spec.portLevelMtls["80"].mode: unsupported value "ON" '
            "(supported: UNSET, DISABLE, PERMISSIVE, STRICT)",
        ),
        (
            "spec.mtls.mode",
            "strict",
            'spec.mtls.mode: unsupported value "strict" '
            "(supported: UNSET, DISABLE, PERMISSIVE, STRICT)",
        ),
        ("spec.selector.matchLabels", {"app": "*"}, "spec.selector.matchLabels[app]: invalid"),
        ("spec.selector.matchLabels", {"": "web"}, "spec.selector.matchLabels[]:"),
    ],
)
def test_refused_by_field(path: str, value: Any, message: str) -> None:
    assert error_of(edit(PA, path, value)).startswith(f"{WHERE}: {message}")


def test_too_many_selector_labels() -> None:
    labels = {f"k{i}": "v" for i in range(4097)}
    assert error_of(edit(PA, "spec.selector.matchLabels", labels)) == (
        f"{WHERE}: spec.selector.matchLabels: must have at most 4096 labels, got 4097"
    )


def test_the_resolvers_input() -> None:
    stamped = edit(PA, "metadata.creationTimestamp", "2026-01-02T03:04:05Z")
    pa = from_dict(stamped)
    assert isinstance(pa, PeerAuthentication)
    policy = mtls_policy(pa)
    assert (policy.namespace, policy.name, policy.mode) == ("shop", "web", Mode.STRICT)
    assert dict(policy.selector) == {"app": "web"}
    assert dict(policy.ports) == {8080: Mode.DISABLE, 9090: Mode.UNSET}
    assert policy.created == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    decision = effective_mode("shop", {"app": "web"}, 8080, [policy])
    assert (decision.mode, decision.level) == (Mode.DISABLE, Level.PORT)
    namespace_wide = from_dict(edit(PA, "spec", {}))
    assert isinstance(namespace_wide, PeerAuthentication)
    assert mtls_policy(namespace_wide).mode is Mode.UNSET
    assert not mtls_policy(namespace_wide).selector


MODES = st.sampled_from(["UNSET", "DISABLE", "PERMISSIVE", "STRICT"])
MTLS = st.one_of(st.just({}), MODES.map(lambda m: {"mode": m}))
LABELS = st.dictionaries(
    st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True),
    st.from_regex(r"[a-z0-9]{0,8}", fullmatch=True),
    min_size=1,
    max_size=3,
)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["mtls"] = draw(MTLS)
    if draw(st.booleans()):
        spec["selector"] = {"matchLabels": draw(LABELS)}
        ports = draw(st.dictionaries(st.integers(1, 65535), MTLS, max_size=3))
        if ports:
            spec["portLevelMtls"] = {
                (str(p) if draw(st.booleans()) else p): m for p, m in ports.items()
            }
    return spec


@settings(max_examples=200)
@given(specs())
def test_round_trip(spec: dict[str, Any]) -> None:
    pa = from_dict(edit(PA, "spec", spec))
    written = to_dict(pa)
    assert all(isinstance(k, str) for k in written["spec"].get("portLevelMtls", {}))
    assert from_dict(written) == pa
    assert from_dict(json.loads(json.dumps(written))) == pa
