"""What `tulle convert --verify` compares for one request, and its verdict (pure).

Each side's answer is reduced to an :class:`Observation`: the status, which backend
answered (the echo server names its Service and port), the path the backend saw, the
redirect ``Location`` and the response headers annotations control (CORS). Two
observations are the same when all of these are. A probe that depends on an
ingress-nginx annotation is UNCHECKED, never SAME: Tulle's Ingress engine implements no
annotation, so a match there would be a match between two sides of which at most one
applied it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from gatewayapi.ingress.corpus import Probe

COMPARED_HEADERS = (
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-allow-credentials",
    "access-control-max-age",
)
"""Response headers the converted annotations control; compared when either side sets one."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One side's answer; ``error`` when there was none (refused connection, timeout, TLS
    handshake refused): shown, compared only as "no answer"."""

    status: int = 0
    backend: str = ""
    """``namespace/service:port`` of the echo backend that answered, "" for none."""
    backend_path: str = ""
    location: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    error: str = ""

    def fields(self) -> dict[str, str]:
        out = {
            # Any failure is "no answer": how a port without the service fails (reset,
            # refused handshake, plain HTTP on 443) depends on the loopback setup.
            "status": str(self.status) if not self.error else "no answer",
            "backend": self.backend or "-",
            "backend path": self.backend_path or "-",
            "location": self.location or "-",
        }
        out.update((name, value) for name, value in self.headers)
        return out


def controlled_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The compared headers among a response's, lower-cased names, sorted."""
    found = {n.lower(): v for n, v in headers if n.lower() in COMPARED_HEADERS}
    return tuple(sorted(found.items()))


class Verdict(StrEnum):
    SAME = "same"
    DIFFERENT = "different"
    UNCHECKED = "unchecked"


@dataclass(frozen=True, slots=True)
class Outcome:
    probe: Probe
    verdict: Verdict
    ingress: Observation
    gateway: Observation
    differences: tuple[tuple[str, str, str], ...] = ()
    """(field, Ingress value, Gateway value) for each field that differs."""
    reason: str = ""
    left: str = "Ingress"
    """What the left column is: the Ingress side, or ingress-nginx's documented answer."""


EXPECTED_LABEL = "nginx (documented)"


def _norm(name: str, value: str) -> str:
    """A Location's scheme and host are case-insensitive (nginx's $host is lower case)."""
    if name != "location" or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.lower()}://{host.lower()}{slash}{path}"


def compare(probe: Probe, ingress: Observation, gateway: Observation) -> Outcome:
    if probe.expect:
        # The Ingress side cannot apply the annotation: hold the Gateway to what
        # ingress-nginx documents instead (the left column is that expectation).
        want = dict(probe.expect)
        got = gateway.fields()
        diff = tuple(
            (name, value, got.get(name, "-"))
            for name, value in want.items()
            if _norm(name, value) != _norm(name, got.get(name, "-"))
        )
        why = "checked against ingress-nginx's documented answer for " + ", ".join(
            probe.annotations
        )
        verdict = Verdict.DIFFERENT if diff else Verdict.SAME
        return Outcome(probe, verdict, ingress, gateway, diff, why, EXPECTED_LABEL)
    if probe.annotations:
        why = (
            "depends on " + ", ".join(probe.annotations)
            + ": Tulle's Ingress engine does not implement ingress-nginx annotations"
        )
        return Outcome(probe, Verdict.UNCHECKED, ingress, gateway, _diff(ingress, gateway), why)
    diff = _diff(ingress, gateway)
    verdict = Verdict.DIFFERENT if diff else Verdict.SAME
    return Outcome(probe, verdict, ingress, gateway, diff)


def unchecked(probe: Probe, reason: str) -> Outcome:
    """A probe that was not replayed (``reason`` says why)."""
    none = Observation(error="not replayed")
    return Outcome(probe, Verdict.UNCHECKED, none, none, (), reason)


def _diff(a: Observation, b: Observation) -> tuple[tuple[str, str, str], ...]:
    left, right = a.fields(), b.fields()
    return tuple(
        (name, left.get(name, "-"), right.get(name, "-"))
        for name in dict.fromkeys([*left, *right])
        if left.get(name, "-") != right.get(name, "-")
    )


def summary(outcomes: Iterable[Outcome]) -> Mapping[Verdict, int]:
    counts = dict.fromkeys(Verdict, 0)
    for outcome in outcomes:
        counts[outcome.verdict] += 1
    return counts


def table(outcomes: Iterable[Outcome]) -> list[str]:
    """Lines of the differing responses: the request, then each differing field as
    ``field: Ingress value -> Gateway value``."""
    lines = []
    for outcome in outcomes:
        if outcome.verdict is not Verdict.DIFFERENT:
            continue
        lines.append(f"DIFFERENT {outcome.probe}  ({outcome.probe.why})")
        for name, left, right in outcome.differences:
            lines.append(f"    {name}: {outcome.left} {left}  |  Gateway {right}")
    return lines
