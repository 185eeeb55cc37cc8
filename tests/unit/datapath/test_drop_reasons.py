"""drop_reasons reads bpf/lib/drop.h; these pin the numbers users and Hubble tooling rely on."""

from __future__ import annotations

import pytest

from agent.datapath import drop_reasons

# Hubble's DropReason numbers: renumbering any of these breaks users' jq scripts and dashboards.
HUBBLE = {
    "DROP_REASON_UNKNOWN": 0,
    "INVALID_SOURCE_IP": 132,
    "POLICY_DENIED": 133,
    "INVALID_PACKET_DROPPED": 134,
    "CT_TRUNCATED_OR_INVALID_HEADER": 135,
    "UNSUPPORTED_L3_PROTOCOL": 139,
    "UNKNOWN_L4_PROTOCOL": 142,
    "CT_MAP_INSERTION_FAILED": 155,
    "IP_FRAGMENTATION_NOT_SUPPORTED": 157,
    "SERVICE_BACKEND_NOT_FOUND": 158,
}


@pytest.mark.parametrize(("name", "number"), HUBBLE.items())
def test_codes_match_hubble(name: str, number: int) -> None:
    assert drop_reasons.code(name) == number
    assert drop_reasons.by_code(number).name == name


def test_every_reason_has_a_description_and_fits_the_drop_map() -> None:
    for reason in drop_reasons.REASONS.values():
        assert reason.description and reason.description != reason.name
        assert 0 <= reason.code < 256  # tulle_drops_v1 is indexed by code


def test_aliases_and_c_spellings() -> None:
    assert drop_reasons.code("SPOOFED_SOURCE") == drop_reasons.code("INVALID_SOURCE_IP")
    assert drop_reasons.code("NO_SERVICE") == 158
    assert drop_reasons.code("drop_policy_denied") == 133


def test_unknown_codes_and_names() -> None:
    assert drop_reasons.by_code(77) is drop_reasons.UNKNOWN
    with pytest.raises(KeyError, match="NOT_A_REASON"):
        drop_reasons.code("NOT_A_REASON")
    assert "DROP_REASON_MAX" not in {r.name for r in drop_reasons.REASONS.values()}


def test_source_files() -> None:
    assert drop_reasons.source_file(1) == "probe_parse.c"
    assert drop_reasons.source_file(0) == ""
    assert drop_reasons.source_file(999) == "<file 999>"
