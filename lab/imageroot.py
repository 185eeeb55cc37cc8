"""The lab's stand-in for a container image (pure but for ``Image.of``): images cannot be
pulled here, so a container in a mount namespace runs the lab's own Python installation,
bound read-only at fixed paths inside its private /run tmpfs:

    /run/tulle-image/src    the source root this lab runs from (PYTHONPATH)
    /run/tulle-image/venv   the venv of the kubelet's interpreter (its bin/ first on PATH)

Never the checkout's own paths: a pod that mounts an emptyDir at /tmp (the agent
DaemonSet's ``tmp`` volume) hides a checkout under /tmp, and its .venv with it ("python: No
such file or directory" in CI). A venv works from another path: python finds ``pyvenv.cfg``
beside the directory of the executable it was started as (``bin/python3`` is a symlink to
the system interpreter; the venv is where the symlink lies, not where it points), so
``sys.prefix`` becomes the bound venv and its site-packages are found there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from lab.podvolumes import Bind

__all__ = ["IMAGE_ROOT", "SRC", "VENV", "Image"]

IMAGE_ROOT = "/run/tulle-image"
SRC = f"{IMAGE_ROOT}/src"
VENV = f"{IMAGE_ROOT}/venv"


@dataclass(frozen=True, slots=True)
class Image:
    """What the lab binds into a container as its image."""

    source_root: Path  # holds the packages (agent, lab, ...) the lab runs
    venv: Path | None  # the interpreter's venv; None: a system interpreter (/usr stays visible)
    python: str  # the kubelet's interpreter, as given (a path on the machine)

    @classmethod
    def of(cls, python: str) -> Image:
        """The image for interpreter ``python`` (its venv: the directory above its bin/
        holding ``pyvenv.cfg``, symlinks in the venv's own path resolved, the
        interpreter's own link not)."""
        source_root = Path(__file__).resolve().parent.parent
        bindir = Path(os.path.realpath(os.path.dirname(os.path.abspath(python))))
        venv = bindir.parent if (bindir.parent / "pyvenv.cfg").is_file() else None
        return cls(source_root, venv, python)

    def binds(self) -> tuple[Bind, ...]:
        """Read-only binds below /run (the container's tmpfs: the mountpoints are made
        there, never on the host); not lab-owned: nothing is ever made inside them."""
        src = Bind(self.source_root, SRC, True, False)
        return (src,) if self.venv is None else (src, Bind(self.venv, VENV, True, False))

    def container_python(self) -> str:
        """The interpreter's path inside the container."""
        if self.venv is None:
            return self.python
        return f"{VENV}/bin/{os.path.basename(self.python)}"

    def env(self, env: Mapping[str, str], declared: set[str]) -> dict[str, str]:
        """``env`` with PATH (the venv's bin/ first: manifests run ``python3 -m ...``) and
        PYTHONPATH (the source root: ``-m`` would import from the working directory
        otherwise) unless the container sets them itself."""
        path = env.get("PATH", "/usr/bin:/bin")
        extra = {
            "PATH": path if self.venv is None else f"{VENV}/bin:{path}",
            "PYTHONPATH": SRC,
        }
        return {**env, **{k: v for k, v in extra.items() if k not in declared}}
