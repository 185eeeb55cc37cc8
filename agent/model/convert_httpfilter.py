"""Reader for HTTPRoute filters (HTTPRouteFilter: header modifiers, RequestMirror,
RequestRedirect, URLRewrite, CORS, ExtensionRef), with the Gateway API CRD's limits and CEL
rules. The rule and backendRef readers (convert_httproute.py) and GRPCRoute's
(convert_grpcroute.py, which takes ``read_filter`` under its own filter rules) call it."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from agent.model.convert_core import MAX_PORT, MIN_PORT
from agent.model.convert_gateway import read_backend_object_ref, read_local_object_ref
from agent.model.httproute import (
    CORS,
    FilterType,
    Fraction,
    HeaderModifier,
    HTTPHeader,
    HTTPMethod,
    HTTPRouteFilter,
    PathModifier,
    PathModifierType,
    RequestMirror,
    RequestRedirect,
    URLRewrite,
)
from agent.model.reader import REQUIRED, Reader
from agent.model.validation import (
    header_value,
    http_path,
    http_token,
    one_of,
    precise_hostname,
    quote,
)


def read_filters(r: Reader, key: str) -> tuple[HTTPRouteFilter, ...]:
    """The filters at ``key`` of an HTTPRoute rule or backendRef: each type once (but
    RequestMirror and ExtensionRef), never RequestRedirect with URLRewrite."""
    filters = r.objects(key, read_filter, max_items=16)
    counts: Counter[FilterType] = Counter()
    for i, f in enumerate(filters):
        counts[f.type] += 1
        if counts[f.type] > 1 and f.type not in _REPEATABLE:
            r.fail(f"{key}[{i}].type", f"{f.type} filter cannot be repeated")
    if counts[FilterType.REQUEST_REDIRECT] and counts[FilterType.URL_REWRITE]:
        r.fail(key, "may specify either RequestRedirect or URLRewrite, but not both")
    return filters


_REPEATABLE = (FilterType.REQUEST_MIRROR, FilterType.EXTENSION_REF)


def read_filter(r: Reader) -> HTTPRouteFilter:
    filter_type = r.enum("type", FilterType, REQUIRED)
    for other, (key, _, _) in _FILTER_FIELDS.items():
        if other is not filter_type and r.has(key):
            r.fail(key, f"must not be set when type is {filter_type}")
    key, field, read = _FILTER_FIELDS[filter_type]
    config: dict[str, Any] = {field: r.obj(key, read, REQUIRED)}
    return HTTPRouteFilter(type=filter_type, **config)


def _read_header_modifier(r: Reader) -> HeaderModifier:
    modifier = HeaderModifier(
        set=r.objects("set", _read_header, max_items=16),
        add=r.objects("add", _read_header, max_items=16),
        remove=r.string_list("remove", check=http_token, max_items=16),
    )
    # One action per header name; header names are case-insensitive.
    seen: set[str] = set()
    named = [
        *((f"set[{i}].name", h.name) for i, h in enumerate(modifier.set)),
        *((f"add[{i}].name", h.name) for i, h in enumerate(modifier.add)),
        *((f"remove[{i}]", name) for i, name in enumerate(modifier.remove)),
    ]
    for key, name in named:
        if name.lower() in seen:
            r.fail(key, f"header {quote(name)} is already modified by this filter")
        seen.add(name.lower())
    return modifier


def _read_header(r: Reader) -> HTTPHeader:
    header = HTTPHeader(
        name=r.string("name", REQUIRED, check=http_token), value=r.string("value", REQUIRED)
    )
    if not 1 <= len(header.value) <= 4096:
        r.fail("value", "must be 1 to 4096 characters")
    if (problem := header_value(header.value)) is not None:
        r.fail("value", problem)
    return header


def _read_path_modifier(r: Reader) -> PathModifier:
    modifier = PathModifier(
        type=r.enum("type", PathModifierType, REQUIRED),
        replace_full_path=r.string("replaceFullPath"),
        replace_prefix_match=r.string("replacePrefixMatch"),
    )
    full, prefix = PathModifierType.REPLACE_FULL_PATH, PathModifierType.REPLACE_PREFIX_MATCH
    for key, value, wanted in (
        ("replaceFullPath", modifier.replace_full_path, full),
        ("replacePrefixMatch", modifier.replace_prefix_match, prefix),
    ):
        if modifier.type is wanted and value is None:
            r.fail(key, f"required when type is {wanted}")
        if modifier.type is not wanted and value is not None:
            r.fail(key, f"must not be set when type is {modifier.type}")
        if value is not None and len(value) > 1024:
            r.fail(key, "must be no more than 1024 characters")
        # The path goes on the wire as the request target: "" (strip the prefix) or an
        # absolute path without dot segments, encoded slashes or control characters.
        if value and (problem := http_path(value)) is not None:
            r.fail(key, problem)
        if value == "" and modifier.type is full:
            r.fail(key, 'must be an absolute path and start with "/"')
    return modifier


def _read_redirect(r: Reader) -> RequestRedirect:
    return RequestRedirect(
        scheme=r.string("scheme", check=one_of("http", "https")),
        hostname=r.string("hostname", check=precise_hostname),
        path=r.obj("path", _read_path_modifier),
        port=r.integer("port", minimum=MIN_PORT, maximum=MAX_PORT),
        status_code=r.integer("statusCode", 302, choices=(301, 302, 303, 307, 308)),
    )


def _read_url_rewrite(r: Reader) -> URLRewrite:
    return URLRewrite(
        hostname=r.string("hostname", check=precise_hostname),
        path=r.obj("path", _read_path_modifier),
    )


def _read_mirror(r: Reader) -> RequestMirror:
    mirror = RequestMirror(
        backend_ref=r.obj("backendRef", read_backend_object_ref, REQUIRED),
        percent=r.integer("percent", minimum=0, maximum=100),
        fraction=r.obj("fraction", _read_fraction),
    )
    if mirror.percent is not None and mirror.fraction is not None:
        r.fail("fraction", "only one of percent or fraction may be specified")
    return mirror


def _read_fraction(r: Reader) -> Fraction:
    fraction = Fraction(
        numerator=r.integer("numerator", REQUIRED, minimum=0),
        denominator=r.integer("denominator", 100, minimum=1),
    )
    if fraction.numerator > fraction.denominator:
        r.fail("numerator", "must be less than or equal to denominator")
    return fraction


_ORIGIN = re.compile(
    r"^https?://(\*|(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)(:[0-9]{1,5})?$"
)
_CORS_METHODS = (*(m.value for m in HTTPMethod), "*")


def _origin(value: str) -> str | None:
    if value == "*" or _ORIGIN.fullmatch(value):
        return None
    return f'invalid value {quote(value)}: must be "*" or an origin such as https://example.com'


def _read_cors(r: Reader) -> CORS:
    cors = CORS(
        allow_origins=r.string_list("allowOrigins", check=_origin, max_items=64, unique=True),
        allow_credentials=r.boolean("allowCredentials"),
        allow_methods=r.string_list(
            "allowMethods", check=one_of(*_CORS_METHODS), max_items=9, unique=True
        ),
        allow_headers=r.string_list("allowHeaders", check=http_token, max_items=64, unique=True),
        expose_headers=r.string_list("exposeHeaders", check=http_token, max_items=64, unique=True),
        max_age=r.integer("maxAge", 5, minimum=1),
    )
    for key, values in (
        ("allowOrigins", cors.allow_origins),
        ("allowMethods", cors.allow_methods),
        ("allowHeaders", cors.allow_headers),
    ):
        if "*" in values and len(values) > 1:
            r.fail(key, '"*" cannot be combined with other values')
    return cors


_FILTER_FIELDS: dict[FilterType, tuple[str, str, Callable[[Reader], Any]]] = {
    FilterType.REQUEST_HEADER_MODIFIER: (
        "requestHeaderModifier",
        "request_header_modifier",
        _read_header_modifier,
    ),
    FilterType.RESPONSE_HEADER_MODIFIER: (
        "responseHeaderModifier",
        "response_header_modifier",
        _read_header_modifier,
    ),
    FilterType.REQUEST_MIRROR: ("requestMirror", "request_mirror", _read_mirror),
    FilterType.REQUEST_REDIRECT: ("requestRedirect", "request_redirect", _read_redirect),
    FilterType.URL_REWRITE: ("urlRewrite", "url_rewrite", _read_url_rewrite),
    FilterType.CORS: ("cors", "cors", _read_cors),
    FilterType.EXTENSION_REF: ("extensionRef", "extension_ref", read_local_object_ref),
}
"""Filter type -> (manifest key, HTTPRouteFilter field, reader)."""
