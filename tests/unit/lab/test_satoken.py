"""lab/satoken.py and the kubelet's side of it: which pods get the projected ServiceAccount
token (the Pod's automountServiceAccountToken wins over the account's; default yes), which
pods get a mount namespace for it, the three files, and a missing ServiceAccount keeping the
containers waiting with a FailedMount event that names it, until it exists."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from lab import podvolumes, satoken
from lab.kubeapi import NotFound

from .kubelet_harness import make_kubelet, make_pod, until

APP = {"name": "app", "command": ["sleep", "30"]}


def _pod(**spec: Any) -> Any:
    return make_pod({"containers": [APP], **spec})


@pytest.mark.parametrize(("on_pod", "on_account", "mounted"), [
    (None, None, True),  # Kubernetes' default
    (None, False, False),
    (None, True, True),
    (True, False, True),  # the Pod wins
    (False, True, False),
    (False, None, False),
])
def test_the_pod_wins_over_its_service_account(on_pod: bool | None, on_account: bool | None,
                                               mounted: bool) -> None:
    spec = {} if on_pod is None else {"automountServiceAccountToken": on_pod}
    account = {"metadata": {"name": "default"}}
    if on_account is not None:
        account["automountServiceAccountToken"] = on_account  # type: ignore[assignment]
    assert satoken.automount(_pod(**spec), account) is mounted


def test_a_missing_account_still_asks_for_a_token() -> None:
    """The request then fails, and says the account is missing."""
    assert satoken.automount(_pod(), None) is True


def test_a_mount_namespace_for_volumes_or_a_token_the_pod_asks_for() -> None:
    assert not satoken.mount_namespace(_pod())  # an echo pod: host filesystem, no token
    assert not satoken.mount_namespace(_pod(automountServiceAccountToken=False))
    assert satoken.mount_namespace(_pod(automountServiceAccountToken=True))
    with_volume = make_pod({"containers": [{**APP, "volumeMounts": [
        {"name": "v", "mountPath": "/run/v"}]}], "volumes": [{"name": "v", "emptyDir": {}}]})
    assert satoken.mount_namespace(with_volume)


def test_the_files_are_written_as_a_projected_volume(tmp_path: Path) -> None:
    where = satoken.write_files(tmp_path, "tulle-sa.x.y", "-----BEGIN CERTIFICATE-----\n", "web")
    assert where == podvolumes.serviceaccount_dir(tmp_path)
    assert {p.name: p.read_text() for p in where.iterdir()} == {
        "token": "tulle-sa.x.y", "ca.crt": "-----BEGIN CERTIFICATE-----\n", "namespace": "web"}
    assert {stat.S_IMODE(p.stat().st_mode) for p in where.iterdir()} == {0o644}
    with pytest.raises(podvolumes.VolumeError):
        satoken.write_files(tmp_path, "", "ca", "web")  # no token: nothing to mount


def test_a_missing_service_account_keeps_the_pod_waiting_until_it_exists(
    tmp_path: Path,
) -> None:
    pod = _pod(serviceAccountName="shop-sa")
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    asked: list[tuple[str, str, str, str, int]] = []
    exists = False

    def issue(ns: str, account: str, name: str, uid: str, seconds: int) -> str:
        asked.append((ns, account, name, uid, seconds))
        if not exists:
            raise NotFound(f'serviceaccounts "{account}" not found')
        return "tulle-sa.token"

    kubelet.tokens, kubelet.ca_pem = issue, "CA PEM"
    podvolumes.pod_dir(kubelet.paths, "shop", "p").mkdir(parents=True)  # made at pod create
    rt.token, rt.service_account = True, "shop-sa"
    status = until(kubelet, rt, lambda s: bool(sink.events))
    assert sink.events == [("FailedMount", 'MountVolume.SetUp failed for volume '
                            '"kube-api-access" : failed to fetch token: serviceaccounts '
                            '"shop-sa" not found')]
    waiting = status["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating" and "shop-sa" in waiting["message"]
    assert asked[0] == ("shop", "shop-sa", "p", "u1", satoken.TOKEN_SECONDS)  # bound to the Pod
    exists = True
    rt.containers[0].next_start = 0.0  # the retry, without waiting for its back-off
    until(kubelet, rt, lambda s: "running" in s["containerStatuses"][0]["state"])
    files = podvolumes.serviceaccount_dir(podvolumes.pod_dir(kubelet.paths, "shop", "p"))
    assert (files / "token").read_text() == "tulle-sa.token"
    assert (files / "ca.crt").read_text() == "CA PEM"
    assert (files / "namespace").read_text() == "shop"
    calls = len(asked)
    rt.containers[0].proc.kill()  # type: ignore[union-attr]
    until(kubelet, rt, lambda s: s["containerStatuses"][0]["restartCount"] == 1)
    assert len(asked) == calls  # one token per pod, not per start
    kubelet.shutdown()
