"""Reader for gateway.networking.k8s.io/v1 BackendTLSPolicy, with the CRD's bounds and CEL
rules (Gateway API v1.4): 1-16 targetRefs, distinct by (group, kind, name, sectionName) and
with sectionName on all or none of the refs to one target; at most 8 caCertificateRefs,
exclusive with wellKnownCACertificates, one of them required; a PreciseHostname; at most 5
subjectAltNames, each carrying exactly the member its type names; at most 16 options."""

from __future__ import annotations

from urllib.parse import urlsplit

from agent.model.backendtls import (
    BackendTLSPolicy,
    BackendTLSPolicySpec,
    BackendTLSPolicyValidation,
    LocalObjectReference,
    SubjectAltName,
    SubjectAltNameType,
    TLSPolicyTargetReference,
    WellKnownCACertificates,
)
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    gateway_group,
    gateway_kind,
    hostname,
    object_name,
    precise_hostname,
    qualified_name,
    quote,
    section_name,
)

MAX_TARGET_REFS = 16
MAX_CA_REFS = 8
MAX_SANS = 5
MAX_OPTIONS = 16
MAX_URI = 253  # Gateway API's AbsoluteURI
MAX_OPTION_VALUE = 4096  # and AnnotationValue


def read_backend_tls_policy(r: Reader, metadata: ObjectMeta) -> BackendTLSPolicy:
    return BackendTLSPolicy(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> BackendTLSPolicySpec:
    refs = r.objects("targetRefs", _read_target, min_items=1, max_items=MAX_TARGET_REFS)
    _check_targets(r, refs)
    options = r.string_map("options", key_check=qualified_name, value_check=_option_value)
    if len(options) > MAX_OPTIONS:
        r.fail("options", f"must have at most {MAX_OPTIONS} entries, got {len(options)}")
    return BackendTLSPolicySpec(
        target_refs=refs,
        validation=r.obj("validation", _read_validation, REQUIRED),
        options=options,
    )


def _read_target(r: Reader) -> TLSPolicyTargetReference:
    return TLSPolicyTargetReference(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", REQUIRED, check=object_name),
        section_name=r.string("sectionName", check=section_name),
    )


def _check_targets(r: Reader, refs: tuple[TLSPolicyTargetReference, ...]) -> None:
    """The CRD's two CEL rules over targetRefs, with the index of the offending entry."""
    seen: dict[tuple[str, str, str], bool] = {}
    r.check_unique("targetRefs", [(t.group, t.kind, t.name, t.section_name) for t in refs])
    for i, ref in enumerate(refs):
        target = (ref.group, ref.kind, ref.name)
        has_section = ref.section_name is not None
        if seen.setdefault(target, has_section) != has_section:
            r.fail(
                f"targetRefs[{i}].sectionName",
                "sectionName must be specified when targetRefs includes 2 or more references "
                "to the same target",
            )


def _read_validation(r: Reader) -> BackendTLSPolicyValidation:
    refs = r.objects("caCertificateRefs", _read_ca_ref, max_items=MAX_CA_REFS)
    r.check_unique("caCertificateRefs", [(c.group, c.kind, c.name) for c in refs])
    well_known = r.enum("wellKnownCACertificates", WellKnownCACertificates)
    if refs and well_known is not None:
        r.fail(None, "must not contain both caCertificateRefs and wellKnownCACertificates")
    if not refs and well_known is None:
        r.fail(None, "must specify either caCertificateRefs or wellKnownCACertificates")
    sans = r.objects("subjectAltNames", _read_san, max_items=MAX_SANS)
    return BackendTLSPolicyValidation(
        hostname=r.string("hostname", REQUIRED, check=precise_hostname),
        ca_certificate_refs=refs,
        well_known_ca_certificates=well_known,
        subject_alt_names=sans,
    )


def _read_ca_ref(r: Reader) -> LocalObjectReference:
    return LocalObjectReference(
        group=r.string("group", REQUIRED, check=gateway_group),
        kind=r.string("kind", REQUIRED, check=gateway_kind),
        name=r.string("name", REQUIRED, check=object_name),
    )


def _read_san(r: Reader) -> SubjectAltName:
    san_type = r.enum("type", SubjectAltNameType, REQUIRED)
    name = r.string("hostname", "", check=hostname)
    uri = r.string("uri", "", check=_absolute_uri)
    wanted, other = ("hostname", "uri") if san_type is SubjectAltNameType.HOSTNAME else (
        "uri", "hostname"
    )
    values = {"hostname": name, "uri": uri}
    if not values[wanted]:
        r.fail(wanted, f"required when type is {san_type.value}")
    if values[other]:
        r.fail(other, f"must not be set when type is {san_type.value}")
    return SubjectAltName(type=san_type, hostname=name, uri=uri)


def _absolute_uri(value: str) -> str | None:
    """Gateway API's AbsoluteURI: a scheme and a scheme-specific part (RFC 3986)."""
    parts = urlsplit(value)
    if len(value) > MAX_URI or not parts.scheme or not value[len(parts.scheme) + 1 :]:
        return (
            f"invalid value {quote(value)}: must be an absolute URI with a scheme, such as "
            "spiffe://cluster.local/ns/shop/sa/orders"
        )
    return None


def _option_value(value: str) -> str | None:
    if len(value) > MAX_OPTION_VALUE:
        return f"must be at most {MAX_OPTION_VALUE} characters"
    return None
