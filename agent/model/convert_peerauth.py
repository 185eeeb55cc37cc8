"""Reader for security.tulle.io/v1 PeerAuthentication, with Istio's CEL rules that the CRD's
schema cannot state: portLevelMtls needs a selector with labels; its keys are ports."""

from __future__ import annotations

from collections.abc import Mapping

from agent.model.convert_meta import read_labels
from agent.model.frozen import FrozenMap
from agent.model.jsonvalue import describe
from agent.model.meta import ObjectMeta
from agent.model.peerauth import (
    MutualTLS,
    MutualTLSMode,
    PeerAuthentication,
    PeerAuthenticationSpec,
    WorkloadSelector,
)
from agent.model.reader import Reader
from agent.model.validation import quote

MAX_SELECTOR_LABELS = 4096  # Istio's maxProperties on matchLabels


def read_peer_authentication(r: Reader, metadata: ObjectMeta) -> PeerAuthentication:
    return PeerAuthentication(
        metadata=metadata, spec=r.obj("spec", _read_spec, PeerAuthenticationSpec())
    )


def _read_spec(r: Reader) -> PeerAuthenticationSpec:
    selector = r.obj("selector", read_selector)
    ports = _read_port_level(r)
    if ports and (selector is None or not selector.match_labels):
        r.fail(
            "portLevelMtls",
            "requires spec.selector with matchLabels (port-level modes apply only to the "
            "workloads a policy selects)",
        )
    return PeerAuthenticationSpec(
        selector=selector, mtls=r.obj("mtls", _read_mtls), port_level_mtls=ports
    )


def read_selector(r: Reader) -> WorkloadSelector:
    labels = read_labels(r, "matchLabels")
    if len(labels) > MAX_SELECTOR_LABELS:
        r.fail("matchLabels", f"must have at most {MAX_SELECTOR_LABELS} labels, got {len(labels)}")
    return WorkloadSelector(match_labels=labels)


def _read_mtls(r: Reader) -> MutualTLS:
    return MutualTLS(mode=r.enum("mode", MutualTLSMode, MutualTLSMode.UNSET))


def _read_port_level(r: Reader) -> FrozenMap[int, MutualTLS]:
    """Keys are port numbers as JSON writes them ("8080"), or ints from a YAML manifest;
    written one way only (no "08080" beside "8080")."""
    raw = r.data.get("portLevelMtls")
    if raw is None:
        return FrozenMap()
    if not isinstance(raw, Mapping):
        r.fail("portLevelMtls", f"expected object, got {describe(raw)}")
    out: dict[int, MutualTLS] = {}
    for key, value in raw.items():
        where = f"portLevelMtls[{quote(str(key))}]"
        port = _port_key(key)
        if port is None:
            r.fail(
                where,
                "port must be a decimal number 1-65535 (no sign, no leading zero), "
                f"got {describe(key)}",
            )
        if not 1 <= port <= 65535:
            r.fail(where, "port must be 1-65535")
        if port in out:
            r.fail(where, f"duplicate port {port}")
        if not isinstance(value, Mapping):
            r.fail(where, f"expected object, got {describe(value)}")
        out[port] = _read_mtls(Reader(value, r.at(where)))
    return FrozenMap(out)


def _port_key(key: object) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.isascii() and key.isdigit() and str(int(key)) == key:
        return int(key)
    return None
