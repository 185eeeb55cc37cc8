"""The runtime's side of CNI (what libcni does for containerd and CRI-O), for the lab's
kubelet and the tests: run a .conflist's plugins in order for ADD and CHECK, in reverse for
DEL, each with the network's name and cniVersion and the previous result as ``prevResult``.

Kept small and literal: no result caching (the caller keeps ADD's result and hands it to
CHECK and DEL), no capabilities/runtimeConfig, no version conversion (every plugin in the
list must speak the list's cniVersion). A failed ADD is not undone here: like a kubelet, the
caller runs DEL.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXEC_TIMEOUT = 60.0  # a plugin that hangs longer than this fails the operation


class ChainError(Exception):
    """A plugin failed: its type, command, and the SPEC error object it printed."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        super().__init__(
            f"{plugin} {command}: [{code}] {msg}" + (f": {details}" if details else "")
        )
        self.plugin, self.command, self.code, self.msg, self.details = (
            plugin,
            command,
            code,
            msg,
            details,
        )


@dataclass(frozen=True, slots=True)
class Attachment:
    """One pod's interface on the network: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Chain:
    """A network configuration list and where its plugins live.

    ``prefix`` is prepended to every plugin's argv, e.g. ``["ip", "netns", "exec", "node-1"]``
    to run the chain in a node's network namespace rather than this process's.
    """

    conflist: Mapping[str, Any]
    cni_path: Sequence[str]
    prefix: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for plugins

    def __post_init__(self) -> None:
        for key in ("name", "cniVersion", "plugins"):
            if key not in self.conflist:
                raise ValueError(f"conflist has no {key!r}")
        if not self.conflist["plugins"]:
            raise ValueError("conflist has no plugins")

    def add(self, att: Attachment) -> dict[str, Any]:
        """Every plugin's ADD in order; the last one's result is the attachment's result."""
        result: dict[str, Any] | None = None
        for plugin in self.conflist["plugins"]:
            out = self._exec("ADD", plugin, att, result)
            result = json.loads(out) if out.strip() else result
        if result is None:
            raise ChainError(self.conflist["plugins"][-1]["type"], "ADD", 0, "no result")
        return result

    def check(self, att: Attachment, result: Mapping[str, Any]) -> None:
        if self.conflist.get("disableCheck"):
            return
        for plugin in self.conflist["plugins"]:
            self._exec("CHECK", plugin, att, result)

    def delete(self, att: Attachment, result: Mapping[str, Any] | None) -> None:
        for plugin in reversed(self.conflist["plugins"]):
            self._exec("DEL", plugin, att, result)

    def _config(self, plugin: Mapping[str, Any], prev: Mapping[str, Any] | None) -> bytes:
        conf = dict(plugin)
        conf["name"] = self.conflist["name"]
        conf["cniVersion"] = self.conflist["cniVersion"]
        if prev is not None:
            conf["prevResult"] = prev
        return json.dumps(conf).encode()

    def _find(self, kind: str) -> str:
        for directory in self.cni_path:
            path = Path(directory) / kind
            if os.access(path, os.X_OK):
                return str(path)
        raise ChainError(kind, "exec", 0, "plugin not found", f"CNI_PATH {list(self.cni_path)}")

    def _exec(
        self,
        command: str,
        plugin: Mapping[str, Any],
        att: Attachment,
        prev: Mapping[str, Any] | None,
    ) -> str:
        kind = str(plugin["type"])
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            **self.env,
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": att.container_id,
            "CNI_NETNS": att.netns,
            "CNI_IFNAME": att.ifname,
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in att.args.items()),
            "CNI_PATH": ":".join(self.cni_path),
        }
        proc = subprocess.run(
            [*self.prefix, self._find(kind)],
            input=self._config(plugin, prev),
            env=env,
            capture_output=True,
            timeout=EXEC_TIMEOUT,
        )
        out = proc.stdout.decode(errors="replace")
        if proc.returncode == 0:
            return out
        try:
            err = json.loads(out)
            code, msg, details = int(err["code"]), str(err.get("msg", "")), err.get("details", "")
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ChainError(
                kind,
                command,
                0,
                f"exit {proc.returncode}",
                (out + proc.stderr.decode(errors="replace")).strip(),
            ) from None
        raise ChainError(kind, command, code, msg, str(details))
