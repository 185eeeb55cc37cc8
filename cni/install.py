"""``python3 -m cni.install``: what the DaemonSet's install-cni init container runs on a node
(deploy/components/cni-chaining). It puts ``tulle-cni`` into the host's CNI bin directory and
chains it last in the node's network configuration, as Cilium's generic-veth chaining does.

- The plugin runs on the host, under the host's ``python3`` (3.11 or later), not in the
  image: it is written as a zipapp of ``cni/`` with pyroute2 (pure Python) inside, so the
  host needs no package but the interpreter.
- The configuration is the file the runtime uses: libcni takes the first ``.conf``,
  ``.conflist`` or ``.json`` of the directory by name. Chaining needs a ``.conflist``: a
  single-plugin ``.conf`` is refused with the reason, never rewritten into another file that
  would sort differently.
- Idempotent: an earlier ``tulle-cni`` entry is replaced, not added again; an unchanged
  file is not rewritten. Writes are atomic (a hidden temporary, then a rename), so the
  runtime never reads half a file.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cni.spec import DEFAULT_STATE_DIR
from cni.store import write_atomic

PLUGIN_TYPE = "tulle-cni"
CONFIG_SUFFIXES = (".conf", ".conflist", ".json")  # libcni's ConfFiles
SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = b"from cni.main import main\nmain()\n"
PACKAGES = ("cni", "pyroute2")


class InstallError(Exception):
    """The node's CNI configuration cannot take the plugin; the message says why."""


def chained(conflist: Mapping[str, Any], entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``conflist`` with ``entry`` last among its plugins, any earlier tulle-cni removed.
    Pure."""
    plugins = conflist.get("plugins")
    if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
        raise InstallError(f"{where}: not a .conflist (no \"plugins\" list): tulle-cni chains "
                           "after the cluster's CNI in a plugin list")
    others = [p for p in plugins if p.get("type") != PLUGIN_TYPE]
    if not others:
        raise InstallError(f"{where}: no plugin before tulle-cni: the cluster's CNI (ptp, "
                           "bridge, Calico, flannel...) must give pods their veth first")
    return {**conflist, "plugins": [*others, dict(entry)]}


def pick(confdir: Path) -> Path:
    """The configuration file the runtime uses: the first by name."""
    found = sorted(p for p in confdir.iterdir()
                   if p.suffix in CONFIG_SUFFIXES and p.is_file()) if confdir.is_dir() else []
    if not found:
        raise InstallError(f"{confdir}: no CNI configuration yet: the cluster's CNI writes it "
                           "first (this container is restarted until it does)")
    return found[0]


def entry(state_dir: str, attach_timeout: float) -> dict[str, Any]:
    return {"type": PLUGIN_TYPE, "stateDir": state_dir, "attachTimeout": attach_timeout}


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def plugin_zip() -> bytes:
    """tulle-cni as a zipapp: a shebang, then ``cni/`` and ``pyroute2/`` (their .py files)
    and a ``__main__``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("__main__.py", _ZIP_EPOCH), MAIN)
        for package in PACKAGES:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise InstallError(f"package {package} is not installed in this image")
            root = Path(next(iter(spec.submodule_search_locations)))
            for source in sorted(root.rglob("*.py")):
                # Fixed timestamps (writestr with a name would stamp the clock): the archive
                # depends on content alone, so install stays idempotent across seconds and
                # a reinstalled package (same files, new mtimes) does not rewrite it.
                entry = zipfile.ZipInfo(
                    (Path(package) / source.relative_to(root)).as_posix(), _ZIP_EPOCH
                )
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, source.read_bytes())
    return SHEBANG + buffer.getvalue()


def install(confdir: Path, bindir: Path, plugin: Mapping[str, Any]) -> list[str]:
    """Write the plugin and chain it; what was done, one line each."""
    done = []
    binary = bindir / PLUGIN_TYPE
    data = plugin_zip()
    if not binary.is_file() or binary.read_bytes() != data:
        write_atomic(binary, data, mode=0o755)
        done.append(f"wrote {binary}")
    path = pick(confdir)
    try:
        current = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InstallError(f"{path}: cannot read it as JSON: {err}") from None
    if not isinstance(current, dict):
        raise InstallError(f"{path}: not a JSON object")
    wanted = chained(current, plugin, str(path))
    if wanted != current:
        write_atomic(path, (json.dumps(wanted, indent=2) + "\n").encode(), mode=0o644)
        done.append(f"chained {PLUGIN_TYPE} last in {path}")
    else:
        done.append(f"{path} already chains {PLUGIN_TYPE}")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m cni.install", description=__doc__)
    parser.add_argument("--cni-conf-dir", type=Path, default=Path("/host/etc/cni/net.d"))
    parser.add_argument("--cni-bin-dir", type=Path, default=Path("/host/opt/cni/bin"))
    parser.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                        help="the plugin's stateDir, as the host sees it (the agent's hostPath)")
    parser.add_argument("--attach-timeout", type=float, default=0.0,
                        help="seconds ADD waits for the agent (0: it does not wait)")
    args = parser.parse_args(argv)
    if args.attach_timeout < 0:
        parser.error("--attach-timeout must be 0 or more")
    try:
        for line in install(args.cni_conf_dir, args.cni_bin_dir,
                            entry(args.state_dir, args.attach_timeout)):
            print(f"tulle-cni install: {line}")
    except (InstallError, OSError) as err:
        print(f"tulle-cni install: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
