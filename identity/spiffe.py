"""SPIFFE IDs, parsed and formatted per the SPIFFE-ID standard (spiffe/standards SPIFFE-ID.md).

A SPIFFE ID is `spiffe://<trust-domain><path>`:
- the scheme is `spiffe`, lowercase, followed by `://`;
- the trust domain is made of lowercase letters, digits, `.`, `-` and `_` only: no uppercase,
  port, userinfo or percent-encoding (the standard forbids them all);
- the path is empty (the trust domain's own ID) or `/`-separated segments of letters, digits,
  `.`, `-` and `_`; no empty, `.` or `..` segment, so no trailing slash;
- no query or fragment; at most 2048 bytes in all.
Parsing is strict (no normalisation): two IDs are equal iff their strings are.

Kubernetes workloads get `spiffe://<td>/ns/<namespace>/sa/<service-account>` (Istio's shape,
which ztunnel and Cilium use too); `workload_id` builds it and `workload_of` reads it back.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

SCHEME_PREFIX = "spiffe://"
MAX_ID_BYTES = 2048
DEFAULT_SERVICE_ACCOUNT = "default"
DEFAULT_TRUST_DOMAIN = "cluster.local"  # Kubernetes' and Istio's default

_TRUST_DOMAIN_CHARS = frozenset(string.ascii_lowercase + string.digits + ".-_")
_SEGMENT_CHARS = frozenset(string.ascii_letters + string.digits + ".-_")


class SpiffeIdError(ValueError):
    """A string that is not a SPIFFE ID; the message names the rule it breaks."""


def _check_trust_domain(td: str) -> None:
    if not td:
        raise SpiffeIdError("the trust domain is empty")
    bad = sorted(set(td) - _TRUST_DOMAIN_CHARS)
    if bad:
        what = {":": "a port", "@": "userinfo", "%": "percent-encoding"}
        for char, name in what.items():
            if char in bad:
                raise SpiffeIdError(f"the trust domain {td!r} has {name} ({char!r})")
        if any(c in string.ascii_uppercase for c in bad):
            raise SpiffeIdError(f"the trust domain {td!r} is not lowercase")
        raise SpiffeIdError(
            f"the trust domain {td!r} has {''.join(bad)!r}: only a-z, 0-9, '.', '-', '_'"
        )


def _check_segment(segment: str, where: str) -> None:
    if segment == "":
        raise SpiffeIdError(f"{where} has an empty segment (no '//' or trailing '/')")
    if segment in (".", ".."):
        raise SpiffeIdError(f"{where} has a {segment!r} segment")
    bad = sorted(set(segment) - _SEGMENT_CHARS)
    if bad:
        raise SpiffeIdError(
            f"{where} segment {segment!r} has {''.join(bad)!r}: "
            "only letters, digits, '.', '-', '_'"
        )


@dataclass(frozen=True)
class SpiffeId:
    """A valid SPIFFE ID. `path` is "" or starts with "/" (e.g. "/ns/default/sa/web")."""

    trust_domain: str
    path: str = ""

    def __post_init__(self) -> None:
        _check_trust_domain(self.trust_domain)
        if self.path:
            if not self.path.startswith("/"):
                raise SpiffeIdError(f"the path {self.path!r} does not start with '/'")
            for segment in self.path[1:].split("/"):
                _check_segment(segment, "the path")
        size = len(str(self).encode())
        if size > MAX_ID_BYTES:
            raise SpiffeIdError(f"the ID is {size} bytes, over the {MAX_ID_BYTES}-byte limit")

    @classmethod
    def parse(cls, text: str) -> SpiffeId:
        """Parse `text`, refusing anything the standard does not allow."""
        size = len(text.encode(errors="surrogatepass"))
        if size > MAX_ID_BYTES:
            raise SpiffeIdError(f"the ID is {size} bytes, over the {MAX_ID_BYTES}-byte limit")
        if not text.startswith(SCHEME_PREFIX):
            if text.lower().startswith(SCHEME_PREFIX):
                raise SpiffeIdError(f"the scheme of {text!r} is not lowercase 'spiffe'")
            raise SpiffeIdError(f"{text!r} does not start with 'spiffe://'")
        rest = text[len(SCHEME_PREFIX):]
        for char, name in (("?", "a query"), ("#", "a fragment")):
            if char in rest:
                raise SpiffeIdError(f"{text!r} has {name} ({char!r})")
        td, slash, path = rest.partition("/")
        return cls(td, slash + path)

    def __str__(self) -> str:
        return f"{SCHEME_PREFIX}{self.trust_domain}{self.path}"

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's segments, in order."""
        return tuple(self.path[1:].split("/")) if self.path else ()


def workload_id(
    trust_domain: str, namespace: str, service_account: str | None = None
) -> SpiffeId:
    """`spiffe://<td>/ns/<namespace>/sa/<sa>`, the service account `default` when unset."""
    sa = service_account or DEFAULT_SERVICE_ACCOUNT
    _check_segment(namespace, "the namespace")
    _check_segment(sa, "the service account")
    return SpiffeId(trust_domain, f"/ns/{namespace}/sa/{sa}")


def workload_of(spiffe_id: SpiffeId) -> tuple[str, str]:
    """(namespace, service account) of an ID of the `/ns/<ns>/sa/<sa>` shape."""
    parts = spiffe_id.segments
    if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
        raise SpiffeIdError(f"{spiffe_id} is not of the shape spiffe://<td>/ns/<ns>/sa/<sa>")
    return parts[1], parts[3]
