"""`tulle relay` as a process (the Deployment's command) on loopback: it dials an agent over
mTLS with the pair `tulle certs relay` wrote and serves the merged flows; SIGTERM stops it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from agent.cli.main import cli
from agent.observer.client import ObserverClient
from agent.observer.convert import FlowsQuery
from agent.observer.server import ObserverServer
from agent.observer.tls import ServerTls, TlsFiles
from tests.unit.observer.test_relay import flow_ids, ring_with

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_relay_process_serves_an_agents_flows_over_mtls(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["certs", "relay", "--out-dir", str(tmp_path / "pki")])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "pki" / "relay" / "tls.key").stat().st_mode & 0o077 == 0
    agent_dir = tmp_path / "pki" / "agent"
    node = ObserverServer(ring_with("node-1", [1, 2]), "node-1", tcp_address="127.0.0.1:0",
                          tls=ServerTls(TlsFiles(agent_dir / "tls.crt", agent_dir / "tls.key",
                                                 agent_dir / "ca.crt"))).start()
    relay_dir = tmp_path / "pki" / "relay"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli.node", "relay", f"--listen=127.0.0.1:{port}",
         f"--peer=node-1=127.0.0.1:{node.tcp_port}",
         f"--tls-client-cert={relay_dir}/tls.crt", f"--tls-client-key={relay_dir}/tls.key",
         f"--tls-server-ca={relay_dir}/ca.crt"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        log = ""
        while "relay serving on" not in log:  # listening; EOF if it died
            line = proc.stderr.readline()
            assert line, f"the relay exited: {log}"
            log += line
        assert f"relay serving on 127.0.0.1:{port} (TLS to agents: on)" in log
        with ObserverClient(f"127.0.0.1:{port}", connect_timeout=30) as client:
            assert flow_ids(list(client.get_flows(FlowsQuery(number=10)))) == [
                "node-1@1", "node-1@2"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        node.stop(grace=0)
        proc.stderr.close()
