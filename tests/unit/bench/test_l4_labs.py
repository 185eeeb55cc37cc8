"""BenchLab.up asks `tulle lab up` for the lab the benchmarks measure by name (spawned agents,
kubelet-built veths): the CLI's defaults became Tulle from deploy/ over the CNI chain."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from bench.l4.labs import BenchLab


@pytest.mark.parametrize("datapath", [True, False])
def test_up_asks_for_a_spawned_lab_with_builtin_veths(
    datapath: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, ...]] = []

    def tulle(self: BenchLab, *args: str, **_kw: Any) -> Any:
        calls.append(args)
        return subprocess.CompletedProcess(["tulle", *args], 0, "", "")

    monkeypatch.setattr(BenchLab, "tulle", tulle)
    BenchLab("bench1", datapath, lambda _m: None, node_port_range="20000-32767").up()
    up = next(c for c in calls if c[:2] == ("lab", "up"))
    assert up[up.index("--install") + 1] == "spawn"
    assert up[up.index("--cni") + 1] == "builtin"
    assert ("--no-datapath" in up) is not datapath
    assert up[up.index("--service-node-port-range") + 1] == "20000-32767"
