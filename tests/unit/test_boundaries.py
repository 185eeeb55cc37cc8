"""The import-linter contracts (`make lint`) cover what ships: every agent package but the
`tulle` CLI counts as the agent's runtime, so a new package cannot slip past the rule that
the DaemonSet and the waypoint never carry the lab or the proxy."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]


def _contract(forbidden: str) -> dict:
    """The contract that forbids exactly ``forbidden`` (the lab, or the proxy)."""
    [found] = [c for c in CONTRACTS if c["forbidden_modules"] == [forbidden]]
    assert found["type"] == "forbidden"
    return found


def _agent_runtime() -> set[str]:
    children = {
        f"agent.{p.stem if p.suffix == '.py' else p.name}"
        for p in (REPO / "agent").iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }
    return children - {"agent.cli"}


def test_every_agent_package_but_the_cli_is_kept_from_the_lab() -> None:
    sources = set(_contract("lab")["source_modules"])
    assert _agent_runtime() <= sources, sorted(_agent_runtime() - sources)
    assert {"l7proxy", "gatewayapi"} <= sources
    assert "agent.cli" not in sources


def test_every_agent_package_but_the_cli_is_kept_from_the_proxy() -> None:
    sources = set(_contract("l7proxy")["source_modules"])
    assert _agent_runtime() <= sources, sorted(_agent_runtime() - sources)
    assert "gatewayapi" in sources
