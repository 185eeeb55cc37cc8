"""endpoint_ipv4's inet_pton fast path answers exactly as the ipaddress rules it skips."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model.validation import endpoint_ipv4, ipv4_address, special_address


def reference(value: str) -> str | None:
    """The check before the fast path: parse with ipaddress, then the special ranges."""
    problem = ipv4_address(value)
    if problem is None and (why := special_address(ipaddress.IPv4Address(value))) is not None:
        return why
    return problem


octet = st.one_of(
    st.integers(0, 255).map(str),
    st.sampled_from(["00", "01", "010", "256", "999", "", "-1", "1e1", " 1", "0x1", "٣"]),
)
dotted = st.lists(octet, min_size=1, max_size=6).map(".".join)
addresses = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
special = st.sampled_from(["0.0.0.0", "0.1.2.3", "127.0.0.1", "169.254.3.4", "224.0.0.5",
                           "224.0.1.5", "169.253.1.1", "1.2.3.4\x00", "1.2.3.4 "])


@settings(max_examples=2000)
@given(st.one_of(dotted, addresses, special, st.text(max_size=20)))
def test_fast_path_agrees_with_ipaddress(value: str) -> None:
    verdict = endpoint_ipv4(value)
    expected = reference(value)
    assert (verdict is None) == (expected is None), (value, verdict, expected)
    if expected is not None:
        assert expected in verdict if verdict else False
