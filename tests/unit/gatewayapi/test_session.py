"""Session persistence in the route engine (gatewayapi/session.py): tokens that verify only
for their rule and key, forged, garbled, expired and oversized ones ignored, the pinned
backend chosen over the weights, and the cookie's attributes (GEP-1619)."""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode
from datetime import timedelta
from typing import Any

import pytest

from agent.model.httproute import (
    CookieConfig,
    CookieLifetimeType,
    HTTPRouteMatch,
    PathMatch,
    PathMatchType,
    SessionPersistence,
    SessionPersistenceType,
)
from gatewayapi import Forward, Headers, Respond
from gatewayapi.session import (
    MAX_CANDIDATES,
    MAX_TOKEN,
    SessionKey,
    SessionPolicy,
    cookie_path,
)
from gatewayapi.types import BackendTarget, RuleRef
from tests.unit.gatewayapi.helpers import PARENT, backend, grpc_route, request, route, tables

KEY = SessionKey(b"k" * 32, clock=lambda: 1_000_000.0)
OTHER_KEY = SessionKey(b"o" * 32, clock=lambda: 1_000_000.0)
REF = RuleRef("shop", "cart", 0, None)
COOKIE = SessionPolicy.of(SessionPersistence(session_name="sid"), REF)
NOW = 1_000_000.0


def cookie(value: str) -> Headers:
    return Headers((("cookie", value),))


# --- tokens ----------------------------------------------------------------------------


def test_token_round_trips_ipv4_and_ipv6() -> None:
    for endpoint in (("10.244.1.7", 8080), ("fd00::7", 443)):
        token = KEY.issue(COOKIE, 2, endpoint, NOW)
        assert len(token) <= MAX_TOKEN
        pin = KEY.verify(COOKIE, token, NOW)
        assert pin is not None and (pin.backend, pin.endpoint, pin.token) == (2, endpoint, token)


def test_token_from_another_key_or_rule_does_not_verify() -> None:
    token = KEY.issue(COOKIE, 0, ("10.0.0.1", 80), NOW)
    assert OTHER_KEY.verify(COOKIE, token, NOW) is None
    other_rule = SessionPolicy.of(SessionPersistence(session_name="sid"), REF._replace(rule_index=1))
    assert KEY.verify(other_rule, token, NOW) is None
    other_route = SessionPolicy.of(SessionPersistence(session_name="sid"), REF._replace(route="x"))
    assert KEY.verify(other_route, token, NOW) is None


