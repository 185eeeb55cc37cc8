"""From a selected rule to what the proxy does: forward (with the request rewritten, a
backend chosen and mirrors drawn) or answer locally.

Filters run in the order the rule lists them, then those of the chosen backendRef
(spec: filters on a backendRef run only for requests sent to that backend). The backend
is drawn first, from the weights, so rule and backend filters see the same choice. A
redirect or CORS preflight answers at once; an invalid backend, or a rule without
backends, answers 500 (spec, HTTPRouteRule.backendRefs). Mirrors receive the request as
finally forwarded. An HTTPFault filter (``faults.py``) adds its delay to ``delay``, which
the proxy waits out before it forwards or answers, and its abort answers at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

from gatewayapi.cors import Cors
from gatewayapi.faults import Fault
from gatewayapi.filters import HeaderEdit, Mirror, Redirect, Rewrite, Unsupported
from gatewayapi.headers import Headers
from gatewayapi.retry import RetryPolicy
from gatewayapi.rules import CompiledRule, FilterStep, Step
from gatewayapi.session import Pin, SessionKey
from gatewayapi.types import (
    BackendTarget,
    NoRoute,
    Parent,
    Request,
    Response,
    RuleRef,
    Timeouts,
)

Random = Callable[[], float]
"""A source of uniform draws in [0, 1), such as ``random.random``."""


class Answer(StrEnum):
    """Why the proxy answered a request itself."""

    NO_ROUTE = "NoRoute"
    REDIRECT = "Redirect"
    CORS_PREFLIGHT = "CORSPreflight"
    INVALID_BACKEND = "InvalidBackend"
    NO_BACKEND = "NoBackend"
    UNSUPPORTED_FILTER = "UnsupportedFilter"
    INVALID_PATH = "InvalidPath"
    """The request target is refused by the path policy (``paths.py``): 400."""
    INVALID_REQUEST = "InvalidRequest"
    """The method or authority cannot go into an HTTP/1.1 head: 400."""
    FAULT_ABORT = "FaultAbort"
    """An HTTPFault's abort fired (Envoy's FI flag)."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The rule chosen for a request, and the parent context it was chosen in."""

    parent: Parent
    listener: str | None
    """The Gateway listener's name; None for a Service parent."""
    port: int
    """The listener (or Service) port, which redirects default to."""
    rule: CompiledRule
    match_index: int

    @property
    def ref(self) -> RuleRef:
        return self.rule.ref

    @property
    def timeouts(self) -> Timeouts:
        return self.rule.timeouts

    @property
    def retry(self) -> RetryPolicy | None:
        return self.rule.retry

    def apply(
        self, request: Request, rng: Random, sessions: SessionKey | None = None
    ) -> Forward | Respond:
        return execute(self, request, rng, sessions)


@dataclass(frozen=True, slots=True)
class MirrorRequest:
    target: BackendTarget
    request: Request


