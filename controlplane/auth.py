"""Who is calling the identity service: the seam where a request's credentials become a
`Caller` (its node and its ServiceAccount).

The agent sends its ServiceAccount token (`authorization: Bearer <token>`).
`TokenReviewAuthenticator` sends it to the API server in a TokenReview and takes the
ServiceAccount from the answer's username and the node from the token's binding: a token
bound to a Pod (a DaemonSet pod's projected token) or to a Node (the lab's per-node agent
token) carries its node (`authentication.kubernetes.io/node-name` in the review's extra), so
an agent cannot claim another node. A token without that binding is refused: a stolen
unbound token would otherwise speak for any node. Reviews are cached briefly (bounded), so
a renewal storm costs the API server one review per token per TTL. `StaticTokens` maps
known tokens to callers, for tests.

An authenticator raises `Unauthenticated` for missing, malformed or unknown credentials; it
never decides what the caller may have (that is `controlplane.issuer`).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# gRPC metadata as `ServicerContext.invocation_metadata()` returns it: (key, value) pairs,
# keys lowercase, values bytes for `-bin` keys.
Metadata = Sequence[tuple[str, str | bytes]]

AUTHORIZATION = "authorization"
BEARER = "Bearer "
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
SA_PREFIX = "system:serviceaccount:"
REVIEW_TTL = 10.0  # seconds a review is reused: a deleted Node's token dies within it
REVIEW_CACHE_ENTRIES = 4096


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
    token = value[len(BEARER) :].strip()
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


class ReviewFailed(Exception):
    """The TokenReview itself could not be made (API server away, RBAC): not the caller's
    fault, so never cached."""


# Sends a TokenReview for a token; returns its `status` (authenticated, user, error...).
Review = Callable[[str], Mapping[str, Any]]


def caller_of(status: Mapping[str, Any]) -> Caller:
    """The Caller a TokenReview status names; Unauthenticated (with why) if it names none:
    not authenticated, not a ServiceAccount, or a token bound to no node."""
    if status.get("authenticated") is not True:
        error = status.get("error") or "the API server did not authenticate it"
        raise Unauthenticated(f"the token review refused the token: {error}")
    user = status.get("user") or {}
    username = str(user.get("username") or "")
    namespace, _, name = username.removeprefix(SA_PREFIX).partition(":")
    if not username.startswith(SA_PREFIX) or not namespace or not name or ":" in name:
        raise Unauthenticated(f"{username!r} is not a ServiceAccount")
    nodes = (user.get("extra") or {}).get(NODE_NAME_EXTRA) or []
    if len(nodes) != 1 or not isinstance(nodes[0], str) or not nodes[0]:
        raise Unauthenticated(
            f"the token of {namespace}/{name} is bound to no node ({NODE_NAME_EXTRA} not in "
            "its review): send a token bound to the agent's Pod or Node"
        )
    return Caller(nodes[0], f"{namespace}/{name}")


@dataclass
class TokenReviewAuthenticator:
    """An authenticator asking the API server (`review`) who a bearer token is; each answer,
    Caller or refusal, is kept `ttl` seconds (at most `max_entries`, least recently used
    out), keyed by the token's SHA-256 (the token itself is not held)."""

    review: Review
    ttl: float = REVIEW_TTL
    max_entries: int = REVIEW_CACHE_ENTRIES
    clock: Callable[[], float] = time.monotonic
    _cache: OrderedDict[bytes, tuple[float, Caller | str]] = field(
        default_factory=OrderedDict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, metadata: Metadata) -> Caller:
        token = bearer_token(metadata)
        key = hashlib.sha256(token.encode()).digest()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                return _answer(hit[1])
        try:
            status = self.review(token)
        except ReviewFailed as e:
            raise Unauthenticated(f"the token could not be reviewed now: {e}") from None
        try:
            found: Caller | str = caller_of(status)
        except Unauthenticated as e:
            found = str(e)
        with self._lock:
            self._cache[key] = (now + self.ttl, found)
            self._cache.move_to_end(key)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return _answer(found)

    def __len__(self) -> int:
        return len(self._cache)


def _answer(found: Caller | str) -> Caller:
    if isinstance(found, str):
        raise Unauthenticated(found)
    return found
