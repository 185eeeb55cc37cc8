"""``python -m lab.apiserver``: serves on loopback, writes a kubeconfig, stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml


def test_entry_point_serves_writes_kubeconfig_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[4])}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.apiserver",
            "--store",
            str(tmp_path / "store.db"),
            "--state-dir",
            str(tmp_path / "state"),
            "--port",
            "0",
            "--lab",
            "demo",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        assert url.startswith("https://127.0.0.1:")
        assert proc.stdout.readline().strip() == f"KUBECONFIG={tmp_path / 'state' / 'kubeconfig'}"
        config = yaml.safe_load((tmp_path / "state" / "kubeconfig").read_text())
        assert config["current-context"] == "tulle-demo"
        assert config["clusters"][0]["cluster"]["server"] == url
        assert oct((tmp_path / "state" / "kubeconfig").stat().st_mode & 0o777) == "0o600"
        ctx = ssl.create_default_context(
            cafile=config["clusters"][0]["cluster"]["certificate-authority"]
        )
        request = urllib.request.Request(
            f"{url}/api/v1/namespaces",
            headers={"Authorization": f"Bearer {config['users'][0]['user']['token']}"},
        )
        with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
            names = [n["metadata"]["name"] for n in json.load(resp)["items"]]
        assert names == ["default", "kube-system"]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0
