"""Tulle's system namespace (identity/system.py): one setting, tulle-system by default, the
flag over the environment, a bad name refused saying where it came from, and the names that
follow from it."""

from __future__ import annotations

import pytest

from identity.system import (
    ENV,
    SYSTEM_NAMESPACE,
    SystemNamespaceError,
    agent_account,
    ca_service_name,
    check_namespace,
    system_namespace,
)


def test_the_default_is_tulle_system() -> None:
    assert SYSTEM_NAMESPACE == "tulle-system"
    assert system_namespace() == system_namespace(None, {}) == "tulle-system"
    assert agent_account() == "tulle-system/tulle-agent"
    assert ca_service_name() == "tulle-controlplane.tulle-system.svc"


def test_the_flag_wins_over_the_environment() -> None:
    assert system_namespace(None, {ENV: "mesh"}) == "mesh"
    assert system_namespace("mine", {ENV: "mesh"}) == "mine"
    assert agent_account("mesh") == "mesh/tulle-agent"
    assert ca_service_name("mesh") == "tulle-controlplane.mesh.svc"


@pytest.mark.parametrize(
    "bad",
    ["", "Tulle", "tulle_system", "tulle.system", "-tulle", "tulle-", "a/b", "x" * 64, "ns "],
)
def test_a_name_no_namespace_can_have_is_refused(bad: str) -> None:
    with pytest.raises(SystemNamespaceError):
        check_namespace(bad)
    with pytest.raises(SystemNamespaceError, match="^--system-namespace: "):
        system_namespace(bad, {ENV: "fine"})
    with pytest.raises(SystemNamespaceError, match=f"^{ENV}: "):
        system_namespace(None, {ENV: bad})


def test_the_longest_label_is_accepted() -> None:
    assert check_namespace("a" * 63) == "a" * 63
    assert check_namespace("0ns-1") == "0ns-1"
