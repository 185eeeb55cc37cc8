"""The upstream ConformanceReport (gateway.networking.k8s.io/v1, conformance/apis/v1) built
from case results (pure).

The claim is an input: the features the implementation says it supports (the set the project
ships, `gatewayapi/supported_features.py`, which the GatewayClass publishes), as upstream's
`--supported-features`. As upstream's suite (v1.6.1 conformance/utils/suite/reports.go) does:
a case counts in every profile that has all its features, core or extended (a Gateway-only
case counts in all five Gateway profiles), and is extended there when one of them is not
core in it; an extended result is a failure with a failed case, partial with a skipped one,
else a success; a profile where no extended case counted has no extended section (so no
supportedFeatures). Core cases always count; an extended case counts only when every one of
its features is core or claimed (upstream does not run the others). One rule is stricter
than upstream: a core result with no case passed is partial, never a success. A claimed feature with
a failing or skipped case makes the run fail (`failed_claims`). `passing_features` is what the
run could claim (`python -m conformance --write` makes it the shipped claim)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.case import CaseResult
from conformance.features import PROFILES, Profile, profiles_of

GATEWAY_API_VERSION = "v1.6.1"


@dataclass(frozen=True)
class Implementation:
    organization: str = "Tulle"
    project: str = "tulle"
    url: str = "(unpublished: see README.md)"
    version: str = "0.1.0"
    contact: tuple[str, ...] = ("the Tulle maintainers (README.md)",)


# What every case of a kind of profile stands on: one failing TCPRoute case must not take
# `Gateway` away from the HTTP profile whose cases prove it.
_BASE = frozenset({"Gateway", "Mesh"})


def implicated(r: CaseResult) -> tuple[str, ...]:
    """The features a case's failure counts against: an extended case's extended features,
    a core case's features but the Gateway/Mesh base (all of them when that is all it names)."""
    if r.extended:
        core = PROFILES[r.profile].core
        return tuple(f for f in r.features if f not in core)
    return tuple(f for f in r.features if f not in _BASE) or r.features


def passing_features(results: Iterable[CaseResult]) -> frozenset[str]:
    """Features that at least one case naming them passed and no failure implicates. A
    skipped case (its kind not served) neither counts for nor against a feature:
    GATEWAY-TCP's skipped cases name `Gateway` too, which GATEWAY-HTTP's cases prove."""
    passed: set[str] = set()
    failed: set[str] = set()
    for r in results:
        if r.outcome == "passed":
            passed.update(r.features)
        elif r.outcome == "failed":
            failed.update(implicated(r))
    return frozenset(passed - failed)


def failed_claims(results: Sequence[CaseResult], claimed: Iterable[str]) -> dict[str, list[str]]:
    """Each claimed feature that a case naming it failed, with those cases, and each claimed
    feature that no case passed (a claim without a passing test is not a claim)."""
    claim = set(claimed)
    out: dict[str, list[str]] = {}
    for r in results:
        if r.outcome == "failed":
            for f in implicated(r):
                if f in claim:
                    out.setdefault(f, []).append(f"{r.name} failed")
    proven = {f for r in results if r.outcome == "passed" for f in r.features}
    for f in sorted(claim - proven):
        out.setdefault(f, []).append("no case naming it passed")
    return out


def _status(results: Sequence[CaseResult], core: bool) -> dict[str, Any]:
    passed = sum(r.outcome == "passed" for r in results)
    failed = [r.name for r in results if r.outcome == "failed"]
    skipped = [r.name for r in results if r.outcome == "skipped"]
    if failed:
        result = "failure"
    elif skipped or (core and not passed):
        result = "partial"  # upstream: no failures, but not everything ran
    else:
        result = "success"
    status: dict[str, Any] = {
        "result": result,
        "statistics": {"Passed": passed, "Failed": len(failed), "Skipped": len(skipped)},
    }
    if skipped:
        status["skippedTests"] = sorted(skipped)
    if failed:
        status["failedTests"] = sorted(failed)
    return status


def counts_in(profile: Profile, r: CaseResult) -> bool:
    return any(p.name == profile.name for p in profiles_of(r.features))


def extended_in(profile: Profile, r: CaseResult) -> bool:
    """Upstream's isTestExtended: any of the case's features is not core in this profile."""
    return any(f not in profile.core for f in r.features)


def profile_report(profile: Profile, results: Sequence[CaseResult], claimed: frozenset[str]
                   ) -> dict[str, Any]:
    mine = [r for r in results if counts_in(profile, r)]
    core = [r for r in mine if not extended_in(profile, r)]
    extended = [r for r in mine if extended_in(profile, r)
                and all(f in profile.core or f in claimed for f in r.features)]
    supported = sorted(f for f in profile.extended if f in claimed)
    unsupported = sorted(f for f in profile.extended if f not in claimed)
    core_status = _status(core, core=True)
    out: dict[str, Any] = {"name": profile.name, "summary": "", "core": core_status}
    ext_summary = ""
    if extended:
        ext: dict[str, Any] = {**_status(extended, core=False)}
        if supported:
            ext["supportedFeatures"] = supported
        if unsupported:
            ext["unsupportedFeatures"] = unsupported
        out["extended"] = ext
        ext_summary = (f" Extended tests {ext['result']} with {ext['statistics']['Passed']} "
                       f"test(s) passed, {len(supported)} of {len(profile.extended)} "
                       "extended features claimed.")
    c = core_status["statistics"]
    if not c["Passed"] and not c["Failed"]:
        out["summary"] = ("No core case ran (skipped: the kinds this profile needs are not "
                          "served by this lab yet, or no case exists).")
    else:
        out["summary"] = (f"Core tests {core_status['result']} with {c['Passed']} test(s) "
                          f"passed, {c['Failed']} failed, {c['Skipped']} skipped."
                          + (ext_summary or " No extended case counts in this profile."))
    return out


def build_report(results: Sequence[CaseResult], claimed: Iterable[str], date: str,
                 implementation: Implementation | None = None, channel: str = "standard",
                 mode: str = "default", profiles: Sequence[str] | None = None
                 ) -> dict[str, Any]:
    """The report dict, in the field order of the upstream type; ``date`` RFC 3339."""
    impl = implementation or Implementation()
    claim = frozenset(claimed)
    names = list(profiles) if profiles is not None else list(PROFILES)
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise ValueError(f"unknown conformance profile(s) {unknown}; known: {list(PROFILES)}")
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "ConformanceReport",
        "implementation": {
            "organization": impl.organization,
            "project": impl.project,
            "url": impl.url,
            "version": impl.version,
            "contact": list(impl.contact),
        },
        "date": date,
        "gatewayAPIVersion": GATEWAY_API_VERSION,
        "gatewayAPIChannel": channel,
        "mode": mode,
        "profiles": [profile_report(PROFILES[n], results, claim) for n in names],
    }


def claimed_in_report(report: dict[str, Any]) -> frozenset[str]:
    """Every feature a report claims: its profiles' core features where core succeeded, and
    their supportedFeatures. What the GatewayClass must publish."""
    out: set[str] = set()
    for p in report["profiles"]:
        if p["core"]["result"] == "success":
            out.update(PROFILES[p["name"]].core)
        out.update(p.get("extended", {}).get("supportedFeatures", []))
    return frozenset(out)
