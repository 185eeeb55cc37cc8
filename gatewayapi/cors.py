"""The CORS filter (HTTPCORSFilter): preflights answered by the proxy, headers added to
actual cross-origin responses.

Spec: an origin is ``scheme://host[:port]``, the port defaulting to 80 for http and 443
for https; ``*`` in the host is greedy to the left across labels, ``*`` alone allows every
origin. A matching origin is echoed in Access-Control-Allow-Origin (never ``*`` when
credentials are allowed; Tulle always echoes). A ``*`` in allowMethods or allowHeaders
echoes what the preflight asked for. Preflights get 200 whether or not the origin
matches; a refused origin simply gets no CORS headers, and the browser blocks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent.model.httproute import CORS
from gatewayapi.headers import Headers
from gatewayapi.types import Request, Response

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ORIGIN = re.compile(r"^(https?)://([^/:]+|\[[^\]]+\])(?::([0-9]{1,5}))?$")


def _split_origin(origin: str) -> tuple[str, str, int] | None:
    found = _ORIGIN.match(origin.strip().lower())
    if found is None:
        return None
    scheme, host, port = found.groups()
    return scheme, host, int(port) if port else _DEFAULT_PORTS[scheme]


@dataclass(frozen=True, slots=True)
class _OriginPattern:
    scheme: str
    host: re.Pattern[str]
    port: int

    @classmethod
    def parse(cls, value: str) -> _OriginPattern | None:
        parts = _split_origin(value)
        if parts is None:
            return None
        scheme, host, port = parts
        regex = ".*".join(re.escape(piece) for piece in host.split("*"))
        return cls(scheme, re.compile(regex), port)

    def matches(self, origin: tuple[str, str, int]) -> bool:
        scheme, host, port = origin
        return scheme == self.scheme and port == self.port and self.host.fullmatch(host) is not None


@dataclass(frozen=True, slots=True)
class Cors:
    any_origin: bool
    origins: tuple[_OriginPattern, ...]
    credentials: bool
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    max_age: int

    @classmethod
    def of(cls, cors: CORS) -> Cors:
        patterns = tuple(
            p for p in (_OriginPattern.parse(o) for o in cors.allow_origins if o != "*") if p
        )
        return cls(
            any_origin="*" in cors.allow_origins,
            origins=patterns,
            credentials=bool(cors.allow_credentials),
            methods=cors.allow_methods,
            headers=cors.allow_headers,
            expose=cors.expose_headers,
            max_age=cors.max_age,
        )

    def allows(self, origin: str) -> bool:
        if self.any_origin:
            return True
        parts = _split_origin(origin)
        return parts is not None and any(p.matches(parts) for p in self.origins)

    @staticmethod
    def is_preflight(request: Request) -> bool:
        headers = request.headers
        return (
            request.method == "OPTIONS"
            and "origin" in headers
            and "access-control-request-method" in headers
        )

    def preflight(self, request: Request) -> Response:
        """The proxy's answer to a preflight request."""
        headers = Headers((("content-length", "0"),))
        origin = request.headers.get("origin") or ""
        if not self.allows(origin):
            return Response(200, headers)
        out: list[tuple[str, str]] = [("access-control-allow-origin", origin)]
        if self.credentials:
            out.append(("access-control-allow-credentials", "true"))
        asked_method = request.headers.get("access-control-request-method")
        if self.methods == ("*",):
            if asked_method:
                out.append(("access-control-allow-methods", asked_method))
        elif self.methods:
            out.append(("access-control-allow-methods", ", ".join(self.methods)))
        asked_headers = request.headers.combined("access-control-request-headers")
        if self.headers == ("*",):
            if asked_headers:
                out.append(("access-control-allow-headers", asked_headers))
        elif self.headers:
            out.append(("access-control-allow-headers", ", ".join(self.headers)))
        if self.expose and (self.expose != ("*",) or not self.credentials):
            out.append(("access-control-expose-headers", ", ".join(self.expose)))
        out.append(("access-control-max-age", str(self.max_age)))
        out.append(("vary", "Origin"))
        return Response(200, Headers((*out, *headers)))

    def decorate(self, request: Request, response: Response) -> Response:
        """Add CORS headers to the response to an actual (non-preflight) request."""
        origin = request.headers.get("origin")
        if origin is None or not self.allows(origin):
            return response
        headers = response.headers.set("access-control-allow-origin", origin)
        if self.credentials:
            headers = headers.set("access-control-allow-credentials", "true")
        if self.expose == ("*",) and self.credentials:
            # "*" is not allowed with credentials: list what this response carries.
            names = [n for n in headers.names() if not n.lower().startswith("access-control-")]
            if names:
                headers = headers.set("access-control-expose-headers", ", ".join(names))
        elif self.expose:
            headers = headers.set("access-control-expose-headers", ", ".join(self.expose))
        headers = headers.add("vary", "Origin")
        return Response(response.status, headers, response.body)
