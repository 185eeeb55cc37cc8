"""``bench.l7.ab``'s policy sides: the waypoint config a side gets for ``--*-policies``."""

from __future__ import annotations

import pytest
import yaml

from bench.l7 import ab, table


def _kinds(parts: str) -> list[str]:
    text = ab._config(table.build(), "127.0.0.1:2", parts)
    return [d["kind"] for d in yaml.safe_load_all(text.replace("LISTEN", "127.0.0.1:1")) if d]


def test_a_side_gets_the_policies_it_names() -> None:
    none = _kinds("")
    assert "AuthorizationPolicy" not in none and "Pod" not in none
    every = _kinds("all")
    assert every.count("AuthorizationPolicy") == 20
    assert {"HTTPLocalRateLimitPolicy", "BackendTrafficPolicy", "Pod"} <= set(every)
    some = _kinds("ratelimit,outlier")
    assert "AuthorizationPolicy" not in some
    assert {"HTTPLocalRateLimitPolicy", "BackendTrafficPolicy"} <= set(some)


def test_an_unknown_part_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="authx"):
        ab._config(table.build(), "127.0.0.1:2", "authx")
    with pytest.raises(SystemExit):
        ab.main(["/nonexistent", "/nonexistent", "--after-policies", "authx", "--callgrind", "1"])
