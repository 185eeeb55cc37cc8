"""HTTPRoute filters as pure transforms over ``Request`` and ``Response``.

Spec (HTTPRouteFilter and the filter types): header modifiers set, add and remove
case-insensitively; RequestRedirect answers with a Location built from scheme, hostname,
port and path; URLRewrite changes Host and path before forwarding; RequestMirror copies
the request to other backends and ignores their answers. CORS lives in ``cors.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from agent.model.httproute import (
    HeaderModifier,
    PathModifier,
    PathModifierType,
    RequestRedirect,
    URLRewrite,
)
from gatewayapi.headers import Headers
from gatewayapi.types import BackendTarget, Request, Response

WELL_KNOWN_PORTS = {"http": 80, "https": 443}

# --- header modifiers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeaderEdit:
    """RequestHeaderModifier or ResponseHeaderModifier (HTTPHeaderFilter): remove, then
    set (overwrite), then add (append to existing values)."""

    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()

    @classmethod
    def of(cls, modifier: HeaderModifier) -> HeaderEdit:
        return cls(
            set=tuple((h.name, h.value) for h in modifier.set),
            add=tuple((h.name, h.value) for h in modifier.add),
            remove=modifier.remove,
        )

    def apply(self, headers: Headers) -> Headers:
        if self.remove:
            headers = headers.remove(*self.remove)
        for name, value in self.set:
            headers = headers.set(name, value)
        for name, value in self.add:
            headers = headers.add(name, value)
        return headers


# --- paths -----------------------------------------------------------------------------


def replace_prefix(path: str, prefix: str, replacement: str) -> str:
    """ReplacePrefixMatch: swap the matched ``prefix`` of ``path`` for ``replacement``.

    Follows the table in the spec (HTTPPathModifier.replacePrefixMatch): a trailing "/"
    on either prefix or replacement is ignored, what followed the prefix is kept, and an
    empty result is "/" (``/foo/bar``, ``/foo``, ``/xyz`` gives ``/xyz/bar``;
    ``/foo/``, ``/foo``, ``""`` gives ``/``). ``path`` must match ``prefix`` element-wise.
    """
    key = prefix[:-1] if prefix.endswith("/") else prefix
    rest = path[len(key) :]
    head = replacement[:-1] if replacement.endswith("/") else replacement
    result = head + rest
    if not result.startswith("/"):
        result = "/" + result
    return result


def modify_path(path: str, modifier: PathModifier, prefix: str | None) -> str:
    if modifier.type is PathModifierType.REPLACE_FULL_PATH:
        full = modifier.replace_full_path or "/"
        return full if full.startswith("/") else "/" + full
    return replace_prefix(path, prefix or "/", modifier.replace_prefix_match or "")


# --- redirect and rewrite --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Redirect:
    """RequestRedirect, answered by the proxy."""

    scheme: str | None
    hostname: str | None
    port: int | None
    path: PathModifier | None
    status: int

    @classmethod
    def of(cls, redirect: RequestRedirect) -> Redirect:
        return cls(
            redirect.scheme, redirect.hostname, redirect.port, redirect.path, redirect.status_code
        )

    def location(self, request: Request, prefix: str | None, listener_port: int) -> str:
        """The Location value. Port rules (HTTPRequestRedirectFilter.port): an explicit
        port wins; else a redirect scheme implies its well-known port; else the listener's
        port. The port is left out when it is the scheme's default (http 80, https 443)."""
        scheme = self.scheme or request.scheme
        host = self.hostname or request.host
        if self.port is not None:
            port = self.port
        elif self.scheme is not None:
            port = WELL_KNOWN_PORTS.get(self.scheme, listener_port)
        else:
            port = listener_port
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        authority = host if WELL_KNOWN_PORTS.get(scheme) == port else f"{host}:{port}"
        path = request.path
        if self.path is not None:
            path = modify_path(path, self.path, prefix)
        query = request.query
        return f"{scheme}://{authority}{path}" + (f"?{query}" if query else "")

    def response(self, request: Request, prefix: str | None, listener_port: int) -> Response:
        location = self.location(request, prefix, listener_port)
        return Response(self.status, Headers((("location", location), ("content-length", "0"))))


@dataclass(frozen=True, slots=True)
class Rewrite:
    """URLRewrite: a new Host (the authority, port dropped) and/or path."""

    hostname: str | None
    path: PathModifier | None

    @classmethod
    def of(cls, rewrite: URLRewrite) -> Rewrite:
        return cls(rewrite.hostname, rewrite.path)

    def apply(self, request: Request, prefix: str | None) -> Request:
        if self.path is not None:
            request = request.with_path(modify_path(request.path, self.path, prefix))
        if self.hostname is not None:
            headers = request.headers
            if "host" in headers:
                headers = headers.set("host", self.hostname)
            request = replace(request, authority=self.hostname, headers=headers)
        return request


# --- mirrors ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mirror:
    """RequestMirror to a resolved backend, for ``numerator/denominator`` of requests."""

    target: BackendTarget
    numerator: int = 1
    denominator: int = 1

    def fires(self, draw: float) -> bool:
        """Whether a uniform draw in [0, 1) selects this request for mirroring."""
        return draw * self.denominator < self.numerator


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A filter Tulle cannot run (ExtensionRef). The spec forbids skipping it: requests
    that reach it are answered 500."""

    message: str
