"""Envoy's equivalents of the benchmark's policies, generated from the same model objects
Tulle's waypoint reads (pure).

- **AuthorizationPolicy -> ``envoy.filters.http.rbac``**, as Istio translates it: one RBAC
  filter per action present (DENY first, then ALLOW; AUDIT becomes action LOG), each rule one
  Envoy policy named ``ns[NS]-policy[NAME]-rule[I]``. In a rule the ``to`` operations become
  ``permissions`` and the ``from`` sources ``principals``; a field's values OR, set fields
  AND, a ``not`` form is ``not_rule``/``not_id``. Istio's string forms (exact, ``prefix*``,
  ``*suffix``, ``*`` = any non-empty) become StringMatchers; hosts a case-insensitive RE2
  that also accepts a ``:port``, as Tulle's matcher does.
- **Identities without mTLS.** Envoy learns a caller's principal from its certificate; the
  benchmark has no TLS. Tulle's waypoint itself takes the identity of the pod at the client
  address, so a principal, namespace or ServiceAccount becomes the addresses of the pods that
  hold a matching identity (``direct_remote_ip``): the same decision for every caller, with
  Envoy matching a CIDR where Tulle matches a string. An identity no pod holds matches
  nothing, as in Tulle.
- **HTTPLocalRateLimitPolicy ``total`` -> ``envoy.filters.http.local_ratelimit``**: a token
  bucket of ``total`` tokens refilled by ``total`` each second (Tulle's GCRA admits the same
  one-second burst). ``identity`` and ``overrides`` are refused (Envoy needs descriptors
  and route actions for per-client buckets: not the same work).
- **BackendTrafficPolicy outlierDetection -> the cluster's ``outlier_detection``** from the
  waypoint's own resolved parameters (``l7proxy.resilience.params``: Istio's defaults
  filled in), mapped as Istio maps a DestinationRule (``minHealthPercent`` is the cluster's
  panic threshold; success-rate ejection off, since neither Istio's API nor Tulle has it).

What the benchmark does not use is refused with ValueError rather than translated loosely:
ports (Tulle judges the endpoint's port, Envoy would judge the listener's) and conditions
other than request headers and source identity or address.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agent.model.authz import Action, AuthorizationPolicy, Condition, Operation, Rule, Source
from agent.model.core import Pod
from agent.model.ratelimit import HTTPLocalRateLimitPolicy
from authz import Peer
from authz.match import any_string
from l7proxy.resilience.params import BackendParams

_TYPES = "type.googleapis.com/envoy.extensions.filters.http."
RBAC_TYPE = _TYPES + "rbac.v3.RBAC"
LOCAL_RATELIMIT_TYPE = _TYPES + "local_ratelimit.v3.LocalRateLimit"
_HEADER_KEY = re.compile(r"request\.headers\[([^\]]+)\]")
_ENVOY_ACTION = {Action.DENY: "DENY", Action.ALLOW: "ALLOW", Action.AUDIT: "LOG"}
NOTHING: dict[str, Any] = {"not_id": {"any": True}}
"""A principal no caller matches (an identity no pod holds)."""


@dataclass(frozen=True, slots=True)
class Identities:
    """The callers Tulle knows, by address: one Peer per IP held by exactly one live pod."""

    peers: tuple[Peer, ...]

    @classmethod
    def of(cls, pods: Iterable[Pod], trust_domain: str) -> Identities:
        by_ip: dict[str, list[Pod]] = {}
        for pod in pods:
            ip = pod.status.pod_ip
            if ip and pod.status.phase not in ("Succeeded", "Failed"):
                by_ip.setdefault(ip, []).append(pod)
        return cls(tuple(
            Peer.of_pod(ip, trust_domain, found[0].metadata.namespace,
                        found[0].spec.service_account)
            for ip, found in sorted(by_ip.items()) if len(found) == 1
        ))

    def addresses(self, values: Sequence[str], attribute: str) -> list[str]:
        """The IPs whose peer's ``attribute`` ("principal", "namespace", "service_account":
        "ns/name") matches one of ``values``, Istio's string forms."""
        out = []
        for peer in self.peers:
            if attribute == "service_account":
                hit = (peer.namespace is not None and peer.service_account is not None
                       and f"{peer.namespace}/{peer.service_account}" in values)
            else:
                hit = any_string(values, getattr(peer, attribute))
            if hit:
                out.append(peer.ip)
        return out


# --- matchers ------------------------------------------------------------------------


def string_matcher(pattern: str) -> dict[str, Any]:
    """Istio's string forms as an Envoy StringMatcher (``*`` alone: any non-empty)."""
    if pattern == "*":
        return {"safe_regex": {"regex": ".+"}}
    if pattern.endswith("*"):
        return {"prefix": pattern[:-1]}
    if pattern.startswith("*"):
        return {"suffix": pattern[1:]}
    return {"exact": pattern}


