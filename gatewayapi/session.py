"""Session persistence (GEP-1619) on HTTPRoute and GRPCRoute rules, pure.

A rule with ``sessionPersistence`` pins a client to the backend endpoint its first request
went to. The waypoint hands the client a token, in a cookie (``Set-Cookie``) or in the
header the rule names, and a later request carrying it goes to the same backend of the rule
(whatever the weights say: GEP-1619 "Traffic Splitting") and the same endpoint, while that
endpoint is still among the backend's ready, admitted and not ejected ones. Otherwise the
request is balanced as usual and gets a new token.

The token is the endpoint in the clear, authenticated: ``base64url(version | expiry |
backend index | address | port | tag)``, the tag an HMAC-SHA256 (truncated to 128 bits)
over the rule's identity and the rest, under the waypoint's key (``SessionKey``; the workers
of one waypoint share it). So a forged or altered token, or one issued for another rule
(route rules never share sessions: GEP-1619 "Edge Case Behavior"), verifies as nothing and
the request is balanced as if it had none. Envoy's stateful-session cookie carries the
address too (base64, unauthenticated); the tag is what keeps a client from choosing its
pod. ``absoluteTimeout`` is the expiry inside the token (and, for a Permanent cookie, its
Max-Age): an expired token is ignored.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import ipaddress
import re
import struct
import time
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from agent.model.httproute import (
    CookieLifetimeType,
    HTTPRouteMatch,
    PathMatchType,
    SessionPersistence,
    SessionPersistenceType,
)
from gatewayapi.headers import Headers
from gatewayapi.types import RuleRef

Address = tuple[str, int]

_VERSION = 1
_HEAD = struct.Struct("!BIB")  # version, expiry (Unix seconds, 0: none), backend index
_PORT = struct.Struct("!H")
_TAG = 16
_SIZES = {_HEAD.size + 4 + _PORT.size + _TAG: 4, _HEAD.size + 16 + _PORT.size + _TAG: 16}
MAX_TOKEN = 64
"""Characters: the longest token (IPv6) is 54. Longer values are not decoded at all."""
MAX_CANDIDATES = 8
"""Cookies of the rule's name tried per request: a header repeating the name a thousand
times costs at most this many HMACs."""
_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A rule's session persistence, compiled: where the token travels and for how long."""

    type: SessionPersistenceType
    name: str
    """The cookie name (case-sensitive), or the header name in lowercase."""
    scope: bytes
    """The rule's identity, under the tag: another rule's token does not verify here."""
    timeout: int | None
    """absoluteTimeout in whole seconds (at least 1)."""
    permanent: bool
    """A Permanent cookie: Max-Age is set."""

    @classmethod
    def of(cls, spec: SessionPersistence, ref: RuleRef) -> SessionPolicy:
        scope = f"{ref.kind}/{ref.namespace}/{ref.route}/{ref.rule_index}".encode()
        name = spec.session_name
        if name is None:  # GEP-1619: "a unique cookie name should be generated"
            name = "tulle-session-" + hashlib.sha256(scope).hexdigest()[:12]
        cookie = spec.type is SessionPersistenceType.COOKIE
        timeout = spec.absolute_timeout
        return cls(
            type=spec.type,
            name=name if cookie else name.lower(),
            scope=scope,
            timeout=max(int(timeout.total_seconds()), 1) if timeout is not None else None,
            permanent=cookie and spec.lifetime_type is CookieLifetimeType.PERMANENT,
        )

    @property
    def cookie(self) -> bool:
        return self.type is SessionPersistenceType.COOKIE

    def candidates(self, headers: Headers) -> list[str]:
        """The token values a request carries for this rule, at most ``MAX_CANDIDATES``,
        none longer than ``MAX_TOKEN``."""
        found: list[str] = []
        if not self.cookie:
            for value in headers.get_all(self.name)[:MAX_CANDIDATES]:
                value = value.strip()
                if len(value) <= MAX_TOKEN:
                    found.append(value)
            return found
        name = self.name
        for line in headers.get_all("cookie"):
            if name not in line:  # most Cookie headers carry other cookies only
                continue
            for pair in line.split(";"):
                key, eq, value = pair.partition("=")
                if not eq or key.strip() != name:
                    continue
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]  # RFC 6265 allows a quoted cookie-value
                if len(value) <= MAX_TOKEN:
                    found.append(value)
                if len(found) >= MAX_CANDIDATES:
                    return found
        return found

    def response_header(self, token: str, path: str, secure: bool) -> tuple[str, str]:
        """The field that hands ``token`` to the client."""
        if not self.cookie:
            return self.name, token
        # GEP-1619 "Cookie Attributes": security by default (HttpOnly, SameSite=Strict,
        # Secure over TLS); Max-Age only for a Permanent cookie, a Session cookie has none.
        value = f"{self.name}={token}; Path={path}; HttpOnly; SameSite=Strict"
        if secure:
            value += "; Secure"
        if self.permanent and self.timeout is not None:
            value += f"; Max-Age={self.timeout}"
        return "set-cookie", value


