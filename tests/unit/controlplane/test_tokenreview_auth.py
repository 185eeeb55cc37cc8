"""TokenReviewAuthenticator: the caller from a review (ServiceAccount, node from the binding),
refusals with reasons (unbound, not a ServiceAccount, not authenticated, review failed), the
bounded TTL cache."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.auth import (
    NODE_NAME_EXTRA,
    Caller,
    ReviewFailed,
    TokenReviewAuthenticator,
    Unauthenticated,
)

AGENT = "system:serviceaccount:tulle-system:tulle-agent"


def _status(username: str = AGENT, node: list[str] | None = None, ok: bool = True) -> dict:
    if not ok:
        return {"authenticated": False, "user": {}, "error": "Node n1 ... has been deleted"}
    extra = {NODE_NAME_EXTRA: node} if node is not None else {}
    return {"authenticated": True, "user": {"username": username, "extra": extra}}


class Reviews:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    def __call__(self, token: str) -> Any:
        self.calls.append(token)
        answer = self.answers[token]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _md(token: str) -> list[tuple[str, str | bytes]]:
    return [("authorization", f"Bearer {token}")]


def test_a_node_bound_agent_token_is_its_node_and_account() -> None:
    auth = TokenReviewAuthenticator(Reviews({"t": _status(node=["n1"])}))
    assert auth(_md("t")) == Caller("n1", "tulle-system/tulle-agent")


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (_status(node=None), "bound to no node"),
        (_status(node=[]), "bound to no node"),
        (_status(node=["n1", "n2"]), "bound to no node"),
        (_status(node=[""]), "bound to no node"),
        (_status(username="tulle:admin", node=["n1"]), "'tulle:admin' is not a ServiceAccount"),
        (_status(username="system:serviceaccount:x", node=["n1"]), "is not a ServiceAccount"),
        (_status(ok=False), "the token review refused the token: Node n1"),
        ({"authenticated": "yes"}, "did not authenticate it"),
    ],
)
def test_refusals_say_why(status: dict, message: str) -> None:
    auth = TokenReviewAuthenticator(Reviews({"t": status}))
    with pytest.raises(Unauthenticated, match=message):
        auth(_md("t"))


def test_answers_are_cached_for_the_ttl_refusals_too_and_review_failures_never() -> None:
    now = [0.0]
    reviews = Reviews(
        {
            "good": _status(node=["n1"]),
            "bad": _status(node=None),
            "down": ReviewFailed("503 the API server is away"),
        }
    )
    auth = TokenReviewAuthenticator(reviews, ttl=10, clock=lambda: now[0])
    for _ in range(3):
        auth(_md("good"))
        with pytest.raises(Unauthenticated):
            auth(_md("bad"))
    assert reviews.calls == ["good", "bad"]
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="could not be reviewed now: 503"):
            auth(_md("down"))
    assert reviews.calls.count("down") == 2
    now[0] = 10.0  # expired: asked again (a deleted Node's token dies within the TTL)
    reviews.answers["good"] = _status(ok=False)
    with pytest.raises(Unauthenticated, match="refused"):
        auth(_md("good"))
    # The header itself is checked before any review.
    with pytest.raises(Unauthenticated, match="no authorization"):
        auth([])
    assert reviews.calls.count("good") == 2


def test_the_cache_is_bounded_least_recently_used_out() -> None:
    reviews = Reviews({f"t{i}": _status(node=["n1"]) for i in range(5)})
    auth = TokenReviewAuthenticator(reviews, max_entries=3)
    for i in range(5):
        auth(_md(f"t{i}"))
    assert len(auth) == 3
    auth(_md("t0"))  # evicted: reviewed again
    assert reviews.calls.count("t0") == 2
    auth(_md("t4"))  # still held
    assert reviews.calls.count("t4") == 1