def host_matcher(pattern: str) -> dict[str, Any]:
    """A host pattern against ``:authority``: case-insensitive, with or without a port."""
    port = "(:[0-9]+)?"
    if pattern == "*":
        body = ".+"
    elif pattern.endswith("*"):
        body, port = re.escape(pattern[:-1]) + ".*", ""
    elif pattern.startswith("*"):
        body = ".*" + re.escape(pattern[1:])
    else:
        body = re.escape(pattern)
    return {"safe_regex": {"regex": f"(?i){body}{port}"}}


def _any_of(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """OR of permissions (``key`` "or_rules") or principals ("or_ids"); one needs no OR."""
    if not items:
        raise ValueError(f"{key}: nothing to OR")
    if len(items) == 1:
        return items[0]
    return {key: {"rules" if key == "or_rules" else "ids": items}}


def _all_of(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
    if not items:
        return {"any": True}
    if len(items) == 1:
        return items[0]
    return {key: {"rules" if key == "and_rules" else "ids": items}}


def _ips(addresses: Sequence[str]) -> dict[str, Any]:
    ids = [{"direct_remote_ip": _cidr(a)} for a in addresses]
    return _any_of(ids, "or_ids") if ids else NOTHING


def _cidr(text: str) -> dict[str, Any]:
    address, _, length = text.partition("/")
    bits = 128 if ":" in address else 32
    return {"address_prefix": address, "prefix_len": int(length) if length else bits}


def _header_permission(name: str, patterns: Sequence[str]) -> dict[str, Any]:
    return _any_of([{"header": {"name": name, "string_match": string_matcher(p)}}
                    for p in patterns], "or_rules")


# --- rules ---------------------------------------------------------------------------


def _field(values: Sequence[str], negated: Sequence[str], one: Any, kind: str) -> list[Any]:
    """A field and its not-form as AND terms: ``one(values)`` is the match of the values."""
    out = []
    if values:
        out.append(one(values))
    if negated:
        out.append({"not_rule" if kind == "rule" else "not_id": one(negated)})
    return out


def _operation(o: Operation) -> dict[str, Any]:
    if o.ports or o.not_ports:
        raise ValueError("operation ports: Tulle judges the endpoint's port, Envoy the "
                         "listener's; not comparable in this benchmark")
    terms = [
        *_field(o.hosts, o.not_hosts, lambda v: _any_of(
            [{"header": {"name": ":authority", "string_match": host_matcher(p)}} for p in v],
            "or_rules"), "rule"),
        *_field(o.methods, o.not_methods, lambda v: _header_permission(":method", v), "rule"),
        *_field(o.paths, o.not_paths, lambda v: _any_of(
            [{"url_path": {"path": string_matcher(p)}} for p in v], "or_rules"), "rule"),
    ]
    return _all_of(terms, "and_rules")


def _source(s: Source, who: Identities) -> dict[str, Any]:
    def ips(attribute: str) -> Any:
        return lambda v: _ips(who.addresses(v, attribute))

    terms = [
        *_field(s.principals, s.not_principals, ips("principal"), "id"),
        *_field(s.namespaces, s.not_namespaces, ips("namespace"), "id"),
        *_field(s.service_accounts, s.not_service_accounts, ips("service_account"), "id"),
        *_field(s.ip_blocks, s.not_ip_blocks, lambda v: _any_of(
            [{"direct_remote_ip": _cidr(b)} for b in v], "or_ids"), "id"),
        # No proxy header is trusted in either peer: the remote address is the peer's.
        *_field(s.remote_ip_blocks, s.not_remote_ip_blocks, lambda v: _any_of(
            [{"remote_ip": _cidr(b)} for b in v], "or_ids"), "id"),
    ]
    return _all_of(terms, "and_ids")


def _condition(c: Condition, who: Identities) -> tuple[str, dict[str, Any]]:
    """("permission" or "principal", the condition's match)."""
    header = _HEADER_KEY.fullmatch(c.key)
    if header is not None:
        name = header.group(1).lower()
        terms = _field(c.values, c.not_values, lambda v: _header_permission(name, v), "rule")
        return "permission", _all_of(terms, "and_rules")
    attributes = {"source.principal": "principal", "source.namespace": "namespace"}
    if c.key in attributes:
        attribute = attributes[c.key]
        terms = _field(c.values, c.not_values,
                       lambda v: _ips(who.addresses(v, attribute)), "id")
    elif c.key in ("source.ip", "remote.ip"):
        terms = _field(c.values, c.not_values, lambda v: _any_of(
            [{"direct_remote_ip": _cidr(b)} for b in v], "or_ids"), "id")
    else:
        raise ValueError(f"when {c.key}: not translated for this benchmark")
    return "principal", _all_of(terms, "and_ids")


def rule_policy(rule: Rule, who: Identities) -> dict[str, Any]:
    """One Istio rule as one Envoy RBAC policy (its permission AND its principal)."""
    permissions: list[dict[str, Any]] = []
    principals: list[dict[str, Any]] = []
    if rule.to:
        permissions.append(_any_of([_operation(t.operation) for t in rule.to], "or_rules"))
    if rule.from_:
        principals.append(_any_of([_source(f.source, who) for f in rule.from_], "or_ids"))
    for condition in rule.when:
        side, match = _condition(condition, who)
        (permissions if side == "permission" else principals).append(match)
    return {"permissions": [_all_of(permissions, "and_rules")],
            "principals": [_all_of(principals, "and_ids")]}


def rbac_filters(policies: Iterable[AuthorizationPolicy], who: Identities) -> list[dict[str, Any]]:
    """The RBAC HTTP filters for ``policies`` (all applying to the one listener): DENY,
    then ALLOW, then AUDIT (LOG), each only when such a policy exists."""
    by_action: dict[Action, dict[str, Any]] = {}
    for policy in policies:
        meta = policy.metadata
        rules = by_action.setdefault(policy.spec.action, {})
        for i, rule in enumerate(policy.spec.rules):
            rules[f"ns[{meta.namespace}]-policy[{meta.name}]-rule[{i}]"] = rule_policy(rule, who)
    out = []
    for action in (Action.DENY, Action.ALLOW, Action.AUDIT):
        if action not in by_action:
            continue
        out.append({
            "name": f"envoy.filters.http.rbac.{action.value.lower()}",
            "typed_config": {"@type": RBAC_TYPE,
                             "rules": {"action": _ENVOY_ACTION[action],
                                       "policies": by_action[action]}},
        })
    return out


# --- rate limit and outlier detection ------------------------------------------------


def local_ratelimit_filter(policy: HTTPLocalRateLimitPolicy) -> dict[str, Any]:
    spec = policy.spec
    if spec.identity is not None or spec.overrides:
        raise ValueError("identity and overrides: Envoy's local_ratelimit needs descriptors "
                         "for per-client buckets; only total is translated")
    if spec.total is None:
        raise ValueError("HTTPLocalRateLimitPolicy without total: nothing to translate")
    rate = spec.total.requests_per_second
    always = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    return {
        "name": "envoy.filters.http.local_ratelimit",
        "typed_config": {
            "@type": LOCAL_RATELIMIT_TYPE,
            "stat_prefix": "bench_rate_limit",
            "token_bucket": {"max_tokens": rate, "tokens_per_fill": rate, "fill_interval": "1s"},
            "filter_enabled": {"runtime_key": "bench_rl_enabled", **always},
            "filter_enforced": {"runtime_key": "bench_rl_enforced", **always},
        },
    }


def _seconds(value: float) -> str:
    return f"{value:g}s"


def outlier_detection(params: BackendParams) -> dict[str, Any]:
    """Cluster fields (``outlier_detection``, ``common_lb_config``) for a Service's params."""
    o = params.outlier
    if o is None:
        raise ValueError("the BackendTrafficPolicy has no outlierDetection")
    return {
        "outlier_detection": {
            "consecutive_5xx": o.consecutive_5xx,
            "enforcing_consecutive_5xx": 100 if o.consecutive_5xx else 0,
            "consecutive_gateway_failure": o.consecutive_gateway,
            "enforcing_consecutive_gateway_failure": 100 if o.consecutive_gateway else 0,
            "interval": _seconds(o.interval),
            "base_ejection_time": _seconds(o.base_ejection_time),
            "max_ejection_time": _seconds(o.max_ejection_time),
            "max_ejection_percent": o.max_ejection_percent,
            "enforcing_success_rate": 0,
        },
        "common_lb_config": {"healthy_panic_threshold": {"value": o.min_health_percent}},
    }


# --- the bootstrap -------------------------------------------------------------------


def apply(bootstrap: dict[str, Any], *, authorization: Sequence[AuthorizationPolicy],
          identities: Identities, rate_limit: HTTPLocalRateLimitPolicy,
          backend: BackendParams) -> dict[str, Any]:
    """``bootstrap`` (``bench.l7.table.envoy_config``'s, one listener, one cluster) with the
    policies: the RBAC and rate limit filters ahead of the router (RBAC first, as Istio
    orders them), outlier detection on the cluster. ``bootstrap`` is not changed."""
    out = copy.deepcopy(bootstrap)
    resources = out["static_resources"]
    (listener,) = resources["listeners"]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    router = hcm["http_filters"]
    hcm["http_filters"] = [*rbac_filters(authorization, identities),
                           local_ratelimit_filter(rate_limit), *router]
    (cluster,) = resources["clusters"]
    cluster.update(outlier_detection(backend))
    return out