@dataclass(frozen=True, slots=True)
class Forward:
    """Send ``request`` to ``backend``; copy it to ``mirrors`` and ignore their answers;
    pass the backend's response through ``finish`` before returning it."""

    selection: Selection
    request: Request
    backend: BackendTarget
    mirrors: tuple[MirrorRequest, ...]
    response_steps: tuple[tuple[FilterStep, Request], ...]
    delay: float = 0.0
    """Seconds an HTTPFault delays the request before it goes (Envoy's DI flag)."""
    backend_index: int = 0
    """Which of the rule's backendRefs ``backend`` is (a session token names it)."""
    pin: Pin | None = None
    """The request's verified session token (``session.py``), which chose ``backend``; its
    endpoint is preferred if still available."""

    @property
    def timeouts(self) -> Timeouts:
        return self.selection.rule.timeouts

    @property
    def retry(self) -> RetryPolicy | None:
        return self.selection.rule.retry

    def finish(self, response: Response) -> Response:
        """Apply ResponseHeaderModifier and CORS to the backend's response."""
        for (kind, config), seen in self.response_steps:
            if kind is Step.RESPONSE_HEADERS and isinstance(config, HeaderEdit):
                response = Response(response.status, config.apply(response.headers), response.body)
            elif kind is Step.CORS and isinstance(config, Cors):
                response = config.decorate(seen, response)
        return response


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer the client with ``response`` without contacting a backend."""

    response: Response
    answer: Answer
    selection: Selection | None = None
    detail: str = ""
    delay: float = 0.0
    """Seconds an HTTPFault delays the answer."""


def error_response(status: int, text: str) -> Response:
    body = (text + "\n").encode()
    headers = Headers(
        (("content-type", "text/plain; charset=utf-8"), ("content-length", str(len(body))))
    )
    return Response(status, headers, body)


def not_found(no_route: NoRoute) -> Respond:
    detail = no_route.detail or str(no_route.reason)
    return Respond(error_response(404, "no route"), Answer.NO_ROUTE, None, detail)


class _Run:
    """The state of one pass through the filter chain."""

    __slots__ = ("selection", "request", "mirrors", "responses", "rng", "delay")

    def __init__(self, selection: Selection, request: Request, rng: Random) -> None:
        self.selection = selection
        self.request = request
        self.mirrors: list[Mirror] = []
        self.responses: list[tuple[FilterStep, Request]] = []
        self.rng = rng
        self.delay = 0.0

    def run(self, steps: tuple[FilterStep, ...]) -> Respond | None:
        selection = self.selection
        prefix = selection.rule.prefix
        for step in steps:
            kind, config = step
            if kind is Step.REQUEST_HEADERS and isinstance(config, HeaderEdit):
                self.request = _with_headers(self.request, config.apply(self.request.headers))
            elif kind is Step.REWRITE and isinstance(config, Rewrite):
                self.request = config.apply(self.request, prefix)
            elif kind is Step.REDIRECT and isinstance(config, Redirect):
                response = config.response(self.request, prefix, selection.port)
                return Respond(response, Answer.REDIRECT, selection)
            elif kind is Step.CORS and isinstance(config, Cors):
                if Cors.is_preflight(self.request):
                    return Respond(config.preflight(self.request), Answer.CORS_PREFLIGHT, selection)
                self.responses.append((step, self.request))
            elif kind is Step.RESPONSE_HEADERS:
                self.responses.append((step, self.request))
            elif kind is Step.MIRROR and isinstance(config, Mirror):
                self.mirrors.append(config)
            elif kind is Step.FAULT and isinstance(config, Fault):
                wait, aborted = config.decide(self.rng)
                self.delay += wait
                if aborted:
                    detail = f"HTTPFault {config.name}"
                    return Respond(config.response(self.request), Answer.FAULT_ABORT,
                                   selection, detail)
            elif kind is Step.UNSUPPORTED and isinstance(config, Unsupported):
                response = error_response(500, "route filter not supported")
                return Respond(response, Answer.UNSUPPORTED_FILTER, selection, config.message)
        return None


def _with_headers(request: Request, headers: Headers) -> Request:
    return Request(request.method, request.scheme, request.authority, request.target, headers)


def execute(
    selection: Selection, request: Request, rng: Random, sessions: SessionKey | None = None
) -> Forward | Respond:
    """Run the selected rule on ``request``. ``rng`` supplies the weighted-backend draw,
    the draws of HTTPFault filters as they run, and one draw per mirror, in that order.
    A session token that ``sessions`` verifies for the rule chooses the backend instead of
    the draw, whatever its weight (GEP-1619: persistence outranks the split)."""
    rule = selection.rule
    pin = _pin(rule, request, sessions) if rule.session is not None else None
    if pin is not None:
        picked: int | None = pin.backend
    else:
        picked = rule.choice.pick(rng()) if rule.backends else None
    run = _Run(selection, request, rng)
    answered = run.run(rule.filters)
    if answered is not None:
        return replace(answered, delay=run.delay) if run.delay else answered
    if picked is None:
        detail = "all backendRefs have weight 0" if rule.backends else "rule has no backendRefs"
        return Respond(error_response(500, "no backend"), Answer.NO_BACKEND, selection, detail)
    backend = rule.backends[picked]
    if backend.target is None:
        response = error_response(500, "invalid backend")
        return Respond(response, Answer.INVALID_BACKEND, selection, backend.problem)
    answered = run.run(backend.filters)
    if answered is not None:
        return replace(answered, delay=run.delay) if run.delay else answered
    final = run.request
    mirrors = tuple(MirrorRequest(m.target, final) for m in run.mirrors if m.fires(rng()))
    return Forward(
        selection, final, backend.target, mirrors, tuple(run.responses), run.delay, picked, pin
    )


def _pin(rule: CompiledRule, request: Request, sessions: SessionKey | None) -> Pin | None:
    """The request's token for ``rule``, if it verifies and names a valid backend."""
    if sessions is None or rule.session is None:
        return None
    pin = sessions.read(rule.session, request.headers)
    if pin is None or pin.backend >= len(rule.backends):
        return None
    return pin if rule.backends[pin.backend].target is not None else None
