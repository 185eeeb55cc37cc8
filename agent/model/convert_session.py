"""Reader for a route rule's ``sessionPersistence`` (GEP-1619, Gateway API v1.6.1), shared
by HTTPRoute and GRPCRoute: the CRD's limits and CEL rules, and what the waypoint needs to
put the name on the wire."""

from __future__ import annotations

from datetime import timedelta

from agent.model.httproute import (
    CookieConfig,
    CookieLifetimeType,
    SessionPersistence,
    SessionPersistenceType,
)
from agent.model.reader import Reader
from agent.model.validation import http_token, quote

MAX_SESSION_NAME = 128
"""Characters (the CRD's maxLength)."""
RESERVED_HEADERS = frozenset({
    "connection", "content-length", "content-type", "cookie", "host", "keep-alive",
    "proxy-connection", "set-cookie", "te", "trailer", "transfer-encoding", "upgrade",
})
"""Names a Header session may not take: the waypoint writes the token into the response,
where any of these would change its framing, its connection or its cookies."""


def read_session_persistence(r: Reader) -> SessionPersistence:
    if r.has("idleTimeout"):
        # Gateway API v1.6 removed it (no implementation had it); accepting it would be
        # accepting a timeout that is not enforced.
        r.fail("idleTimeout", "not supported: Gateway API v1.6 removed idleTimeout (GEP-1619)")
    name = r.string("sessionName")
    if name is not None:
        # It becomes a cookie name (RFC 6265: a token) or a header name: either way a token.
        if not 1 <= len(name) <= MAX_SESSION_NAME:
            r.fail("sessionName", f"must be 1 to {MAX_SESSION_NAME} characters")
        if (problem := http_token(name)) is not None:
            r.fail("sessionName", problem)
    timeout = r.duration("absoluteTimeout")
    if timeout is not None and timeout <= timedelta(0):
        r.fail("absoluteTimeout", "must be greater than 0")
    kind = r.enum("type", SessionPersistenceType, SessionPersistenceType.COOKIE)
    cookie = r.obj("cookieConfig", _read_cookie_config)
    if cookie is not None and kind is not SessionPersistenceType.COOKIE:
        r.fail("cookieConfig", "cookieConfig can only be set with type Cookie")
    if kind is SessionPersistenceType.HEADER and name is not None:
        lowered = name.lower()
        if lowered in RESERVED_HEADERS or lowered.startswith("grpc-"):
            r.fail(
                "sessionName",
                f"{quote(name)} cannot carry a session with type Header: it is a framing, "
                "connection or cookie field, or reserved by gRPC",
            )
    spec = SessionPersistence(
        session_name=name, absolute_timeout=timeout, type=kind, cookie_config=cookie
    )
    if spec.lifetime_type is CookieLifetimeType.PERMANENT and timeout is None:
        r.fail(
            "absoluteTimeout",
            "AbsoluteTimeout must be specified when cookie lifetimeType is Permanent",
        )
    return spec


def _read_cookie_config(r: Reader) -> CookieConfig:
    return CookieConfig(
        lifetime_type=r.enum("lifetimeType", CookieLifetimeType, CookieLifetimeType.SESSION)
    )
