"""CORS (HTTPCORSFilter): preflights answered by the proxy, headers on actual requests.
Cases follow the spec text and the shape of the HTTPRouteCORS conformance test."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayapi import Answer, Headers, Response
from tests.unit.gatewayapi.helpers import (
    PARENT,
    backend,
    draws,
    forward,
    request,
    respond,
    route,
    tables,
)

CONFIG = {
    "allowOrigins": ["https://www.foo.com", "https://*.bar.com", "http://local:8080"],
    "allowMethods": ["GET", "OPTIONS"],
    "allowHeaders": ["x-header-1", "x-header-2"],
    "exposeHeaders": ["x-header-3", "x-header-4"],
    "allowCredentials": True,
    "maxAge": 3600,
}


def _tables(config: dict[str, Any]) -> Any:
    rule = {"filters": [{"type": "CORS", "cors": config}], "backendRefs": [backend("web")]}
    return tables(route("r", rules=[rule]))


def _preflight(
    origin: str, method: str = "GET", headers: str | None = "x-header-1, x-header-2"
) -> Any:
    extra = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if headers is not None:
        extra.append(("Access-Control-Request-Headers", headers))
    return request("/", "OPTIONS", headers=extra)


# Spec: allowOrigins: "*" in the host is greedy to the left across labels; the port
# defaults to 80/443 for http/https; an allowed origin is echoed back.
ORIGINS = [
    ("https://www.foo.com", True),
    ("https://www.foo.com:443", True),
    ("https://www.bar.com", True),
    ("https://xpto.www.bar.com", True),
    ("https://bar.com", False),
    ("http://www.foo.com", False),
    ("https://foobar.com", False),
    ("http://local:8080", True),
    ("http://local", False),
    ("not an origin", False),
]


@pytest.mark.parametrize(("origin", "allowed"), ORIGINS)
def test_preflight_origins(origin: str, allowed: bool) -> None:
    answer = respond(_tables(CONFIG).route(PARENT, _preflight(origin), rng=draws(0.0)))
    assert answer.answer is Answer.CORS_PREFLIGHT
    assert answer.response.status == 200
    headers = answer.response.headers
    if not allowed:
        assert "access-control-allow-origin" not in headers
        return
    assert headers.get("access-control-allow-origin") == origin
    assert headers.get("access-control-allow-methods") == "GET, OPTIONS"
    assert headers.get("access-control-allow-headers") == "x-header-1, x-header-2"
    assert headers.get("access-control-expose-headers") == "x-header-3, x-header-4"
    assert headers.get("access-control-max-age") == "3600"
    assert headers.get("access-control-allow-credentials") == "true"


def test_wildcards_echo_the_request_and_credentials_are_omitted_when_not_allowed() -> None:
    # Spec: "*" in allowMethods/allowHeaders may echo the requested values; without
    # allowCredentials the header is omitted entirely.
    config = {"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"]}
    answer = respond(
        _tables(config).route(
            PARENT, _preflight("https://foobar.com:12345", "PUT", "x-a"), rng=draws(0.0)
        )
    )
    headers = answer.response.headers
    assert headers.get("access-control-allow-origin") == "https://foobar.com:12345"
    assert headers.get("access-control-allow-methods") == "PUT"
    assert headers.get("access-control-allow-headers") == "x-a"
    assert "access-control-allow-credentials" not in headers
    assert headers.get("access-control-max-age") == "5"  # the CRD default


def test_wildcard_headers_omitted_when_not_requested() -> None:
    config = {"allowOrigins": ["*"], "allowHeaders": ["*"]}
    answer = respond(
        _tables(config).route(PARENT, _preflight("https://a.com", headers=None), rng=draws(0.0))
    )
    assert "access-control-allow-headers" not in answer.response.headers


def test_options_without_cors_request_headers_is_forwarded() -> None:
    sent = forward(
        _tables(CONFIG).route(
            PARENT,
            request("/", "OPTIONS", headers=[("Origin", "https://www.foo.com")]),
            rng=draws(0.0),
        )
    )
    assert sent.request.method == "OPTIONS"


ACTUAL = [
    ("https://www.foo.com", "https://www.foo.com"),
    ("https://www.bar.com", "https://www.bar.com"),
    ("https://foobar.com", None),
    (None, None),
]


@pytest.mark.parametrize(("origin", "echoed"), ACTUAL)
def test_actual_request_gets_cors_headers(origin: str | None, echoed: str | None) -> None:
    headers = [("Origin", origin)] if origin else []
    sent = forward(_tables(CONFIG).route(PARENT, request("/", headers=headers), rng=draws(0.0)))
    final = sent.finish(Response(200, Headers([("content-type", "text/plain")])))
    assert final.headers.get("access-control-allow-origin") == echoed
    if echoed:
        assert final.headers.get("access-control-allow-credentials") == "true"
        assert final.headers.get("access-control-expose-headers") == "x-header-3, x-header-4"
        assert final.headers.get("vary") == "Origin"


def test_expose_wildcard_with_credentials_lists_the_response_headers() -> None:
    # Spec: with allowCredentials, "*" cannot be used in Access-Control-Expose-Headers.
    config = {"allowOrigins": ["*"], "exposeHeaders": ["*"], "allowCredentials": True}
    sent = forward(
        _tables(config).route(
            PARENT, request("/", headers=[("Origin", "https://a.com")]), rng=draws(0.0)
        )
    )
    final = sent.finish(Response(200, Headers([("X-Custom", "1"), ("Content-Type", "text/plain")])))
    assert final.headers.get("access-control-expose-headers") == "X-Custom, Content-Type"
