"""`tulle lab up --install manifests|spawn --cni chain|builtin`: what reaches lifecycle.up.

The defaults are what a cluster runs (Tulle from deploy/, pods networked by the CNI chain);
spawn and builtin are asked for by name, and the old `--from-manifests` still works."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner


def lab_up(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[dict[str, Any]]]:
    from agent.cli.lab import lab
    from lab import lifecycle

    seen: list[dict[str, Any]] = []

    def up(name: str, nodes: int, progress: Any, **options: Any) -> Any:
        seen.append(options)
        return lifecycle.plan_lab(name, nodes)

    monkeypatch.setattr(lifecycle, "up", up)
    return CliRunner().invoke(lab, ["up", "--name", "unitlab", *args]), seen


@pytest.mark.parametrize(
    ("args", "mode", "cni", "datapath"),
    [
        ([], "manifests", "chain", True),
        (["--install", "spawn"], "spawn", "chain", True),
        (["--cni", "builtin"], "manifests", "builtin", True),
        (["--install", "spawn", "--cni", "builtin"], "spawn", "builtin", True),
        (["--from-manifests"], "manifests", "chain", True),
        (["--from-manifests", "--install", "manifests"], "manifests", "chain", True),
        (["--from-manifests", "--cni", "builtin"], "manifests", "builtin", True),
        # only spawn mode can build a lab without the datapath: the default there
        (["--no-datapath"], "spawn", "chain", False),
        (["--no-datapath", "--install", "spawn", "--cni", "builtin"], "spawn", "builtin", False),
    ],
)
def test_lab_up_hands_the_install_and_cni_modes_on(
    args: list[str], mode: str, cni: str, datapath: bool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, [options] = lab_up(args, monkeypatch)
    assert out.exit_code == 0, out.output
    assert (options["mode"], options["cni"], options["datapath"]) == (mode, cni, datapath)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cni", "bridge"], "'bridge' is not one of 'builtin', 'chain'"),
        (["--install", "helm"], "'helm' is not one of 'spawn', 'manifests'"),
        (["--from-manifests", "--install", "spawn"], "--from-manifests contradicts --install spawn"),
        (["--no-datapath", "--install", "manifests"], "a --no-datapath lab needs --install spawn"),
        (["--no-datapath", "--from-manifests"], "a --no-datapath lab needs --install spawn"),
    ],
)
def test_lab_up_refuses_unknown_or_contradictory_modes(
    args: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, seen = lab_up(args, monkeypatch)
    assert out.exit_code == 2, out.output
    assert message in out.output
    assert not seen


def test_help_names_both_options_and_hides_the_old_flag() -> None:
    from agent.cli.lab import lab

    out = CliRunner().invoke(lab, ["up", "--help"])
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "--install [spawn|manifests]" in text and "--cni [builtin|chain]" in text
    assert "benchmarks and the test tier" in text
    assert "--from-manifests" not in text
