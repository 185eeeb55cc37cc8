"""`tulle lab up --cni builtin|chain` hands the lab's pod-network mode to lifecycle.up."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner


def test_lab_up_passes_the_cni_mode_and_refuses_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.cli.lab import lab
    from lab import lifecycle

    seen: list[dict[str, Any]] = []

    def up(name: str, nodes: int, progress: Any, **options: Any) -> Any:
        seen.append(options)
        return lifecycle.plan_lab(name, nodes)

    monkeypatch.setattr(lifecycle, "up", up)
    for args, mode in (([], "builtin"), (["--cni", "chain"], "chain")):
        out = CliRunner().invoke(lab, ["up", "--name", "unitlab", *args])
        assert out.exit_code == 0, out.output
        assert seen[-1]["cni"] == mode
    bad = CliRunner().invoke(lab, ["up", "--name", "unitlab", "--cni", "bridge"])
    assert bad.exit_code == 2 and "'bridge' is not one of 'builtin', 'chain'" in bad.output
    assert len(seen) == 2
