"""Reader for security.tulle.io/v1 AuthorizationPolicy, with Istio's validation rules (those of
its CRD's CEL and of istiod's validation webhook) by field, and a refusal for each Istio field
Tulle does not enforce: an ignored field would make a policy match more or less than written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from agent.model.authz import (
    Action,
    AuthorizationPolicy,
    AuthorizationPolicySpec,
    Condition,
    Operation,
    PolicyTargetReference,
    Rule,
    RuleFrom,
    RuleTo,
    Source,
)
from agent.model.convert_peerauth import read_selector
from agent.model.meta import ObjectMeta
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import dns1123_subdomain, quote

GATEWAY_GROUP = "gateway.networking.k8s.io"
TARGET_KINDS = {("", "Service"), (GATEWAY_GROUP, "Gateway")}
MAX_TARGET_REFS = 16  # Istio's maxItems on targetRefs
# request.headers[NAME]: NAME is an HTTP field name (RFC 9110 token).
_HEADER_KEY = re.compile(r"request\.headers\[([!#$%&'*+.^_`|~0-9A-Za-z-]+)\]")
_IP_KEYS = ("source.ip", "remote.ip", "destination.ip")
_PLAIN_KEYS = ("source.namespace", "source.principal", "destination.port", "connection.sni")
_Check = Callable[[str], str | None]
_UNSUPPORTED_SOURCE = {
    "requestPrincipals": "JWT request principals need RequestAuthentication, which Tulle "
    "does not have",
    "notRequestPrincipals": "JWT request principals need RequestAuthentication, which Tulle "
    "does not have",
}


def read_authorization_policy(r: Reader, metadata: ObjectMeta) -> AuthorizationPolicy:
    return AuthorizationPolicy(
        metadata=metadata, spec=r.obj("spec", _read_spec, AuthorizationPolicySpec())
    )


def _read_spec(r: Reader) -> AuthorizationPolicySpec:
    if r.has("targetRef"):
        r.fail("targetRef", "is deprecated in Istio and not supported: use targetRefs")
    if r.has("provider") or r.data.get("action") == "CUSTOM":
        r.fail("action", "CUSTOM (an external authorizer) is not supported; use ALLOW, "
               "DENY or AUDIT")
    selector = r.obj("selector", read_selector)
    refs = r.objects("targetRefs", _read_target_ref, max_items=MAX_TARGET_REFS)
    if selector is not None and refs:
        r.fail("targetRefs", "only one of selector or targetRefs can be set")
    r.check_unique("targetRefs", list(refs))
    return AuthorizationPolicySpec(
        selector=selector,
        target_refs=refs,
        action=r.enum("action", Action, Action.ALLOW),
        rules=r.objects("rules", _read_rule),
    )


def _read_target_ref(r: Reader) -> PolicyTargetReference:
    group = r.string("group", "")
    kind = r.string("kind", "")
    if (group, kind) not in TARGET_KINDS:
        r.fail("kind", f"unsupported target {quote(kind)} (group {quote(group)}): supported "
               f"are Service (group \"\") and Gateway (group {GATEWAY_GROUP})")
    if r.has("namespace"):
        r.fail("namespace", "cross-namespace targets are not supported (Istio: the policy's "
               "own namespace only)")
    return PolicyTargetReference(
        kind=kind, name=r.string("name", REQUIRED, check=dns1123_subdomain), group=group
    )


def _read_rule(r: Reader) -> Rule:
    return Rule(
        from_=r.objects("from", _read_from),
        to=r.objects("to", _read_to),
        when=r.objects("when", _read_condition),
    )


def _read_from(r: Reader) -> RuleFrom:
    return RuleFrom(source=r.obj("source", _read_source, REQUIRED))


def _read_to(r: Reader) -> RuleTo:
    return RuleTo(operation=r.obj("operation", _read_operation, REQUIRED))


def _read_source(r: Reader) -> Source:
    for key, why in _UNSUPPORTED_SOURCE.items():
        if r.has(key):
            r.fail(key, f"is not supported: {why}")
    source = Source(
        principals=r.string_list("principals", check=_match),
        not_principals=r.string_list("notPrincipals", check=_match),
        namespaces=r.string_list("namespaces", check=_match),
        not_namespaces=r.string_list("notNamespaces", check=_match),
        service_accounts=r.string_list("serviceAccounts", check=_service_account),
        not_service_accounts=r.string_list("notServiceAccounts", check=_service_account),
        ip_blocks=r.string_list("ipBlocks", check=_ip_or_cidr),
        not_ip_blocks=r.string_list("notIpBlocks", check=_ip_or_cidr),
        remote_ip_blocks=r.string_list("remoteIpBlocks", check=_ip_or_cidr),
        not_remote_ip_blocks=r.string_list("notRemoteIpBlocks", check=_ip_or_cidr),
    )
    if source == Source():
        r.fail(None, "must set at least one field (an empty source is refused, as Istio does)")
    accounts = source.service_accounts or source.not_service_accounts
    if accounts and (source.principals or source.not_principals or source.namespaces
                     or source.not_namespaces):
        r.fail("serviceAccounts", "cannot be set with principals or namespaces")
    return source


def _read_operation(r: Reader) -> Operation:
    operation = Operation(
        hosts=r.string_list("hosts", check=_match),
        not_hosts=r.string_list("notHosts", check=_match),
        ports=r.string_list("ports", check=_port),
        not_ports=r.string_list("notPorts", check=_port),
        methods=r.string_list("methods", check=_match),
        not_methods=r.string_list("notMethods", check=_match),
        paths=r.string_list("paths", check=_path),
        not_paths=r.string_list("notPaths", check=_path),
    )
    if operation == Operation():
        r.fail(None, "must set at least one field (an empty operation is refused, as Istio "
               "does)")
    return operation


def _read_condition(r: Reader) -> Condition:
    key = r.string("key", REQUIRED)
    values = r.string_list("values")
    not_values = r.string_list("notValues")
    if not values and not not_values:
        r.fail(None, "must set values or notValues")
    check = _condition_check(r, key)
    for field_name, items in (("values", values), ("notValues", not_values)):
        for i, value in enumerate(items):
            if (problem := check(value)) is not None:
                r.fail(f"{field_name}[{i}]", problem)
    return Condition(key=key, values=values, not_values=not_values)


def _condition_check(r: Reader, key: str) -> _Check:
    if _HEADER_KEY.fullmatch(key) or key in ("source.namespace", "source.principal",
                                             "connection.sni"):
        return _match
    if key in _IP_KEYS:
        return _ip_or_cidr
    if key == "destination.port":
        return _port
    if key.startswith("request.auth."):
        r.fail("key", f"{quote(key)} is not supported: JWT claims need RequestAuthentication, "
               "which Tulle does not have")
    r.fail("key", f"unsupported key {quote(key)} (supported: request.headers[NAME], "
           f"{', '.join(_IP_KEYS + _PLAIN_KEYS)})")


def _match(value: str) -> str | None:
    """Istio's string match: exact, "prefix*", "*suffix", or "*" (any non-empty value)."""
    if not value:
        return "must not be empty"
    if "*" in value[1:-1] or value.count("*") > 1 and value != "*":
        return f"invalid value {quote(value)}: \"*\" may only be the first or last character"
    return None


def _path(value: str) -> str | None:
    if "{" in value or "}" in value:
        return f"invalid value {quote(value)}: path templates ({{*}}, {{**}}) are not supported"
    if value != "*" and not value.startswith(("/", "*")):
        return f"invalid value {quote(value)}: must start with \"/\" (or be a \"*suffix\" match)"
    return _match(value)


def _port(value: str) -> str | None:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= 65535:
        return f"invalid port {quote(value)}: must be a number 1-65535"
    return None


def _service_account(value: str) -> str | None:
    namespace, slash, name = value.partition("/")
    if not slash or dns1123_subdomain(namespace) or dns1123_subdomain(name):
        return f"invalid value {quote(value)}: must be \"namespace/name\" of a ServiceAccount"
    return None


def _ip_or_cidr(value: str) -> str | None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"invalid value {quote(value)}: must be an IP address or a CIDR such as 10.0.0.0/8"
    return None
