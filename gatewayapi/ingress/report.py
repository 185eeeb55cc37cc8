"""What `tulle convert` could not express, per source object.

Every Ingress feature or annotation that the converted objects do not carry exactly gets
one :class:`Finding`. ``REFUSED`` means dropped (the Gateway API objects do not do it at
all); ``APPROXIMATED`` means converted to something that behaves differently in the cases
the reason names. ``NOTE`` is an exact conversion worth knowing about (a documented
mapping such as ImplementationSpecific -> PathPrefix). Only NOTE keeps the conversion exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Severity(StrEnum):
    REFUSED = "refused"
    APPROXIMATED = "approximated"
    NOTE = "note"


@dataclass(frozen=True, slots=True)
class Finding:
    """``subject`` is "Ingress ns/name" (or "IngressClass name"); ``feature`` the annotation
    key or the field path that was not expressed; ``reason`` why, in a sentence."""

    subject: str
    feature: str
    severity: Severity
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "object": self.subject,
            "feature": self.feature,
            "severity": self.severity.value,
            "reason": self.reason,
        }

    def __str__(self) -> str:
        return f"{self.subject}: {self.feature}: {self.severity.value}: {self.reason}"


def is_exact(findings: list[Finding]) -> bool:
    """Whether nothing was refused or approximated (notes only)."""
    return all(f.severity is Severity.NOTE for f in findings)