def test_every_altered_byte_is_refused() -> None:
    """The attacker's edit: any byte of the payload or tag changed (another endpoint, another
    backend, a later expiry) fails the HMAC."""
    token = KEY.issue(COOKIE, 0, ("10.0.0.1", 80), NOW)
    raw = bytearray(urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for i in range(len(raw)):
        forged = bytearray(raw)
        forged[i] ^= 0x01
        text = urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        assert KEY.verify(COOKIE, text, NOW) is None, i


@pytest.mark.parametrize(
    "garbage",
    ["", "=", "!!!!", "a", "A" * 38, "A" * (MAX_TOKEN + 1), "é" * 10, "AAAA\x00AAAA",
     "AAAA AAAA", "AAAA=AAAA", "%00%00", "Zm9v" * 9],
)
def test_garbled_tokens_are_nothing(garbage: str) -> None:
    assert KEY.verify(COOKIE, garbage, NOW) is None


def test_stray_characters_make_a_valid_token_invalid() -> None:
    """The base64 decoder skips characters outside its alphabet: the token is checked
    against the alphabet first, so each token has one spelling."""
    token = KEY.issue(COOKIE, 0, ("10.0.0.1", 80), NOW)
    assert KEY.verify(COOKIE, token[:5] + "." + token[5:], NOW) is None


def test_absolute_timeout_expires_the_token() -> None:
    policy = SessionPolicy.of(SessionPersistence(absolute_timeout=timedelta(seconds=60)), REF)
    token = KEY.issue(policy, 0, ("10.0.0.1", 80), NOW)
    assert KEY.verify(policy, token, NOW + 59) is not None
    assert KEY.verify(policy, token, NOW + 60) is None


def test_a_token_outliving_the_rules_timeout_is_refused() -> None:
    """A rule that gains (or shortens) its absoluteTimeout does not honour older tokens."""
    endless = KEY.issue(COOKIE, 0, ("10.0.0.1", 80), NOW)
    timed = SessionPolicy.of(
        SessionPersistence(session_name="sid", absolute_timeout=timedelta(seconds=10)), REF
    )
    assert KEY.verify(timed, endless, NOW) is None
    long = SessionPolicy.of(
        SessionPersistence(session_name="sid", absolute_timeout=timedelta(hours=1)), REF
    )
    assert KEY.verify(timed, KEY.issue(long, 0, ("10.0.0.1", 80), NOW), NOW) is None


def test_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        SessionKey(b"short")


# --- reading requests ------------------------------------------------------------------


def test_cookie_found_among_others_and_across_cookie_headers() -> None:
    token = KEY.issue(COOKIE, 1, ("10.0.0.2", 80), NOW)
    headers = Headers((("cookie", "a=1; b=2"), ("cookie", f"x=y; sid={token}; z=3")))
    pin = KEY.read(COOKIE, headers)
    assert pin is not None and pin.endpoint == ("10.0.0.2", 80)
    assert KEY.read(COOKIE, cookie(f'sid="{token}"')) is not None  # RFC 6265 quoted value


def test_a_bad_cookie_of_the_name_does_not_hide_a_good_one() -> None:
    token = KEY.issue(COOKIE, 1, ("10.0.0.2", 80), NOW)
    assert KEY.read(COOKIE, cookie(f"sid=forged; sid={token}")) is not None


def test_cookie_name_must_match_exactly() -> None:
    token = KEY.issue(COOKIE, 1, ("10.0.0.2", 80), NOW)
    assert KEY.read(COOKIE, cookie(f"xsid={token}; SID={token}")) is None


def test_huge_cookie_header_is_bounded() -> None:
    """64 KiB of cookies, thousands named like the session: at most MAX_CANDIDATES HMACs,
    no error, and nothing pins."""
    line = "; ".join(f"sid=forged{i}" for i in range(5000))
    assert len(COOKIE.candidates(cookie(line))) == MAX_CANDIDATES
    assert KEY.read(COOKIE, cookie(line)) is None
    assert KEY.read(COOKIE, cookie("sid=" + "A" * 65_000)) is None
    assert COOKIE.candidates(cookie("sid=" + "A" * 65_000)) == []


def test_header_session_reads_its_header() -> None:
    policy = SessionPolicy.of(
        SessionPersistence(session_name="X-Session", type=SessionPersistenceType.HEADER), REF
    )
    assert policy.name == "x-session"
    token = KEY.issue(policy, 0, ("10.0.0.3", 80), NOW)
    pin = KEY.read(policy, Headers((("X-Session", token),)))
    assert pin is not None and pin.endpoint == ("10.0.0.3", 80)
    assert KEY.read(policy, cookie(f"x-session={token}")) is None


# --- the response field ----------------------------------------------------------------


def test_session_cookie_has_no_lifetime_attributes() -> None:
    policy = SessionPolicy.of(SessionPersistence(absolute_timeout=timedelta(minutes=5)), REF)
    name, value = policy.response_header("TOKEN", "/", secure=False)
    assert name == "set-cookie"
    assert value.startswith(f"{policy.name}=TOKEN; Path=/")
    assert "Max-Age" not in value and "Expires" not in value
    assert "HttpOnly" in value and "SameSite=Strict" in value and "Secure" not in value


def test_permanent_cookie_carries_max_age_of_the_absolute_timeout() -> None:
    spec = SessionPersistence(
        absolute_timeout=timedelta(minutes=5),
        cookie_config=CookieConfig(CookieLifetimeType.PERMANENT),
    )
    _, value = SessionPolicy.of(spec, REF).response_header("T", "/a", secure=True)
    assert "; Max-Age=300" in value and "; Path=/a" in value and "; Secure" in value


def test_default_cookie_name_is_unique_per_rule() -> None:
    names = {
        SessionPolicy.of(SessionPersistence(), ref).name
        for ref in (REF, REF._replace(rule_index=1), REF._replace(route="x"),
                    REF._replace(kind="GRPCRoute"))
    }
    assert len(names) == 4
    assert all(n.startswith("tulle-session-") for n in names)


@pytest.mark.parametrize(
    ("kind", "value", "path"),
    [
        (PathMatchType.PATH_PREFIX, "/", "/"),
        (PathMatchType.PATH_PREFIX, "/cart/", "/cart"),
        (PathMatchType.EXACT, "/cart/checkout", "/cart/checkout"),
        (PathMatchType.REGULAR_EXPRESSION, "/p1/p2/.*/p3", "/p1/p2"),
        (PathMatchType.REGULAR_EXPRESSION, "^/items/[0-9]+", "/items"),
        (PathMatchType.REGULAR_EXPRESSION, ".*", "/"),
    ],
)
def test_cookie_path_follows_the_match(kind: PathMatchType, value: str, path: str) -> None:
    assert cookie_path(HTTPRouteMatch(path=PathMatch(kind, value))) == path


def test_cookie_path_of_no_match_is_root() -> None:
    assert cookie_path(None) == "/"


# --- routing ---------------------------------------------------------------------------

SPLIT: dict[str, Any] = {
    "backendRefs": [backend("v1", weight=1), backend("v2", weight=0)],
    "sessionPersistence": {"sessionName": "sid"},
}


def _forward(result: Forward | Respond) -> Forward:
    assert isinstance(result, Forward), result
    return result


def test_pinned_backend_wins_over_weights_even_at_zero() -> None:
    """GEP-1619 "Traffic Splitting": a session stays on its backend, weight 0 included."""
    t = tables(route(rules=[SPLIT]))
    first = _forward(t.route(PARENT, request("/"), rng=lambda: 0.5, sessions=KEY))
    assert first.backend == BackendTarget("default", "v1", 8080) and first.pin is None
    policy = first.selection.rule.session
    assert policy is not None
    token = KEY.issue(policy, 1, ("10.1.0.9", 8080), NOW)
    pinned = _forward(t.route(
        PARENT, request("/", headers=[("cookie", f"sid={token}")]), rng=lambda: 0.5,
        sessions=KEY,
    ))
    assert pinned.backend == BackendTarget("default", "v2", 8080)
    assert pinned.backend_index == 1
    assert pinned.pin is not None and pinned.pin.endpoint == ("10.1.0.9", 8080)


def test_without_a_key_tokens_are_ignored() -> None:
    t = tables(route(rules=[SPLIT]))
    policy = _forward(t.route(PARENT, request("/"), sessions=KEY)).selection.rule.session
    assert policy is not None
    token = KEY.issue(policy, 1, ("10.1.0.9", 8080), NOW)
    plain = _forward(t.route(PARENT, request("/", headers=[("cookie", f"sid={token}")])))
    assert plain.backend.name == "v1" and plain.pin is None


def test_token_naming_a_backend_the_rule_no_longer_has_is_ignored() -> None:
    t = tables(route(rules=[SPLIT]))
    policy = _forward(t.route(PARENT, request("/"), sessions=KEY)).selection.rule.session
    assert policy is not None
    token = KEY.issue(policy, 7, ("10.1.0.9", 8080), NOW)
    fwd = _forward(t.route(
        PARENT, request("/", headers=[("cookie", f"sid={token}")]), sessions=KEY
    ))
    assert fwd.backend.name == "v1" and fwd.pin is None


def test_token_of_another_rule_of_the_same_route_does_not_pin() -> None:
    rules = [
        {"matches": [{"path": {"value": "/a"}}], **SPLIT},
        {"matches": [{"path": {"value": "/b"}}], **SPLIT},
    ]
    t = tables(route(rules=rules))
    a = _forward(t.route(PARENT, request("/a"), sessions=KEY)).selection.rule.session
    assert a is not None
    token = KEY.issue(a, 1, ("10.1.0.9", 8080), NOW)
    at_a = _forward(t.route(PARENT, request("/a", headers=[("cookie", f"sid={token}")]),
                            sessions=KEY))
    at_b = _forward(t.route(PARENT, request("/b", headers=[("cookie", f"sid={token}")]),
                            sessions=KEY))
    assert at_a.pin is not None and at_a.backend.name == "v2"
    assert at_b.pin is None and at_b.backend.name == "v1"


def test_rule_without_session_persistence_has_no_policy() -> None:
    t = tables(route())
    assert _forward(t.route(PARENT, request("/"), sessions=KEY)).selection.rule.session is None


def test_grpc_rule_compiles_its_policy() -> None:
    g = grpc_route(rules=[{
        "backendRefs": [backend("v1")],
        "sessionPersistence": {"type": "Header", "sessionName": "x-session"},
    }])
    t = tables(g)
    fwd = _forward(t.route(
        PARENT, request("/pkg.Svc/Call", method="POST",
                        headers=[("content-type", "application/grpc")]), sessions=KEY,
    ))
    policy = fwd.selection.rule.session
    assert policy is not None and not policy.cookie and policy.name == "x-session"
