"""Secret and ConfigMap volumes in the lab (lab/objectvolumes.py), through kubectl as on a
cluster: a pod whose required Secret is missing waits with a FailedMount event naming it and
starts once it exists; its files (every key, or ``items`` at their paths and modes) are
bound read-only; an optional missing Secret is an empty directory.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab
from .test_datapath import wait_for
from .test_kubectl_lab import Kubectl, newest_in_namespace

pytestmark = [pytest.mark.netns, pytest.mark.root]

NS = "objvol-lab"


def pod() -> dict[str, Any]:
    container = {
        "name": "app", "image": "busybox", "command": ["sleep", "3600"],
        "volumeMounts": [{"name": "tls", "mountPath": "/run/tls"},
                         {"name": "cfg", "mountPath": "/run/cfg"},
                         {"name": "opt", "mountPath": "/run/opt"}],
    }
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "objvol", "namespace": NS},
        "spec": {"nodeName": "node1", "containers": [container], "volumes": [
            {"name": "tls", "secret": {"secretName": "certs", "defaultMode": 0o400}},
            {"name": "cfg", "configMap": {"name": "settings", "items": [
                {"key": "app.conf", "path": "conf/app.conf", "mode": 0o640}]}},
            {"name": "opt", "secret": {"secretName": "absent", "optional": True}},
        ]},
    }


@pytest.fixture(scope="module")
def k(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    yield from newest_in_namespace(lab, tmp_path_factory.mktemp("kubectl-objvol"), NS)


def _running(k: Kubectl) -> bool:
    obj = json.loads(k.out("get", "pod", "objvol", "-n", NS, "-o", "json"))
    statuses = (obj.get("status") or {}).get("containerStatuses") or [{}]
    return "running" in (statuses[0].get("state") or {})


def test_secret_and_config_map_volumes(lab: Lab, k: Kubectl) -> None:
    settings = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": NS},
                "data": {"app.conf": "level=debug\n", "other": "not projected"}}
    k.out("apply", "-f", k.write("objvol.yaml", [settings, pod()]))

    def failed_mount() -> bool:
        events = json.loads(k.out("get", "events", "-n", NS, "-o", "json"))["items"]
        return any(e.get("reason") == "FailedMount" and 'secret "certs" not found' in e["message"]
                   for e in events)

    wait_for(failed_mount, timeout=60, what='a FailedMount event: secret "certs" not found')
    assert not _running(k)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "certs", "namespace": NS},
              "data": {"tls.crt": base64.b64encode(b"CERT").decode()}}
    k.out("apply", "-f", k.write("certs.yaml", [secret]))
    wait_for(lambda: _running(k), timeout=60, what="objvol running once the Secret exists")

    def sh(script: str, check: bool = True) -> Any:
        return lab.exec(NS, "objvol", "sh", "-c", script, check=check)

    assert sh("cat /run/tls/tls.crt").stdout == "CERT"
    assert sh("stat -c %a /run/tls/tls.crt").stdout == "400\n"
    assert sh("cat /run/cfg/conf/app.conf").stdout == "level=debug\n"
    assert sh("stat -c %a /run/cfg/conf/app.conf; ls /run/cfg").stdout == "640\nconf\n"
    assert sh("ls -A /run/opt").stdout == ""  # optional and missing: empty
    refused = sh("echo x > /run/tls/tls.crt", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
