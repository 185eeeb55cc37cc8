"""A fresh node's first sync writes the compiled maps while the verifier still checks the
programs (programs.load_datapath ``maps_ready``, DatapathController.attach_maps): nothing is
attached to a pod's veth before its programs exist, everything is once they do, and what
was written is not written again."""

from __future__ import annotations

from typing import Any

import pytest

from agent.datapath import applier as applier_mod
from agent.datapath.applier import Applier
from tests.unit.datapath.test_policy_fit import (
    HUGE,
    IFINDEX,
    FakeDatapath,
    FakeMap,
    desired,
    policy_endpoints,
    rules,
)


class MapsOnly(FakeDatapath):
    programs_loaded = False


def test_the_maps_are_written_first_and_the_veths_attached_once_the_programs_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attached: list[tuple[int, int, int]] = []
    written: list[Any] = []
    monkeypatch.setattr(applier_mod.attach, "veth_for", lambda _ipr, ip: IFINDEX[ip])
    monkeypatch.setattr(applier_mod.attach, "attach",
                        lambda _ipr, ifindex, f, t: attached.append((ifindex, f, t)))
    real_write = applier_mod.maps.write_policy_rule
    monkeypatch.setattr(applier_mod.maps, "write_policy_rule",
                        lambda *a: (written.append(a[1:]), real_write(*a)))
    tables = {"policy_v1": FakeMap(max_entries=64), "endpoints_v1": FakeMap()}
    early = MapsOnly(**tables)
    applier = Applier(early, lambda: None)  # type: ignore[arg-type,return-value]
    wanted = desired(rules(HUGE, 3))
    applier.apply(wanted)
    assert attached == []  # no program yet: a veth must not get fd -1
    assert len(tables["endpoints_v1"].data) == 3 and policy_endpoints(early) == {HUGE}
    writes = len(written)

    loaded = FakeDatapath(**tables)  # the same maps, now with programs
    loaded.from_pod_fd, loaded.to_pod_fd = 7, 8  # type: ignore[misc]
    applier.dp = loaded  # type: ignore[assignment]
    applier.apply(wanted)
    assert sorted(attached) == [(i, 7, 8) for i in sorted(IFINDEX.values())]
    assert len(written) == writes  # the policy written beside the verifier stays
    applier.apply(wanted)
    assert len(attached) == 3  # once each
