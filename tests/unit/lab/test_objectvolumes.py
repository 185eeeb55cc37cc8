"""lab/objectvolumes.py and the kubelet's side of it: a Secret or ConfigMap volume's files
(every key, or ``items`` at their paths, modes from the item or ``defaultMode``), an
optional missing object as an empty directory, and a required missing one keeping the
containers waiting with a FailedMount event until it exists."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

from agent.model.core import Volume
from agent.model.core_container import ConfigMapVolumeSource, KeyToPath, SecretVolumeSource
from lab import objectvolumes, podvolumes
from lab.objectvolumes import ObjectVolumeError

from .kubelet_harness import make_kubelet, make_pod, until


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


SECRET = {"kind": "Secret", "data": {"tls.crt": _b64("CERT"), "tls.key": _b64("KEY")}}
CONFIG = {"kind": "ConfigMap", "data": {"a.conf": "x=1"}, "binaryData": {"b.bin": _b64("\x00")}}


def _files(volume: Volume, obj: dict[str, Any] | None) -> dict[str, tuple[bytes, int]]:
    ref = objectvolumes.object_ref(volume)
    assert ref is not None
    return objectvolumes.files(volume.name, ref, obj)


def test_every_key_at_a_file_of_its_name_with_the_default_mode() -> None:
    tls = Volume("tls", secret=SecretVolumeSource("certs"))
    assert _files(tls, SECRET) == {"tls.crt": (b"CERT", 0o644), "tls.key": (b"KEY", 0o644)}
    cfg = Volume("cfg", config_map=ConfigMapVolumeSource("settings", default_mode=0o440))
    assert _files(cfg, CONFIG) == {"a.conf": (b"x=1", 0o440), "b.bin": (b"\x00", 0o440)}


def test_items_pick_keys_to_paths_and_modes() -> None:
    tls = Volume("tls", secret=SecretVolumeSource("certs", items=(
        KeyToPath("tls.key", "private/key.pem", 0o400), KeyToPath("tls.crt", "cert.pem")),
        default_mode=0o444))
    assert _files(tls, SECRET) == {"private/key.pem": (b"KEY", 0o400),
                                   "cert.pem": (b"CERT", 0o444)}


def test_missing_objects_and_keys() -> None:
    required = Volume("tls", secret=SecretVolumeSource("certs"))
    with pytest.raises(ObjectVolumeError, match='MountVolume.SetUp failed for volume "tls" : '
                                                'secret "certs" not found'):
        _files(required, None)
    optional = Volume("tls", secret=SecretVolumeSource("certs", optional=True))
    assert _files(optional, None) == {}  # an empty directory
    item = (KeyToPath("nope", "nope"),)
    with pytest.raises(ObjectVolumeError, match="configmap references non-existent config "
                                                "key: nope"):
        _files(Volume("c", config_map=ConfigMapVolumeSource("s", items=item)), CONFIG)
    assert _files(Volume("c", config_map=ConfigMapVolumeSource("s", items=item,
                                                               optional=True)), CONFIG) == {}
    with pytest.raises(ObjectVolumeError, match="not base64"):
        _files(required, {"data": {"k": "%%%"}})
    assert objectvolumes.object_ref(Volume("e")) is None  # not an object volume


def test_write_makes_exactly_the_files(tmp_path: Path) -> None:
    where = tmp_path / "vol"
    where.mkdir()
    (where / "stale").write_text("old")
    objectvolumes.write(where, {"a/b.pem": (b"B", 0o400), "c": (b"C", 0o644)})
    assert sorted(str(p.relative_to(where)) for p in where.rglob("*")) == ["a", "a/b.pem", "c"]
    assert (where / "a" / "b.pem").read_bytes() == b"B"
    assert stat.S_IMODE((where / "a" / "b.pem").stat().st_mode) == 0o400
    assert stat.S_IMODE(where.stat().st_mode) == 0o755


def test_a_required_missing_secret_holds_the_pod_until_it_exists(tmp_path: Path) -> None:
    objects: dict[tuple[str, str, str], Any] = {}
    pod = make_pod({"containers": [{"name": "app", "command": ["sleep", "30"]}]})
    kubelet, rt, sink = make_kubelet(tmp_path, pod)
    kubelet.lookup = lambda kind, ns, name: objects.get((kind, ns, name))  # as the watch cache
    rt.object_volumes = (Volume("tls", secret=SecretVolumeSource("certs")),
                         Volume("opt", config_map=ConfigMapVolumeSource("gone", optional=True)))
    root = podvolumes.pod_dir(kubelet.paths, "shop", "p")
    root.mkdir(parents=True)  # made at pod create
    status = until(kubelet, rt, lambda s: bool(sink.events))
    assert sink.events == [("FailedMount", 'MountVolume.SetUp failed for volume "tls" : '
                                           'secret "certs" not found')]
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    objects[("Secret", "shop", "certs")] = SECRET
    rt.containers[0].next_start = 0.0  # the retry, without waiting for its back-off
    until(kubelet, rt, lambda s: "running" in s["containerStatuses"][0]["state"])
    assert (podvolumes.empty_dir(root, "tls") / "tls.key").read_bytes() == b"KEY"
    assert list(podvolumes.empty_dir(root, "opt").iterdir()) == []  # optional, missing
    kubelet.shutdown()


@pytest.mark.parametrize("rel", ["../escaped", "a/../../escaped", "/etc/escaped", ""])
def test_write_never_puts_a_file_outside_the_volume(tmp_path: Path, rel: str) -> None:
    # The API refuses such keys and paths; this is the guard behind it (a stored object
    # from before that check, or a bug there, must still not write on the host).
    where = tmp_path / "pods" / "ns_p" / "volumes" / "v"
    with pytest.raises(ObjectVolumeError, match="outside the volume"):
        objectvolumes.write(where, {rel: (b"x", 0o644)})
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []
