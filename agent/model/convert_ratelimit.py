"""Reader for policy.tulle.io/v1alpha1 HTTPLocalRateLimitPolicy: GEP-713 targetRefs
(Services only, 1-16, no repeats) and Linkerd's fields with Linkerd's rules: rates are
positive; ``identity`` and every override at most ``total`` when it is set; overrides name
ServiceAccounts. A ServiceAccount in two overrides is refused (which rate would it get?).
Linkerd's ``targetRef`` (a Server) is refused by name: every other Linkerd field is read."""

from __future__ import annotations

from agent.model.backendpolicy import PolicyTargetReference
from agent.model.meta import ObjectMeta
from agent.model.ratelimit import (
    ClientReference,
    HTTPLocalRateLimitPolicy,
    HTTPLocalRateLimitPolicySpec,
    Limit,
    RateLimitOverride,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import dns1035_label, dns1123_label, dns1123_subdomain

MAX_TARGET_REFS = 16  # GEP-713's bound
MAX_OVERRIDES = 64
MAX_CLIENT_REFS = 64
UINT32_MAX = 2**32 - 1  # Linkerd's requestsPerSecond is a uint32


def read_http_local_rate_limit_policy(r: Reader, metadata: ObjectMeta) -> HTTPLocalRateLimitPolicy:
    return HTTPLocalRateLimitPolicy(metadata=metadata, spec=r.obj("spec", _read_spec, REQUIRED))


def _read_spec(r: Reader) -> HTTPLocalRateLimitPolicySpec:
    if "targetRef" in r.data:  # Linkerd's one field Tulle has no equivalent of
        r.fail("targetRef", "is not supported: Linkerd's target is a Server (its inbound "
                            "proxy's port); Tulle limits Services in the waypoint: use "
                            "targetRefs: [{group: \"\", kind: Service, name: ...}]")
    refs = r.objects("targetRefs", _read_target, min_items=1, max_items=MAX_TARGET_REFS)
    r.check_unique("targetRefs", [(t.group, t.kind, t.name) for t in refs])
    total = r.obj("total", _read_limit)
    identity = r.obj("identity", _read_limit)
    overrides = r.objects("overrides", _read_override, max_items=MAX_OVERRIDES)
    if total is not None:
        ceiling = total.requests_per_second
        if identity is not None and identity.requests_per_second > ceiling:
            r.fail("identity", f"requestsPerSecond {identity.requests_per_second} is over "
                               f"total.requestsPerSecond {ceiling}")
        for i, o in enumerate(overrides):
            if o.requests_per_second > ceiling:
                r.fail(f"overrides[{i}]", f"requestsPerSecond {o.requests_per_second} is over "
                                          f"total.requestsPerSecond {ceiling}")
    seen: dict[tuple[str, str], int] = {}
    for i, o in enumerate(overrides):
        for ref in o.client_refs:
            account = (ref.namespace, ref.name)
            if seen.setdefault(account, i) != i:
                shown = f"{ref.namespace}/{ref.name}" if ref.namespace else ref.name
                r.fail(f"overrides[{i}]", f"ServiceAccount {shown} is already in "
                                          f"overrides[{seen[account]}]")
    return HTTPLocalRateLimitPolicySpec(refs, total, identity, overrides)


def _read_target(r: Reader) -> PolicyTargetReference:
    group = r.string("group", "")
    kind = r.string("kind", REQUIRED)
    if group not in ("", "core") or kind != "Service":
        shown = f"{group}/{kind}" if group else kind
        r.fail("kind", f"unsupported target {shown}: an HTTPLocalRateLimitPolicy targets "
                       'Services (group "", kind Service)')
    return PolicyTargetReference("", kind, r.string("name", REQUIRED, check=dns1035_label))


def _rate(r: Reader) -> int:
    return r.integer("requestsPerSecond", REQUIRED, minimum=1, maximum=UINT32_MAX)


def _read_limit(r: Reader) -> Limit:
    return Limit(_rate(r))


def _read_override(r: Reader) -> RateLimitOverride:
    rate = _rate(r)
    refs = r.objects("clientRefs", _read_client, min_items=1, max_items=MAX_CLIENT_REFS)
    return RateLimitOverride(rate, refs)


def _read_client(r: Reader) -> ClientReference:
    group = r.string("group", "")
    kind = r.string("kind", REQUIRED)
    if group not in ("", "core") or kind != "ServiceAccount":
        shown = f"{group}/{kind}" if group else kind
        r.fail("kind", f"unsupported client {shown}: overrides name ServiceAccounts "
                       '(group "", kind ServiceAccount)')
    return ClientReference(
        kind,
        r.string("name", REQUIRED, check=dns1123_subdomain),
        r.string("namespace", "", check=dns1123_label),
    )
