"""Secret and ConfigMap volumes in the lab (the files pure, their writing thin I/O): a
kubelet's secret and configMap volume plugins, written into the pod's directory
(``pods/<ns>_<pod>/volumes/<name>``, lab/podvolumes.py) before the pod's first container
that needs them starts, and bound read-only.

Per volume: every key of the object at a file of its name, or only ``items`` (each key at
its ``path``, subdirectories made), each file with the item's ``mode`` or the volume's
``defaultMode`` (0644 when unset, the API's default). A missing object: an ``optional``
volume is an empty directory; otherwise the containers wait (``FailedMount``, retried) and
start once it exists. An item naming a missing key: the same, unless ``optional``.
Not emulated: refreshing the files when the object changes (a kubelet does, within its sync
period); the files are written once per pod. ConfigMap ``binaryData`` is written too.
"""

from __future__ import annotations

import base64
import binascii
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.model.core import Volume
from agent.model.core_container import KeyToPath

__all__ = ["DEFAULT_MODE", "ObjectVolumeError", "files", "object_ref", "write"]

DEFAULT_MODE = 0o644


class ObjectVolumeError(Exception):
    """The volume cannot be set up yet (the kubelet's FailedMount message)."""


@dataclass(frozen=True, slots=True)
class Ref:
    kind: str  # Secret or ConfigMap
    name: str
    items: tuple[KeyToPath, ...]
    default_mode: int
    optional: bool


def object_ref(volume: Volume) -> Ref | None:
    """The Secret or ConfigMap ``volume`` projects; None for other volume types."""
    if volume.secret is not None:
        s = volume.secret
        return Ref("Secret", s.secret_name, s.items, _mode(s.default_mode), bool(s.optional))
    if volume.config_map is not None:
        c = volume.config_map
        return Ref("ConfigMap", c.name, c.items, _mode(c.default_mode), bool(c.optional))
    return None


def _mode(mode: int | None) -> int:
    return DEFAULT_MODE if mode is None else mode


def _data(ref: Ref, obj: Mapping[str, Any]) -> dict[str, bytes]:
    """The object's keys as bytes (a Secret's ``data`` and a ConfigMap's ``binaryData``
    are base64 in the API; a ConfigMap's ``data`` is text)."""
    encoded = dict(obj.get("data") or {}) if ref.kind == "Secret" else dict(
        obj.get("binaryData") or {})
    out: dict[str, bytes] = {}
    for key, value in encoded.items():
        try:
            out[key] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            raise ObjectVolumeError(
                f"{ref.kind.lower()} {ref.name!r} key {key!r}: not base64") from None
    if ref.kind == "ConfigMap":
        out.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
    return out


def files(volume: str, ref: Ref, obj: Mapping[str, Any] | None) -> dict[str, tuple[bytes, int]]:
    """The volume's files (relative path -> content, mode); raises ObjectVolumeError with
    the kubelet's wording when it cannot be set up."""
    what = "secret" if ref.kind == "Secret" else "configmap"
    if obj is None:
        if ref.optional:
            return {}
        raise ObjectVolumeError(
            f'MountVolume.SetUp failed for volume "{volume}" : {what} "{ref.name}" not found')
    data = _data(ref, obj)
    if not ref.items:
        return {key: (value, ref.default_mode) for key, value in data.items()}
    out: dict[str, tuple[bytes, int]] = {}
    for item in ref.items:
        if item.key not in data:
            if ref.optional:
                continue
            raise ObjectVolumeError(
                f'MountVolume.SetUp failed for volume "{volume}" : {what} references '
                f"non-existent {'secret' if ref.kind == 'Secret' else 'config'} key: {item.key}")
        out[item.path] = (data[item.key], ref.default_mode if item.mode is None else item.mode)
    return out


def write(directory: Path, content: Mapping[str, tuple[bytes, int]]) -> None:
    """The volume's directory with exactly ``content`` (0755; subdirectories as needed)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(mode=0o755, parents=True)
    directory.chmod(0o755)
    for rel, (data, mode) in content.items():
        path = directory / rel
        # A second guard behind the API's key and path checks: never a file outside the volume.
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not rel:
            raise ObjectVolumeError(f"file {rel!r} would lie outside the volume")
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
