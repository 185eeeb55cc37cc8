"""Pure request -> response logic of the lab echo server (no sockets, no clocks).

Behaviour follows the Gateway API conformance backend (kubernetes-sigs/gateway-api
``conformance/echo-basic``) so that conformance-style checks written against it work
unchanged against lab pods:

* ``/`` (anything not listed below): JSON echo of the request, ``?delay=<Go duration>``
  and ``X-Echo-Set-Header: K:V,K2:V2`` honoured.
* ``/status/NNN``: empty response with status NNN (400 when NNN is not 100..599).
* ``/retry/...?uuid=U&succeedAfter=N[&responseCode=C][&delayRetry=D][&failWith=F]``: the
  first N requests carrying uuid U answer C (default 503), later ones answer the JSON echo.
  That is the reading the upstream HTTPRouteRetry conformance test relies on
  ("succeeds after 2 retries" uses ``succeedAfter=2``, so attempt 3 is the first 200).
  ``failWith`` fails those N without a response instead (Tulle's, for the connection-error
  retries of GEP-1731): ``reset`` (TCP RST), ``close`` (FIN, no byte sent) or ``garbage``
  (a line that is no status line, then close).
* ``/health``: ``OK``.

Only ``RetryLedger`` holds state; it is passed in through the context so ``respond``
stays deterministic for a given ledger and is testable without a server.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qs, urlsplit

MAX_DELAY_S = 60.0
DEFAULT_RETRY_CODE = 503
# Enough for every parallel conformance probe; evicting the oldest uuid only means a
# very old, abandoned sequence starts again from its first failure.
DEFAULT_RETRY_CAPACITY = 4096
MAX_SUCCEED_AFTER = 1000
FAULTS = ("reset", "close", "garbage")
"""``failWith`` values: how a failing ``/retry`` attempt breaks its connection."""

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EchoRequest:
    """What the echo logic needs to know about one parsed HTTP request."""

    method: str
    target: str  # the raw request-target, query included (Go's RequestURI)
    headers: Headers = ()  # (name, value) in arrival order, names as received
    http_version: str = "1.1"
    remote: str = ""  # "ip:port" or "[v6]:port", Go's RemoteAddr
    local_port: int = 0

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [v for k, v in self.headers if k.lower() == wanted]


class RetryLedger:
    """Bounded per-uuid attempt counter (LRU), the only mutable piece of the echo logic."""

    def __init__(self, capacity: int = DEFAULT_RETRY_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("retry ledger capacity must be at least 1")
        self._capacity = capacity
        self._counts: OrderedDict[str, int] = OrderedDict()

    def record(self, uuid: str) -> int:
        """Count one more attempt for ``uuid`` and return its 1-based attempt number."""
        count = self._counts.pop(uuid, 0) + 1
        self._counts[uuid] = count
        while len(self._counts) > self._capacity:
            self._counts.popitem(last=False)
        return count

    def __len__(self) -> int:
        return len(self._counts)


@dataclass(frozen=True)
class EchoContext:
    """Where the server runs; echoed back so tests can tell which pod answered."""

    namespace: str = ""
    pod: str = ""
    pod_ip: str = ""
    ingress: str = ""
    service: str = ""
    retries: RetryLedger = field(default_factory=RetryLedger, compare=False)
    max_delay_s: float = MAX_DELAY_S


@dataclass(frozen=True)
class EchoResponse:
    """The answer, with any delay expressed as data for the I/O shell to apply."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    delay_s: float = 0.0
    informational: tuple[int, ...] = ()  # 1xx heads sent before the final response
    fault: str = ""  # one of FAULTS: no response, the connection fails instead


