"""The case API: what one conformance case is, and what running it gave (pure data).

A case names its profile and the upstream features it exercises (core ones included, as the
upstream tests do), the manifests it applies, the API kinds it needs (a case whose kind the
lab does not serve is skipped, not failed) and a check that asserts the documented
behaviour against a `Lab`, raising `CaseFailed` with what it saw."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from conformance.features import IN_NO_PROFILE, PROFILES

if TYPE_CHECKING:
    from conformance.lab import Lab

Outcome = Literal["passed", "failed", "skipped"]


class CaseFailed(AssertionError):
    """The behaviour a case asserts was not seen; the message says what was."""


@dataclass(frozen=True)
class Case:
    name: str  # the upstream test's name where one exists (e.g. HTTPRouteQueryParamMatching)
    profile: str
    features: tuple[str, ...]
    manifests: tuple[dict[str, Any], ...]
    check: Callable[[Lab], None]
    kinds: tuple[str, ...] = ("HTTPRoute",)  # API kinds that must be served to run it
    doc: str = ""

    def __post_init__(self) -> None:
        profile = PROFILES.get(self.profile)
        if profile is None:
            raise ValueError(f"case {self.name}: unknown profile {self.profile!r}")
        outside = [f for f in self.features if not profile.has(f) and f not in IN_NO_PROFILE]
        if outside or not self.features:
            raise ValueError(
                f"case {self.name}: features {outside or '(none)'} are not in {self.profile}"
            )

    @property
    def extended(self) -> bool:
        """Upstream counts a test as extended when it names any extended feature."""
        return any(f not in PROFILES[self.profile].core for f in self.features)


@dataclass(frozen=True)
class CaseResult:
    name: str
    profile: str
    features: tuple[str, ...]
    extended: bool
    outcome: Outcome
    detail: str = ""
    seconds: float = field(default=0.0, compare=False)

    @classmethod
    def of(cls, case: Case, outcome: Outcome, detail: str = "", seconds: float = 0.0
           ) -> CaseResult:
        return cls(case.name, case.profile, case.features, case.extended, outcome, detail,
                   seconds)
