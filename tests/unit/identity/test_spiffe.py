"""SPIFFE IDs: the standard's grammar, checked rule by rule and with Hypothesis."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity.spiffe import (
    MAX_ID_BYTES,
    SpiffeId,
    SpiffeIdError,
    workload_id,
    workload_of,
)

TD_CHARS = string.ascii_lowercase + string.digits + ".-_"
SEG_CHARS = string.ascii_letters + string.digits + ".-_"

trust_domains = st.text(TD_CHARS, min_size=1, max_size=40)
segments = st.text(SEG_CHARS, min_size=1, max_size=20).filter(lambda s: s not in (".", ".."))
paths = st.lists(segments, max_size=6).map(lambda segs: "".join("/" + s for s in segs))


@given(trust_domains, paths)
def test_format_then_parse_round_trips(td: str, path: str) -> None:
    spiffe_id = SpiffeId(td, path)
    assert SpiffeId.parse(str(spiffe_id)) == spiffe_id
    assert str(SpiffeId.parse(str(spiffe_id))) == f"spiffe://{td}{path}"


OUTSIDE = sorted(set(string.printable + "éß\u0000\u2028") - set(SEG_CHARS + "/"))


@given(trust_domains, paths, st.sampled_from(OUTSIDE))
def test_a_character_outside_the_alphabet_is_refused(td: str, path: str, bad: str) -> None:
    with pytest.raises(SpiffeIdError):
        SpiffeId.parse(f"spiffe://{td}{path}/a{bad}b")
    with pytest.raises(SpiffeIdError):
        SpiffeId.parse(f"spiffe://{td}{bad}x{path}")


@given(trust_domains, paths, st.sampled_from(string.ascii_uppercase))
def test_an_uppercase_trust_domain_is_refused(td: str, path: str, upper: str) -> None:
    with pytest.raises(SpiffeIdError, match="not lowercase"):
        SpiffeId.parse(f"spiffe://{td}{upper}{path}")


@given(trust_domains, st.lists(segments, min_size=1, max_size=4), st.sampled_from(["", ".", ".."]))
def test_empty_and_dot_segments_are_refused(td: str, segs: list[str], bad: str) -> None:
    for i in range(len(segs) + 1):
        with_bad = [*segs[:i], bad, *segs[i:]]
        with pytest.raises(SpiffeIdError, match="segment"):
            SpiffeId.parse(f"spiffe://{td}/" + "/".join(with_bad))


@given(st.text(max_size=60))
def test_parse_accepts_only_what_it_formats_back(text: str) -> None:
    try:
        spiffe_id = SpiffeId.parse(text)
    except SpiffeIdError:
        return
    assert str(spiffe_id) == text


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("https://cluster.local/ns/a", "does not start with 'spiffe://'"),
        ("SPIFFE://cluster.local/ns/a", "scheme .* not lowercase"),
        ("spiffe:cluster.local/ns/a", "does not start"),
        ("spiffe://", "trust domain is empty"),
        ("spiffe:///ns/a", "trust domain is empty"),
        ("spiffe://Cluster.local/ns/a", "not lowercase"),
        ("spiffe://cluster.local:8443/ns/a", "a port"),
        ("spiffe://user@cluster.local/ns/a", "userinfo"),
        ("spiffe://cluster%2elocal/ns/a", "percent-encoding"),
        ("spiffe://cluster.local/ns/a%20b", "segment 'a%20b'"),
        ("spiffe://cluster.local/ns/a/", "empty segment"),
        ("spiffe://cluster.local/", "empty segment"),
        ("spiffe://cluster.local//ns", "empty segment"),
        ("spiffe://cluster.local/ns/./a", "'.' segment"),
        ("spiffe://cluster.local/ns/../a", "'..' segment"),
        ("spiffe://cluster.local/ns/a?x=1", "a query"),
        ("spiffe://cluster.local/ns/a#frag", "a fragment"),
        ("spiffe://cluster.local/ns/é", "segment"),
    ],
)
def test_each_rule_is_named_when_broken(text: str, complaint: str) -> None:
    with pytest.raises(SpiffeIdError, match=complaint):
        SpiffeId.parse(text)


def test_the_length_limit_is_2048_bytes() -> None:
    prefix = "spiffe://td/"
    fits = prefix + "a" * (MAX_ID_BYTES - len(prefix))
    assert str(SpiffeId.parse(fits)) == fits
    with pytest.raises(SpiffeIdError, match="2049 bytes"):
        SpiffeId.parse(fits + "a")
    with pytest.raises(SpiffeIdError, match="over the 2048-byte limit"):
        SpiffeId("td", "/" + "a" * MAX_ID_BYTES)


def test_a_trust_domain_id_has_no_path() -> None:
    assert SpiffeId.parse("spiffe://cluster.local") == SpiffeId("cluster.local")
    assert SpiffeId("cluster.local").segments == ()


def test_the_constructor_checks_what_parse_checks() -> None:
    with pytest.raises(SpiffeIdError, match="does not start with '/'"):
        SpiffeId("cluster.local", "ns/a")
    with pytest.raises(SpiffeIdError, match="not lowercase"):
        SpiffeId("Cluster.local", "/ns/a")


def test_workload_id_defaults_the_service_account() -> None:
    assert str(workload_id("cluster.local", "shop")) == "spiffe://cluster.local/ns/shop/sa/default"
    assert str(workload_id("td", "shop", "web")) == "spiffe://td/ns/shop/sa/web"
    with pytest.raises(SpiffeIdError, match="the namespace"):
        workload_id("td", "")
    with pytest.raises(SpiffeIdError, match="the service account segment 'a/b'"):
        workload_id("td", "shop", "a/b")


@given(trust_domains, segments, segments)
def test_workload_of_inverts_workload_id(td: str, ns: str, sa: str) -> None:
    assert workload_of(workload_id(td, ns, sa)) == (ns, sa)


@pytest.mark.parametrize(
    "text",
    ["spiffe://td", "spiffe://td/ns/a", "spiffe://td/ns/a/sa", "spiffe://td/ns/a/sa/b/c",
     "spiffe://td/namespace/a/sa/b", "spiffe://td/ns/a/serviceaccount/b"],
)
def test_workload_of_refuses_other_shapes(text: str) -> None:
    with pytest.raises(SpiffeIdError, match="not of the shape"):
        workload_of(SpiffeId.parse(text))
