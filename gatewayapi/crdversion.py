"""Which Gateway API the cluster has: the installed CRDs' ``gateway.networking.k8s.io/
bundle-version`` and ``gateway.networking.k8s.io/channel`` annotations against the range
Tulle supports (issue 13), as upstream's GatewayClass condition ``SupportedVersion`` reads:
True with reason ``SupportedVersion``, else False with reason ``UnsupportedVersion`` (a CRD
without the annotation, a version Tulle does not know, or CRDs of mixed versions).

Tulle then serves on a best-effort basis: Accepted stays as it was (the spec allows either);
the condition and a log line say what to install. Pure: callers hand in the CRD objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "gateway.networking.k8s.io"
BUNDLE_VERSION = f"{GROUP}/bundle-version"
CHANNEL = f"{GROUP}/channel"
SUPPORTED_MINOR = (1, 6)  # v1.6.x: gatewayapi/SUPPORT.md, deploy/README.md
INSTALLED_VERSION = "v1.6.0"  # what deploy/crds/gateway-api (the lab's) is shaped after
CHANNELS = frozenset({"standard", "experimental"})
CONDITION = "SupportedVersion"  # GatewayClassConditionStatusSupportedVersion
SUPPORTED = "SupportedVersion"  # GatewayClassReasonSupportedVersion
UNSUPPORTED = "UnsupportedVersion"  # GatewayClassReasonUnsupportedVersion
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$")  # v1.6.0, v1.6.0-rc.1


@dataclass(frozen=True)
class VersionCheck:
    supported: bool
    message: str  # says what was found and, when unsupported, what to install

    @property
    def reason(self) -> str:
        return SUPPORTED if self.supported else UNSUPPORTED


def wanted() -> str:
    return f"v{SUPPORTED_MINOR[0]}.{SUPPORTED_MINOR[1]}.x"


def _problem(name: str, annotations: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(version, None) for a supported CRD, else (version or None, why not)."""
    version = annotations.get(BUNDLE_VERSION)
    if not isinstance(version, str) or not version:
        return None, f"CRD {name} has no {BUNDLE_VERSION} annotation"
    found = _VERSION.match(version)
    if not found:
        return version, f"CRD {name} has bundle version {version!r}, not vMAJOR.MINOR.PATCH"
    minor = (int(found.group(1)), int(found.group(2)))
    if minor != SUPPORTED_MINOR:
        older = "older" if minor < SUPPORTED_MINOR else "newer"
        return version, f"CRD {name} is bundle version {version}, {older} than Tulle supports"
    channel = annotations.get(CHANNEL)
    if channel not in CHANNELS:
        return version, f"CRD {name} has channel {channel!r}, not standard or experimental"
    return version, None


def check_crds(crds: Iterable[Mapping[str, Any]]) -> VersionCheck:
    """The verdict on the Gateway API CRDs among ``crds`` (CustomResourceDefinition dicts;
    other groups' are ignored)."""
    versions: dict[str, str | None] = {}
    problems: list[str] = []
    for crd in crds:
        spec = crd.get("spec") or {}
        if spec.get("group") != GROUP:
            continue
        meta = crd.get("metadata") or {}
        name = str(meta.get("name") or "?")
        version, why = _problem(name, meta.get("annotations") or {})
        versions[name] = version
        if why:
            problems.append(why)
    if not versions:
        return VersionCheck(False, f"no Gateway API CRDs installed; install {wanted()}")
    if problems:
        return VersionCheck(
            False, f"{'; '.join(sorted(problems))}: install Gateway API {wanted()}"
        )
    found = sorted({v for v in versions.values() if v})
    if len(found) > 1:
        return VersionCheck(
            False, f"Gateway API CRDs of mixed versions {', '.join(found)}: install one {wanted()}"
        )
    return VersionCheck(True, f"Gateway API CRD bundle version {found[0]} is supported")
