"""gateway.networking.k8s.io HTTPRoute.

CRD defaults are applied by the converter: a rule with no matches holds one
``PathPrefix "/"`` match, a match with no path holds ``PathPrefix "/"``, header and query
matches are Exact, backend weight is 1, redirect status is 302 and CORS maxAge is 5.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import ClassVar

from agent.model.gateway import (
    BackendObjectReference,
    LocalObjectReference,
    ParentReference,
    RouteStatus,
)
from agent.model.meta import ObjectMeta

# --- matches ---------------------------------------------------------------------------


class PathMatchType(StrEnum):
    EXACT = "Exact"
    PATH_PREFIX = "PathPrefix"
    REGULAR_EXPRESSION = "RegularExpression"


class StringMatchType(StrEnum):
    """Match type of a header or query parameter value."""

    EXACT = "Exact"
    REGULAR_EXPRESSION = "RegularExpression"


class HTTPMethod(StrEnum):
    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"
    CONNECT = "CONNECT"
    OPTIONS = "OPTIONS"
    TRACE = "TRACE"
    PATCH = "PATCH"


@dataclass(frozen=True, slots=True)
class PathMatch:
    type: PathMatchType = PathMatchType.PATH_PREFIX
    value: str = "/"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """Header names compare case-insensitively when matching requests."""

    name: str
    value: str
    type: StringMatchType = StringMatchType.EXACT


@dataclass(frozen=True, slots=True)
class QueryParamMatch:
    name: str
    value: str
    type: StringMatchType = StringMatchType.EXACT


@dataclass(frozen=True, slots=True)
class HTTPRouteMatch:
    """All given conditions must hold (AND)."""

    path: PathMatch = field(default_factory=PathMatch)
    headers: tuple[HeaderMatch, ...] = ()
    query_params: tuple[QueryParamMatch, ...] = ()
    method: HTTPMethod | None = None


DEFAULT_MATCHES: tuple[HTTPRouteMatch, ...] = (HTTPRouteMatch(),)


# --- filters ---------------------------------------------------------------------------


class FilterType(StrEnum):
    REQUEST_HEADER_MODIFIER = "RequestHeaderModifier"
    RESPONSE_HEADER_MODIFIER = "ResponseHeaderModifier"
    REQUEST_MIRROR = "RequestMirror"
    REQUEST_REDIRECT = "RequestRedirect"
    URL_REWRITE = "URLRewrite"
    CORS = "CORS"
    EXTENSION_REF = "ExtensionRef"


@dataclass(frozen=True, slots=True)
class HTTPHeader:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class HeaderModifier:
    set: tuple[HTTPHeader, ...] = ()
    add: tuple[HTTPHeader, ...] = ()
    remove: tuple[str, ...] = ()


class PathModifierType(StrEnum):
    REPLACE_FULL_PATH = "ReplaceFullPath"
    REPLACE_PREFIX_MATCH = "ReplacePrefixMatch"


@dataclass(frozen=True, slots=True)
class PathModifier:
    """Exactly the field named by ``type`` is set (replace_prefix_match may be "")."""

    type: PathModifierType
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


@dataclass(frozen=True, slots=True)
class RequestRedirect:
    """``scheme`` is "http" or "https"; ``status_code`` one of 301, 302, 303, 307, 308."""

    scheme: str | None = None
    hostname: str | None = None
    path: PathModifier | None = None
    port: int | None = None
    status_code: int = 302


@dataclass(frozen=True, slots=True)
class URLRewrite:
    hostname: str | None = None
    path: PathModifier | None = None


@dataclass(frozen=True, slots=True)
class Fraction:
    numerator: int
    denominator: int = 100


@dataclass(frozen=True, slots=True)
class RequestMirror:
    """At most one of percent and fraction; neither means 100%."""

    backend_ref: BackendObjectReference
    percent: int | None = None
    fraction: Fraction | None = None


@dataclass(frozen=True, slots=True)
class CORS:
    allow_origins: tuple[str, ...] = ()
    allow_credentials: bool | None = None
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int = 5


@dataclass(frozen=True, slots=True)
class HTTPRouteFilter:
    """Exactly the field matching ``type`` is set."""

    type: FilterType
    request_header_modifier: HeaderModifier | None = None
    response_header_modifier: HeaderModifier | None = None
    request_mirror: RequestMirror | None = None
    request_redirect: RequestRedirect | None = None
    url_rewrite: URLRewrite | None = None
    cors: CORS | None = None
    extension_ref: LocalObjectReference | None = None


# --- backends, rules -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HTTPBackendRef:
    """A weighted backend (weight 0..1000000, default 1). group "" + kind Service is a
    core Service, which requires ``port``."""

    name: str
    group: str = ""
    kind: str = "Service"
    namespace: str | None = None
    port: int | None = None
    weight: int = 1
    filters: tuple[HTTPRouteFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class HTTPRouteTimeouts:
    """Zero disables a timeout. backend_request <= request unless request is zero."""

    request: timedelta | None = None
    backend_request: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HTTPRouteRetry:
    """``codes`` are 400..599; ``attempts`` 0 disables retries and is at most 10
    (``MAX_RETRY_ATTEMPTS``, checked at admission)."""

    codes: tuple[int, ...] = ()
    attempts: int | None = None
    backoff: timedelta | None = None


class SessionPersistenceType(StrEnum):
    COOKIE = "Cookie"
    HEADER = "Header"


class CookieLifetimeType(StrEnum):
    PERMANENT = "Permanent"
    """The cookie carries Max-Age (``absolute_timeout``, then required)."""
    SESSION = "Session"
    """No Max-Age or Expires: the waypoint enforces ``absolute_timeout`` from the token."""


@dataclass(frozen=True, slots=True)
class CookieConfig:
    lifetime_type: CookieLifetimeType = CookieLifetimeType.SESSION


@dataclass(frozen=True, slots=True)
class SessionPersistence:
    """GEP-1619 (Gateway API v1.6.1, experimental) on an HTTPRoute or GRPCRoute rule. v1.6
    removed ``idleTimeout`` and BackendLBPolicy. ``cookie_config`` only with type Cookie;
    a Permanent lifetime requires ``absolute_timeout``."""

    session_name: str | None = None
    absolute_timeout: timedelta | None = None
    type: SessionPersistenceType = SessionPersistenceType.COOKIE
    cookie_config: CookieConfig | None = None

    @property
    def lifetime_type(self) -> CookieLifetimeType:
        config = self.cookie_config
        return config.lifetime_type if config is not None else CookieLifetimeType.SESSION


@dataclass(frozen=True, slots=True)
class HTTPRouteRule:
    """A request matches the rule if ANY match holds. No backend refs means 500 (or the
    filters, such as a redirect, answer)."""

    name: str | None = None
    matches: tuple[HTTPRouteMatch, ...] = DEFAULT_MATCHES
    filters: tuple[HTTPRouteFilter, ...] = ()
    backend_refs: tuple[HTTPBackendRef, ...] = ()
    timeouts: HTTPRouteTimeouts | None = None
    retry: HTTPRouteRetry | None = None
    session_persistence: SessionPersistence | None = None


DEFAULT_RULES: tuple[HTTPRouteRule, ...] = (HTTPRouteRule(),)


@dataclass(frozen=True, slots=True)
class HTTPRouteSpec:
    """Empty ``hostnames`` means all hostnames of the parent listener."""

    parent_refs: tuple[ParentReference, ...] = ()
    hostnames: tuple[str, ...] = ()
    rules: tuple[HTTPRouteRule, ...] = DEFAULT_RULES


@dataclass(frozen=True, slots=True)
class HTTPRoute:
    kind: ClassVar[str] = "HTTPRoute"
    metadata: ObjectMeta
    spec: HTTPRouteSpec = field(default_factory=HTTPRouteSpec)
    status: RouteStatus = RouteStatus()
