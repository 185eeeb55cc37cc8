"""What the waypoint (`python -m agent.cli.node waypoint`) imports: not the agent's flow
metrics, whose package it uses only for its address parser (agent.metrics imports its
parts on first use), nor the agent's datapath loader or observer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_IN_THE_WAYPOINT = ("agent.metrics.flowmetrics", "agent.servicemap", "pyroute2", "grpc",
                       "bcc", "agent.bcc_thread", "agent.datapath.controller")


@pytest.fixture(scope="module")
def imported() -> set[str]:
    code = "import sys, agent.cli.node, l7proxy.node; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.parametrize("module", NOT_IN_THE_WAYPOINT)
def test_the_waypoints_import_path_leaves_it_out(imported: set[str], module: str) -> None:
    assert module not in imported


def test_the_waypoint_has_its_metrics_server(imported: set[str]) -> None:
    assert {"agent.metrics.server", "prometheus_client", "l7proxy.server"} <= imported


def test_the_metrics_package_still_exports_its_parts() -> None:
    """Lazily, by name; an unknown name is an AttributeError as on any module."""
    import agent.metrics as metrics
    from agent.metrics.flowmetrics import FlowMetrics
    from agent.metrics.server import serve_metrics

    assert metrics.FlowMetrics is FlowMetrics and metrics.serve_metrics is serve_metrics
    assert set(metrics.__all__) <= set(dir(metrics)) | set(metrics._LAZY)
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        metrics.nothing  # noqa: B018
