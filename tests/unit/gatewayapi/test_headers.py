"""Headers: an ordered multi-dict that keeps case and compares names case-insensitively."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gatewayapi import Headers, Request


def test_lookup_is_case_insensitive_and_keeps_order() -> None:
    h = Headers([("Accept", "a"), ("X-One", "1"), ("accept", "b")])
    assert h.get("ACCEPT") == "a"
    assert h.get_all("accept") == ("a", "b")
    assert h.combined("Accept") == "a,b"
    assert h.combined("missing") is None
    assert "x-one" in h and "x-two" not in h
    assert h.names() == ("Accept", "X-One")


def test_edits_return_new_headers() -> None:
    h = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert h.set("a", "9").items() == (("a", "9"), ("b", "2"))
    assert h.add("B", "x").items() == (("A", "1"), ("b", "2,x"), ("a", "3"))
    assert h.append("b", "y").items() == (("A", "1"), ("b", "2"), ("a", "3"), ("b", "y"))
    assert h.remove("A").items() == (("b", "2"),)
    assert h.remove("zzz") is h
    assert h.items() == (("A", "1"), ("b", "2"), ("a", "3"))


def test_raw_round_trip() -> None:
    raw = [(b"Host", b"example.com"), (b"X-Latin", "caf\xe9".encode("latin-1"))]
    assert Headers.from_raw(raw).raw() == raw


def test_request_parts() -> None:
    r = Request("GET", "http", "Example.COM.:8080", "/a/b?x=1&y")
    assert (r.path, r.query, r.host) == ("/a/b", "x=1&y", "example.com")
    assert r.with_path("/c").target == "/c?x=1&y"
    assert Request("GET", "http", "[::1]:80", "/").host == "[::1]"


names = st.sampled_from(["a", "A", "b", "B", "Set-Cookie"])


@given(
    items=st.lists(st.tuples(names, st.text(alphabet="xyz", max_size=3)), max_size=8), name=names
)
def test_set_leaves_exactly_one_line(items: list[tuple[str, str]], name: str) -> None:
    after = Headers(items).set(name, "v")
    assert after.get_all(name) == ("v",)
    others = [(n, v) for n, v in items if n.lower() != name.lower()]
    assert [(n, v) for n, v in after if n.lower() != name.lower()] == others
