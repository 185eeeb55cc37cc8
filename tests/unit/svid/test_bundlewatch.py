"""The trust bundle from the ConfigMap tulle-system/tulle-trust-bundle, through a lab API
server with the agent's own token and RBAC (deploy/daemonset/rbac.yaml): written to the SVID
directory on each change, the last good one kept when it goes bad or away, and nothing else
in tulle-system readable."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lightkube import ApiError

from agent.kube.source import connect
from agent.svid import store
from agent.svid.bundlewatch import NAME, NAMESPACE, BundleWatch, ConfigMap, apply_configmap
from agent.svid.client import CertificateClient
from agent.svid.manager import SvidConfig, SvidManager
from identity.ca import CertificateAuthority
from tests.unit.kube.conftest import Lab, account_kubeconfig, serve_lab

TD = "cluster.local"


def root_pem(name: str) -> str:
    start = datetime.now(UTC) - timedelta(days=1)
    return CertificateAuthority.generate_root(name, start).root.public_bytes(Encoding.PEM).decode()


ROOT_A, ROOT_B = root_pem("root a"), root_pem("root b")


def configmap(data: dict[str, str], name: str = NAME) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": data,
    }


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.02)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    yield from serve_lab(tmp_path, gateway_api=False)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[SvidManager]:
    client = CertificateClient("unix:/nonexistent", lambda: "unused")
    yield SvidManager(SvidConfig(tmp_path / "svid", TD), client, lambda: frozenset())
    client.close()


def test_the_agent_follows_the_configmap_and_keeps_the_last_good_bundle(
    lab: Lab, manager: SvidManager, tmp_path: Path
) -> None:
    client = connect(account_kubeconfig(lab, "tulle-agent"))
    lab.store.apply(configmap({"trust-domain": TD, "roots.pem": ROOT_A}))
    watch = BundleWatch(client, manager)
    thread = threading.Thread(target=watch.run, daemon=True)
    thread.start()
    directory = tmp_path / "svid"
    try:
        wait_for(lambda: store.read_bundle(directory) == ROOT_A.encode())
        # A rotation's overlap: both roots.
        lab.store.apply(configmap({"trust-domain": TD, "roots.pem": ROOT_A + ROOT_B}))
        wait_for(lambda: store.read_bundle(directory) == (ROOT_A + ROOT_B).encode())
        # Garbage: the last good bundle stays, the report says why.
        lab.store.apply(configmap({"trust-domain": TD, "roots.pem": "garbage"}))
        wait_for(lambda: manager.report()["trust_bundle"]["error"] is not None)
        assert "not PEM" in manager.report()["trust_bundle"]["error"]
        assert store.read_bundle(directory) == (ROOT_A + ROOT_B).encode()
        lab.store.delete("ConfigMap", NAMESPACE, NAME)
        wait_for(lambda: "deleted" in (manager.report()["trust_bundle"]["error"] or ""))
        assert store.read_bundle(directory) == (ROOT_A + ROOT_B).encode()
        lab.store.apply(configmap({"trust-domain": TD, "roots.pem": ROOT_B}))
        wait_for(lambda: store.read_bundle(directory) == ROOT_B.encode())
        assert manager.report()["trust_bundle"]["error"] is None
    finally:
        watch.stop()
        thread.join(5)
    assert not thread.is_alive()


def test_the_agent_may_read_only_that_configmap_in_kube_system(lab: Lab) -> None:
    client = connect(account_kubeconfig(lab, "tulle-agent"))
    lab.store.apply(configmap({"secret-ish": "x"}, name="other"))
    with pytest.raises(ApiError) as info:
        list(client.list(ConfigMap, namespace=NAMESPACE))
    assert info.value.status.code == 403
    with pytest.raises(ApiError) as info:
        list(client.list(ConfigMap, namespace=NAMESPACE, fields={"metadata.name": "other"}))
    assert info.value.status.code == 403
    listed = list(client.list(ConfigMap, namespace=NAMESPACE, fields={"metadata.name": NAME}))
    assert listed == []  # allowed (not there yet)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"roots.pem": ROOT_A}, "has no trust-domain"),
        ({"trust-domain": TD}, "has no roots.pem"),
        ({}, "has no trust-domain, roots.pem"),
        ({"trust-domain": "other.example", "roots.pem": ROOT_A}, "trust domain 'other.example'"),
    ],
)
def test_an_incomplete_configmap_is_reported(
    manager: SvidManager, data: dict[str, str], why: str
) -> None:
    assert not apply_configmap(manager, configmap(data))
    assert why in manager.report()["trust_bundle"]["error"]
