"""What the node agent imports before its first lists (agent/daemon.py `run`): only the
Kubernetes client and the models the list pages decode to. The datapath's planning and its
netlink library, the flows, metrics, observer (gRPC) and tracing modules load once the
lists are under way (bench/results/import-time-2026-12-05.md). Each check runs in a fresh
interpreter, so that a later import cannot bring one back unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.kube.conftest import Lab, account_kubeconfig, free_port
from tests.unit.kube.conftest import lab as lab  # the fixture

REPO = Path(__file__).resolve().parents[2]
# Not imported by `python -m agent.cli.node agent` before its lists start.
AFTER_THE_LISTS = (
    "pyroute2",  # netlink (the applier's veth lookups)
    "prometheus_client",  # only with --metrics-address
    "grpc",  # the observer API
    "google.protobuf",
    "bcc",
    "agent.bcc_thread",
    "agent.datapath.controller",
    "agent.datapath.desired",
    "agent.datapath.policy",
    "gatewayapi",
    "agent.flows.flow",
    "agent.metrics",
    "agent.observer",
    "agent.tracing",
    "agent.model.convert",  # every kind's converter; the list pages use convert_fast
    "agent.model.gateway",
    "agent.model.httproute",
)


def _python(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def imported() -> set[str]:
    """The modules the agent's command has imported when ``run`` starts."""
    code = "import sys, agent.cli.node, agent.daemon; print('\\n'.join(sys.modules))"
    return set(_python(code).split())


@pytest.mark.parametrize("module", AFTER_THE_LISTS)
def test_the_agents_import_path_leaves_it_out(imported: set[str], module: str) -> None:
    assert module not in imported


def test_the_import_path_still_has_what_the_lists_need(imported: set[str]) -> None:
    """The check above is not vacuous: the client and the list pages' models are there."""
    assert {"lightkube", "agent.kube.source", "agent.model.convert_fast"} <= imported


# Runs the real agent (``daemon.run``) against the lab's API server with the BCC load
# stubbed (it fails at once, which ends ``run``), noting what was imported when the
# lists started and what after.
RUN = """
import json, sys, types
stub = types.ModuleType("agent.datapath.programs")
def load_datapath(pin_dir, state_dir=None, **kwargs):
    raise RuntimeError("stub load")
stub.load_datapath = load_datapath
sys.modules["agent.datapath.programs"] = stub
from agent.kube import source
heavy = json.loads(sys.argv[1])
seen = {}
start = source.ClusterSource.start
def noted(self, *args, **kwargs):
    seen["at_list_start"] = sorted(m for m in heavy if m in sys.modules)
    return start(self, *args, **kwargs)
source.ClusterSource.start = noted
from agent import daemon
config = daemon.AgentConfig(node="node1", kubeconfig=sys.argv[2], pin_dir=sys.argv[3],
                            state_dir=None, observer_port=int(sys.argv[4]),
                            metrics_address="127.0.0.1:" + sys.argv[5], trace=False)
try:
    daemon.run(config)
except RuntimeError as err:
    seen["error"] = str(err)
seen["at_end"] = sorted(m for m in heavy if m in sys.modules)
print(json.dumps(seen))
"""


def test_the_agent_lists_before_it_imports_the_datapath(lab: Lab, tmp_path: Path) -> None:
    heavy = ["agent.datapath.controller", "pyroute2", "prometheus_client", "agent.flows.flow"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    argv = [sys.executable, "-c", RUN, json.dumps(heavy),
            str(account_kubeconfig(lab, "tulle-agent")), str(tmp_path / "pins"),
            str(free_port()), str(free_port())]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["at_list_start"] == []
    assert seen["error"] == "stub load"  # the datapath did start, after the lists
    # pyroute2 waits for the first pod veth (attach.netlink), which a stub load never reaches
    assert seen["at_end"] == sorted(m for m in heavy if m != "pyroute2")


def test_the_datapath_imports_no_route_compiler_until_a_route_needs_one() -> None:
    """gatewayapi (~30 ms of imports on the first sync's GIL) waits for the first HTTPRoute
    or Gateway (agent.datapath.planner.Planner.routes)."""
    code = ("import sys, agent.bcc_thread\n"
            "from agent.datapath.planner import Planner\n"
            "p = Planner('n1'); p.desired()\n"
            "before = 'gatewayapi' in sys.modules\n"
            "p.routes\n"
            "print(before, 'gatewayapi' in sys.modules)")
    assert _python(code).split() == ["False", "True"]
