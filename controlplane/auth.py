"""Who is calling the identity service: the seam where a request's credentials become a
`Caller` (its node and its ServiceAccount).

In a cluster the agent sends its ServiceAccount token (`authorization: Bearer <token>`); the
real authenticator (a later slice) sends it to the API server in a TokenReview and takes the
ServiceAccount from the answer and the node from the token's binding: a projected token of a
pod carries the node its pod runs on (`authentication.kubernetes.io/node-name` in the review's
extra), so an agent cannot claim another node. Until then `StaticTokens` maps known tokens to
callers, for tests and the lab.

An authenticator raises `Unauthenticated` for missing, malformed or unknown credentials; it
never decides what the caller may have (that is `controlplane.issuer`).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# gRPC metadata as `ServicerContext.invocation_metadata()` returns it: (key, value) pairs,
# keys lowercase, values bytes for `-bin` keys.
Metadata = Sequence[tuple[str, str | bytes]]

AUTHORIZATION = "authorization"
BEARER = "Bearer "


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the node its token is bound to and its ServiceAccount as
    `<namespace>/<name>`."""

    node: str
    service_account: str


class Unauthenticated(Exception):
    """No, malformed or unknown credentials; the message says which (never the token)."""


class Authenticator(Protocol):
    def __call__(self, metadata: Metadata) -> Caller: ...


def bearer_token(metadata: Metadata) -> str:
    """The token of the one `authorization: Bearer <token>` entry; Unauthenticated otherwise."""
    values = [v for k, v in metadata if k.lower() == AUTHORIZATION]
    if not values:
        raise Unauthenticated("no authorization metadata: send 'authorization: Bearer <token>'")
    if len(values) > 1:
        raise Unauthenticated(f"{len(values)} authorization entries; send exactly one")
    [value] = values
    if not isinstance(value, str) or not value.startswith(BEARER):
        raise Unauthenticated("the authorization metadata is not 'Bearer <token>'")
    token = value[len(BEARER):].strip()
    if not token:
        raise Unauthenticated("the bearer token is empty")
    return token


@dataclass(frozen=True)
class StaticTokens:
    """An authenticator from a fixed table token -> Caller (tests, the lab until TokenReview)."""

    callers: Mapping[str, Caller]

    def __call__(self, metadata: Metadata) -> Caller:
        token = bearer_token(metadata).encode()
        found = None
        for known, caller in self.callers.items():
            # Compare every entry in constant time: the table's order leaks nothing.
            if hmac.compare_digest(known.encode(), token):
                found = caller
        if found is None:
            raise Unauthenticated("the bearer token is not known")
        return found