class Pin(NamedTuple):
    """What a verified token names."""

    backend: int
    """The index of the backend in the rule's backendRefs."""
    endpoint: Address
    token: str
    expiry: int
    """Unix seconds; 0: none."""


class SessionKey:
    """Issues and verifies tokens under one secret (one per waypoint: every worker and
    every rule of it uses the same; the rule's identity goes under the tag)."""

    __slots__ = ("_key", "clock")

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a session key needs at least 16 bytes")
        self._key = key
        self.clock = clock
        """Unix seconds: expiries travel to clients, so wall-clock time (tests pass theirs)."""

    def _tag(self, scope: bytes, payload: bytes) -> bytes:
        return hmac.new(self._key, scope + b"\0" + payload, hashlib.sha256).digest()[:_TAG]

    def issue(self, policy: SessionPolicy, backend: int, endpoint: Address, now: float) -> str:
        expiry = int(now) + policy.timeout if policy.timeout is not None else 0
        payload = (
            _HEAD.pack(_VERSION, expiry, backend)
            + ipaddress.ip_address(endpoint[0]).packed
            + _PORT.pack(endpoint[1])
        )
        token = payload + self._tag(policy.scope, payload)
        return urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def verify(self, policy: SessionPolicy, token: str, now: float) -> Pin | None:
        """The pin ``token`` names for ``policy``'s rule, or None: garbled, forged, another
        rule's, expired, or longer-lived than the rule now allows."""
        if len(token) > MAX_TOKEN or not _BASE64URL.fullmatch(token):
            return None  # the decoder would skip stray characters: one spelling per token
        try:
            raw = urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        size = _SIZES.get(len(raw))
        if size is None:
            return None
        payload, tag = raw[:-_TAG], raw[-_TAG:]
        if not hmac.compare_digest(tag, self._tag(policy.scope, payload)):
            return None
        version, expiry, backend = _HEAD.unpack_from(payload)
        if version != _VERSION:
            return None
        if expiry and now >= expiry:
            return None
        if policy.timeout is not None and (not expiry or expiry > now + policy.timeout + 1):
            return None  # issued before the rule had (or shortened) its absoluteTimeout
        address = ipaddress.ip_address(payload[_HEAD.size : _HEAD.size + size])
        (port,) = _PORT.unpack_from(payload, _HEAD.size + size)
        return Pin(backend, (str(address), port), token, expiry)

    def read(self, policy: SessionPolicy, headers: Headers) -> Pin | None:
        """The first token of the request that verifies for ``policy``'s rule, now."""
        now = self.clock()
        for candidate in policy.candidates(headers):
            pin = self.verify(policy, candidate, now)
            if pin is not None:
                return pin
        return None


def cookie_path(match: HTTPRouteMatch | None) -> str:
    """The cookie's Path for a request that ``match`` selected (GEP-1619 "Path"): the
    prefix or exact path; for a regular expression, its literal part up to the last "/"
    before the first metacharacter; "/" for GRPCRoute rules (no HTTP match)."""
    if match is None:
        return "/"
    path = match.path
    value = path.value
    if path.type is PathMatchType.REGULAR_EXPRESSION:
        literal = value.removeprefix("^")
        for i, char in enumerate(literal):
            if char in _REGEX_META:
                literal = literal[:i]
                break
        value = literal[: literal.rfind("/") + 1] if "/" in literal else "/"
    value = value.rstrip("/") or "/"
    # never a character that would end the attribute or the header
    if not value.startswith("/") or any(c in value for c in ";\r\n\0") or not value.isascii():
        return "/"
    return value
