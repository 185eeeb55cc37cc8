"""Encrypted flows in `tulle observe`'s text formats: the lock after the verdict, the tunnel's
peer and the identity a refused peer presented in the summary; tables stay aligned."""

from __future__ import annotations

import dataclasses

from agent.flows.flow import IP
from agent.flows.printer import (
    ENCRYPTED_MARK,
    format_compact,
    format_dict,
    format_table,
    table_row,
    verdict_text,
)
from tests.unit.flows.samples import syn
from tests.unit.flows.test_tunnelflows import built
from tests.unit.flows.tunnelsamples import ACCEPTED, EVIL_ID, REFUSED


def test_compact_lines_of_an_accepted_and_a_refused_tunnel() -> None:
    assert format_compact(built(ACCEPTED)) == (
        "Dec  6 03:00:00.250: shop/web-0:43512 (ID:12345) -> data/db-0:5432 (ID:23456) "
        "from-crypto FORWARDED 🔒 (TCP tunnel accepted (mTLS); peer waypoint 172.18.0.2:15008)"
    )
    assert format_compact(built(REFUSED)) == (
        "Dec  6 03:00:00.251: shop/web-0:43514 (ID:12345) -> data/db-0:5432 (ID:23456) "
        "mTLS wrong identity DROPPED 🔒 (mTLS refused: wrong identity; peer waypoint "
        f"172.18.0.3:15008; peer presented {EVIL_ID}; {REFUSED.detail})"
    )


def test_any_encrypted_flow_is_marked_and_a_plaintext_one_is_not() -> None:
    plain = syn()
    kernel = dataclasses.replace(plain, ip=IP("10.244.1.5", "10.244.2.7", encrypted=True))
    assert ENCRYPTED_MARK not in format_compact(plain)
    assert format_compact(kernel) == format_compact(plain).replace(
        "FORWARDED (", f"FORWARDED {ENCRYPTED_MARK} ("
    )
    assert verdict_text(kernel, color=True).endswith(f"\x1b[0m {ENCRYPTED_MARK}")


def test_dict_output_marks_the_verdict() -> None:
    text = format_dict(built(REFUSED))
    assert "    VERDICT: DROPPED 🔒\n" in text and "       TYPE: mTLS wrong identity\n" in text


def test_the_table_stays_aligned_around_the_wide_mark() -> None:
    rows = [table_row(built(ACCEPTED)), table_row(syn())]
    lines = format_table(rows).splitlines()
    # every SUMMARY starts in the same terminal column (the mark takes two)
    columns = [
        len(line[: line.index(s)]) + line[: line.index(s)].count(ENCRYPTED_MARK)
        for line, s in zip(lines, ("SUMMARY", "TCP tunnel", "TCP Flags"), strict=True)
    ]
    assert len(set(columns)) == 1, lines