# --- Go compatibility helpers -------------------------------------------------------

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def canonical_header_key(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-foo-bar`` -> ``X-Foo-Bar``.

    Like Go, a name holding any non-token character is returned unchanged.
    """
    if not name or any(c not in _TOKEN_CHARS for c in name):
        return name
    out = []
    upper = True
    for c in name:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,  # micro sign
    "\u03bcs": 1e-6,  # Greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)([a-z\u00b5\u03bc]+)")


def parse_go_duration(text: str) -> float:
    """Parse a Go ``time.ParseDuration`` string (``1h2m3.5s``, ``500ms``) into seconds."""
    s = text
    sign = 1.0
    if s and s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f"time: invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(f"time: invalid duration {text!r}")
        unit = _DURATION_UNITS.get(m.group(2))
        if unit is None:
            raise ValueError(f"time: unknown unit {m.group(2)!r} in duration {text!r}")
        total += float(m.group(1)) * unit
        pos = m.end()
    return sign * total


def _go_json(value: object) -> bytes:
    # Go's json.MarshalIndent(v, "", " "): one-space indent, raw UTF-8, HTML-escaped.
    text = json.dumps(value, indent=1, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


# --- responses ----------------------------------------------------------------------

_JSON_HEADERS: Headers = (
    ("Content-Type", "application/json"),
    ("X-Content-Type-Options", "nosniff"),
)


def error_response(status: int, message: str) -> EchoResponse:
    """A JSON ``{"message": ...}`` error, the shape echo-basic uses for its errors."""
    return EchoResponse(status, _JSON_HEADERS, json.dumps({"message": message}).encode())


def log_line(request: EchoRequest) -> str:
    """The access line echo-basic prints; log scrapers in conformance tooling match it."""
    return f"Echoing back request made to {request.target} to client ({request.remote})"


def _query(request: EchoRequest) -> dict[str, list[str]]:
    # Origin-form ("/p?q") by hand: urlsplit reads "//[" as a bad IPv6 authority and raises.
    if request.target.startswith("/"):
        query = request.target.partition("?")[2].partition("#")[0]
    else:
        query = _split(request.target).query
    return parse_qs(query, keep_blank_values=True)


def _split(target: str) -> SplitResult:
    """urlsplit for absolute-form targets; a malformed authority is an empty URL, not a 500."""
    try:
        return urlsplit(target)
    except ValueError:
        return SplitResult("", "", "", "", "")


def _first(query: dict[str, list[str]], key: str) -> str:
    values = query.get(key)
    return values[0] if values else ""


def _route_path(target: str) -> str:
    # echo-basic collapses "//" before routing (its preserveSlashes wrapper), so do we.
    if target.startswith("/"):
        path = target.split("?", 1)[0]
    else:  # absolute-form ("http://host/p") or "*"
        path = _split(target).path or "/"
    return path.replace("//", "/")


def _delay(query: dict[str, list[str]], key: str, ctx: EchoContext) -> float | EchoResponse:
    raw = _first(query, key)
    if not raw:
        return 0.0
    try:
        seconds = parse_go_duration(raw)
    except ValueError as exc:
        return error_response(400, f"invalid {key} {raw!r}: {exc}")
    if seconds > ctx.max_delay_s:
        return error_response(400, f"{key} {raw!r} exceeds the maximum of {ctx.max_delay_s:g}s")
    return max(seconds, 0.0)  # Go sleeps zero time for a negative duration


def _echo_set_headers(request: EchoRequest) -> list[tuple[str, str]]:
    # Names keep their casing and repeats are joined with ",", as echo-basic does.
    merged: dict[str, str] = {}
    for header in request.header_values("X-Echo-Set-Header"):
        for item in header.split(","):
            name, _, value = item.strip().partition(":")
            name, value = name.strip(), value.strip()
            if not name or any(c not in _TOKEN_CHARS for c in name):
                continue  # Go's server silently skips invalid field names on the wire
            merged[name] = f"{merged[name]},{value}" if name in merged else value
    return list(merged.items())


def echo_body(request: EchoRequest, ctx: EchoContext) -> dict[str, object]:
    """The JSON document echo-basic returns (its ``RequestAssertions``)."""
    headers: dict[str, list[str]] = {}
    host = ""
    for name, value in request.headers:
        key = canonical_header_key(name)
        if key == "Host":
            # Go moves Host out of the header map into r.Host ...
            host = host or value
            continue
        if key == "Transfer-Encoding":
            # ... and consumes Transfer-Encoding while reading the body.
            continue
        headers.setdefault(key, []).append(value)
    if not request.target.startswith("/"):
        # For an absolute-form target Go takes r.Host from the URL, not the header.
        host = _split(request.target).netloc or host
    return {
        "path": request.target,
        "host": host,
        "method": request.method,
        "proto": f"HTTP/{request.http_version}",
        "headers": dict(sorted(headers.items())),
        "httpPort": str(request.local_port) if request.local_port else "",
        "namespace": ctx.namespace,
        "ingress": ctx.ingress,
        "service": ctx.service,
        "pod": ctx.pod,
    }


def _echo(request: EchoRequest, ctx: EchoContext, delay_s: float) -> EchoResponse:
    extra = [(k, v) for k, v in _echo_set_headers(request) if k.lower() not in _FIXED]
    return EchoResponse(200, (*extra, *_JSON_HEADERS), _go_json(echo_body(request, ctx)), delay_s)


_FIXED = frozenset(k.lower() for k, _ in _JSON_HEADERS)
_STATUS_PATH = re.compile(r"/status/(\d{3})")


def _status(request: EchoRequest) -> EchoResponse:
    # Like echo-basic, the code comes from the whole request-URI, so a query string
    # or trailing garbage makes it a 400 rather than a silently different status.
    m = _STATUS_PATH.fullmatch(request.target.replace("//", "/"))
    if m is None:
        return error_response(400, f"expected /status/NNN, got {request.target!r}")
    code = int(m.group(1))
    if not 100 <= code <= 599:
        return error_response(400, f"status code {code} is outside 100..599")
    if code == 101:
        # Switching Protocols without an Upgrade handshake would wedge the connection.
        return error_response(400, "status code 101 needs a protocol upgrade")
    if code < 200:
        # Go sends a 1xx from WriteHeader as an interim head, then a final 200.
        return EchoResponse(200, informational=(code,))
    return EchoResponse(code)


def _int_param(query: dict[str, list[str]], key: str, default: int | None) -> int | str:
    raw = _first(query, key)
    if not raw:
        return default if default is not None else f"missing query parameter {key!r}"
    try:
        return int(raw, 10)
    except ValueError:
        return f"query parameter {key}={raw!r} is not an integer"


def _retry(request: EchoRequest, ctx: EchoContext, query: dict[str, list[str]]) -> EchoResponse:
    uuid = _first(query, "uuid")
    if not uuid:
        return error_response(400, "missing query parameter 'uuid'")
    succeed_after = _int_param(query, "succeedAfter", None)
    code = _int_param(query, "responseCode", DEFAULT_RETRY_CODE)
    for value in (succeed_after, code):
        if isinstance(value, str):
            return error_response(400, value)
    assert isinstance(succeed_after, int) and isinstance(code, int)
    if not 0 <= succeed_after <= MAX_SUCCEED_AFTER:
        return error_response(400, f"succeedAfter must be within 0..{MAX_SUCCEED_AFTER}")
    if not 200 <= code <= 599:
        return error_response(400, f"responseCode {code} is outside 200..599")
    fault = _first(query, "failWith")
    if fault and fault not in FAULTS:
        return error_response(400, f"failWith={fault!r} is not one of {', '.join(FAULTS)}")
    delay = _delay(query, "delay", ctx)
    if isinstance(delay, EchoResponse):
        return delay
    attempt = ctx.retries.record(uuid)
    if attempt <= succeed_after:
        retry_delay = _delay(query, "delayRetry", ctx)
        if isinstance(retry_delay, EchoResponse):
            return retry_delay
        if fault:
            return EchoResponse(code, delay_s=delay + retry_delay, fault=fault)
        body = f"retry simulation: attempt {attempt} of {succeed_after} failing with {code}"
        return EchoResponse(
            code,
            _JSON_HEADERS,
            json.dumps({"message": body}).encode(),
            delay + retry_delay,
        )
    return _echo(request, ctx, delay)


def respond(request: EchoRequest, ctx: EchoContext) -> EchoResponse:
    """Compute the echo server's answer to one request."""
    path = _route_path(request.target)
    if path == "/health":
        return EchoResponse(200, (("Content-Type", "text/plain; charset=utf-8"),), b"OK")
    if path.startswith("/status/"):
        return _status(request)
    query = _query(request)
    if path == "/retry" or path.startswith("/retry/"):
        return _retry(request, ctx, query)
    delay = _delay(query, "delay", ctx)
    if isinstance(delay, EchoResponse):
        return delay
    return _echo(request, ctx, delay)


def format_remote(peer: Sequence[object] | None) -> str:
    """Render a socket peer address the way Go's ``RemoteAddr`` does."""
    if not peer or len(peer) < 2:
        return ""
    host, port = str(peer[0]), peer[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_ports(values: Iterable[str]) -> list[int]:
    """Parse port numbers from CLI/env text (``"8080"``, ``"8080,9090"``), de-duplicated."""
    ports: list[int] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            port = int(item)
            if not 0 <= port <= 65535:
                raise ValueError(f"port {port} is outside 0..65535")
            if port == 0 or port not in ports:  # each 0 asks for its own free port
                ports.append(port)
    return ports
