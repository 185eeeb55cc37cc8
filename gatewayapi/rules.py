"""Compilation of one HTTPRoute's rules: filters, backends, timeouts and retries, with the
problems that status reports.

A rule is dropped (Accepted=False for that rule, PartiallyInvalid on the route) when its
filters cannot be combined across the rule and backend levels (IncompatibleFilters), or
when one of its regular expressions can backtrack catastrophically (UnsupportedValue).
Unresolvable references never drop a rule (spec, HTTPRouteRule.backendRefs): an invalid
backend keeps its share of traffic and answers 500, an invalid mirror is left out, and an
ExtensionRef filter that does not name an existing policy.tulle.io HTTPFault of the route's
namespace (the one extension kind Tulle has) answers 500 rather than being skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from agent.model.fault import HTTPFault
from agent.model.grpcroute import GRPCRoute
from agent.model.httproute import (
    FilterType,
    HTTPBackendRef,
    HTTPRoute,
    HTTPRouteFilter,
    HTTPRouteMatch,
    HTTPRouteRule,
    PathMatchType,
    RequestMirror,
    SessionPersistence,
    StringMatchType,
)
from agent.model.regex import regex_problem
from gatewayapi.backends import (
    Grants,
    RefProblem,
    Resolution,
    ServiceIndex,
    WeightedChoice,
    resolve,
)
from gatewayapi.cors import Cors
from gatewayapi.faults import Fault
from gatewayapi.filters import HeaderEdit, Mirror, Redirect, Rewrite, Unsupported
from gatewayapi.retry import RetryPolicy, compile_timeouts
from gatewayapi.session import SessionPolicy
from gatewayapi.types import BackendTarget, RuleRef, Timeouts


class Step(StrEnum):
    """What a compiled filter does, in the order the rule lists it."""

    REQUEST_HEADERS = "RequestHeaderModifier"
    RESPONSE_HEADERS = "ResponseHeaderModifier"
    REDIRECT = "RequestRedirect"
    REWRITE = "URLRewrite"
    MIRROR = "RequestMirror"
    CORS = "CORS"
    FAULT = "HTTPFault"
    """An ExtensionRef to a policy.tulle.io HTTPFault (``faults.py``)."""
    UNSUPPORTED = "ExtensionRef"


FilterStep = tuple[Step, object]
FAULT_GROUP = "policy.tulle.io"
Faults = Mapping[tuple[str, str], HTTPFault]
"""(namespace, name) -> HTTPFault: what ExtensionRef filters may name."""
NO_FAULTS: Faults = {}


@dataclass(frozen=True, slots=True, eq=False)
class CompiledBackend:
    target: BackendTarget | None
    weight: int
    filters: tuple[FilterStep, ...] = ()
    problem: str = ""
    """Why ``target`` is None: requests chosen for this backend get 500."""


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRule:
    ref: RuleRef
    matches: tuple[HTTPRouteMatch, ...]
    filters: tuple[FilterStep, ...]
    backends: tuple[CompiledBackend, ...]
    choice: WeightedChoice
    timeouts: Timeouts
    retry: RetryPolicy | None
    prefix: str | None
    """The PathPrefix value when the rule has exactly one match of that type (the prefix
    that ReplacePrefixMatch replaces)."""
    session: SessionPolicy | None = None
    """sessionPersistence (``session.py``)."""


@dataclass(slots=True)
class RuleReport:
    """A rule as status sees it: compiled, or dropped with the reason."""

    index: int
    rule: CompiledRule | None
    dropped: tuple[str, str] | None = None
    """(reason, message) when the rule is not served."""
    refs: list[tuple[RefProblem, str]] = field(default_factory=list)
    """ResolvedRefs problems found in this rule."""


@dataclass(slots=True)
class _Context:
    route: HTTPRoute | GRPCRoute
    services: ServiceIndex
    grants: Grants
    refs: list[tuple[RefProblem, str]]
    faults: Faults = field(default_factory=dict)

    def resolve(
        self, group: str, kind: str, name: str, namespace: str | None, port: int | None
    ) -> Resolution:
        resolution = resolve(
            group=group,
            kind=kind,
            name=name,
            namespace=namespace,
            port=port,
            route_namespace=self.route.metadata.namespace,
            services=self.services,
            grants=self.grants,
            route_kind=self.route.kind,
        )
        if resolution.problem is not None:
            self.refs.append((resolution.problem, resolution.message))
        return resolution


def _mirror(mirror: RequestMirror, ctx: _Context) -> Mirror | None:
    ref = mirror.backend_ref
    resolution = ctx.resolve(ref.group, ref.kind, ref.name, ref.namespace, ref.port)
    if resolution.target is None:
        return None
    if mirror.fraction is not None:
        return Mirror(resolution.target, mirror.fraction.numerator, mirror.fraction.denominator)
    if mirror.percent is not None:
        return Mirror(resolution.target, mirror.percent, 100)
    return Mirror(resolution.target)


def _backends(refs: tuple[HTTPBackendRef, ...], ctx: _Context) -> list[CompiledBackend]:
    """A rule's backendRefs resolved (HTTPRoute's and GRPCRoute's alike), each with its own
    filters; an unresolved one keeps its weight and says why (its share answers 500)."""
    backends = []
    for ref in refs:
        resolution = ctx.resolve(ref.group, ref.kind, ref.name, ref.namespace, ref.port)
        backends.append(
            CompiledBackend(
                target=resolution.target,
                weight=ref.weight,
                filters=_filters(ref.filters, ctx),
                problem=resolution.message,
            )
        )
    return backends


def _filters(filters: tuple[HTTPRouteFilter, ...], ctx: _Context) -> tuple[FilterStep, ...]:
    steps: list[FilterStep] = []
    for f in filters:
        match f.type:
            case FilterType.REQUEST_HEADER_MODIFIER if f.request_header_modifier:
                steps.append((Step.REQUEST_HEADERS, HeaderEdit.of(f.request_header_modifier)))
            case FilterType.RESPONSE_HEADER_MODIFIER if f.response_header_modifier:
                steps.append((Step.RESPONSE_HEADERS, HeaderEdit.of(f.response_header_modifier)))
            case FilterType.REQUEST_REDIRECT if f.request_redirect:
                steps.append((Step.REDIRECT, Redirect.of(f.request_redirect)))
            case FilterType.URL_REWRITE if f.url_rewrite:
                steps.append((Step.REWRITE, Rewrite.of(f.url_rewrite)))
            case FilterType.REQUEST_MIRROR if f.request_mirror:
                mirror = _mirror(f.request_mirror, ctx)
                if mirror is not None:
                    steps.append((Step.MIRROR, mirror))
            case FilterType.CORS if f.cors:
                steps.append((Step.CORS, Cors.of(f.cors)))
            case _:
                steps.append(_extension(f, ctx))
    return tuple(steps)


def _extension(f: HTTPRouteFilter, ctx: _Context) -> FilterStep:
    """An ExtensionRef: an HTTPFault of the route's namespace, or a 500 with the problem
    in ResolvedRefs (InvalidKind for a kind Tulle lacks, BackendNotFound for a missing
    object: Gateway API names no other reason for a filter's reference)."""
    ref = f.extension_ref
    what = f"{ref.group or 'core'}/{ref.kind} {ref.name}" if ref else str(f.type)
    if ref is None or ref.group != FAULT_GROUP or ref.kind != "HTTPFault":
        message = f"ExtensionRef filter {what} is not supported by Tulle"
        ctx.refs.append((RefProblem.INVALID_KIND, message))
        return (Step.UNSUPPORTED, Unsupported(message))
    namespace = ctx.route.metadata.namespace
    fault = ctx.faults.get((namespace, ref.name))
    if fault is None:
        message = f"ExtensionRef filter {what}: HTTPFault {namespace}/{ref.name} not found"
        ctx.refs.append((RefProblem.BACKEND_NOT_FOUND, message))
        return (Step.UNSUPPORTED, Unsupported(message))
    return (Step.FAULT, Fault.of(fault))


_EXCLUSIVE = (
    (Step.REWRITE, Step.REWRITE, "URLRewrite is set on both the rule and backendRefs[{b}]"),
    (
        Step.REWRITE,
        Step.REDIRECT,
        "URLRewrite on the rule cannot be combined with RequestRedirect on backendRefs[{b}]",
    ),
    (
        Step.REDIRECT,
        Step.REWRITE,
        "RequestRedirect on the rule cannot be combined with URLRewrite on backendRefs[{b}]",
    ),
    (Step.CORS, Step.CORS, "CORS is set on both the rule and backendRefs[{b}]"),
)


def _incompatible(rule_steps: tuple[FilterStep, ...], backends: list[CompiledBackend]) -> str:
    """Why the rule-level and backend-level filters cannot run together ("" if they can)."""
    rule_kinds = {kind for kind, _ in rule_steps}
    for b, backend in enumerate(backends):
        backend_kinds = {kind for kind, _ in backend.filters}
        for at_rule, at_backend, message in _EXCLUSIVE:
            if at_rule in rule_kinds and at_backend in backend_kinds:
                return message.format(b=b)
    return ""


def _refused_regex(matches: tuple[HTTPRouteMatch, ...]) -> str:
    """Why the first regular expression of ``matches`` that RE2 refuses is refused ("" if
    none). Admission already refuses these; routes built in code get here unchecked."""
    regex = StringMatchType.REGULAR_EXPRESSION
    for match in matches:
        patterns = [match.path.value] if match.path.type is PathMatchType.REGULAR_EXPRESSION else []
        patterns += [h.value for h in match.headers if h.type is regex]
        patterns += [q.value for q in match.query_params if q.type is regex]
        if refused := first_refused(patterns):
            return refused
    return ""


def first_refused(patterns: list[str]) -> str:
    """Why the first of ``patterns`` that RE2 refuses is refused ("" if none)."""
    for pattern in patterns:
        if (problem := regex_problem(pattern)) is not None:
            return f"regular expression {pattern[:80]!r} {problem}"
    return ""


def prepare_rule(
    route: HTTPRoute | GRPCRoute,
    index: int,
    name: str | None,
    filters: tuple[HTTPRouteFilter, ...],
    backend_refs: tuple[HTTPBackendRef, ...],
    refused_regex: str,
    services: ServiceIndex,
    grants: Grants,
    faults: Faults,
) -> tuple[RuleReport, RuleRef, tuple[FilterStep, ...], list[CompiledBackend]]:
    """What HTTPRoute and GRPCRoute rules share before their kind's own parts: the filters
    and backendRefs resolved (refs recorded for status), and the report dropped, with its
    reason, for a refused regular expression (``refused_regex``) or incompatible filters."""
    ctx = _Context(route, services, grants, [], faults)
    steps = _filters(filters, ctx)
    backends = _backends(backend_refs, ctx)
    meta = route.metadata
    ref_ = RuleRef(meta.namespace, meta.name, index, name, route.kind)
    report = RuleReport(index=index, rule=None, refs=ctx.refs)
    if refused_regex:
        report.dropped = ("UnsupportedValue", f"rule {_rule_label(ref_)}: {refused_regex}")
    elif problem := _incompatible(steps, backends):
        report.dropped = ("IncompatibleFilters", f"rule {_rule_label(ref_)}: {problem}")
    return report, ref_, steps, backends


def compile_rule(
    route: HTTPRoute,
    index: int,
    rule: HTTPRouteRule,
    services: ServiceIndex,
    grants: Grants,
    faults: Faults = NO_FAULTS,
) -> RuleReport:
    report, ref_, steps, backends = prepare_rule(
        route, index, rule.name, rule.filters, rule.backend_refs, _refused_regex(rule.matches),
        services, grants, faults,
    )
    if report.dropped:
        return report
    only = rule.matches[0] if len(rule.matches) == 1 else None
    prefix = only.path.value if only and only.path.type is PathMatchType.PATH_PREFIX else None
    report.rule = CompiledRule(
        ref=ref_,
        matches=rule.matches,
        filters=steps,
        backends=tuple(backends),
        choice=WeightedChoice([b.weight for b in backends]),
        timeouts=compile_timeouts(rule.timeouts),
        retry=RetryPolicy.of(rule.retry),
        prefix=prefix,
        session=session_policy(rule.session_persistence, ref_),
    )
    return report


def session_policy(spec: SessionPersistence | None, ref: RuleRef) -> SessionPolicy | None:
    return SessionPolicy.of(spec, ref) if spec is not None else None


def _rule_label(ref: RuleRef) -> str:
    return f"{ref.rule_index} ({ref.rule_name})" if ref.rule_name else str(ref.rule_index)


def compile_route_rules(
    route: HTTPRoute, services: ServiceIndex, grants: Grants, faults: Faults = NO_FAULTS
) -> list[RuleReport]:
    return [
        compile_rule(route, i, rule, services, grants, faults)
        for i, rule in enumerate(route.spec.rules)
    ]
