"""Which cluster a CLI invocation talks to, and the lightkube client for it.

The kubeconfig is chosen as kubectl would, with the lab slotted in where a Tulle user expects:

1. ``--kubeconfig PATH``;
2. ``--lab NAME`` or ``$TULLE_LAB``: that lab's kubeconfig (``tulle lab kubeconfig``), an error
   when that lab is not up. Naming a lab is more specific than a kubeconfig in the environment;
3. ``$KUBECONFIG`` (a ``:``-separated list, merged as kubectl merges it);
4. the default lab's kubeconfig when that lab is up;
5. ``~/.kube/config``;
6. in-cluster config (a pod's ServiceAccount).

``--context`` picks a context inside the chosen kubeconfig. No command here opens the lab's
store: the lab is reached through its API server like any cluster.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from lab.state import DEFAULT_LAB

F = TypeVar("F", bound=Callable[..., Any])
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
HOME_KUBECONFIG = Path("~/.kube/config")
# kubeconfig fields that hold file names, relative to the file that names them.
_PATH_FIELDS = {
    "clusters": ("cluster", ("certificate-authority",)),
    "users": ("user", ("client-certificate", "client-key", "tokenFile")),
}


def lab_name(ctx: click.Context) -> str:
    return str(ctx.find_root().params.get("lab") or os.environ.get("TULLE_LAB") or DEFAULT_LAB)


@dataclass(frozen=True, slots=True)
class Choice:
    """The kubeconfig files to merge (empty: in-cluster config) and why they were chosen."""

    paths: tuple[Path, ...]
    why: str


def choose(
    *,
    flag: str | None,
    lab: str | None,
    env: Mapping[str, str],
    lab_kubeconfig: Callable[[str], Path],
    home: Path,
    in_cluster: bool,
) -> Choice:
    """Pure: the precedence in the module docstring. ``lab`` is ``--lab`` as given (None when
    absent); ``lab_kubeconfig(name)`` is where that lab's kubeconfig would be."""
    if flag:
        return Choice((Path(flag),), "--kubeconfig")
    named = lab or env.get("TULLE_LAB")
    if named:
        path = lab_kubeconfig(named)
        if not path.exists():
            raise click.ClickException(
                f"lab {named!r} is not up (no kubeconfig at {path}); start it with "
                f"`tulle lab up --name {named}`, or give --kubeconfig"
            )
        return Choice((path,), f"lab {named!r}")
    listed = [Path(p) for p in env.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return Choice(tuple(listed), "$KUBECONFIG")
    default_lab = lab_kubeconfig(DEFAULT_LAB)
    if default_lab.exists():
        return Choice((default_lab,), f"lab {DEFAULT_LAB!r}")
    if home.exists():
        return Choice((home,), str(HOME_KUBECONFIG))
    if in_cluster:
        return Choice((), "in-cluster config")
    raise click.ClickException(
        f"no cluster to talk to: no lab named {DEFAULT_LAB!r} is up, and there is no "
        f"--kubeconfig, $KUBECONFIG, {HOME_KUBECONFIG} or in-cluster config. "
        "Start a lab with `tulle lab up`, or point --kubeconfig at a cluster."
    )


def merge(configs: Sequence[tuple[Path, Mapping[str, Any]]]) -> dict[str, Any]:
    """Pure: kubectl's merge of a $KUBECONFIG list: the first file to name an entry (or to set
    current-context) wins; relative file names resolve against the file that holds them."""
    merged: dict[str, Any] = {"apiVersion": "v1", "kind": "Config"}
    for path, config in configs:
        if not isinstance(config, Mapping):
            raise click.ClickException(f"{path}: not a kubeconfig (expected a mapping)")
        if config.get("current-context") and "current-context" not in merged:
            merged["current-context"] = config["current-context"]
        for section in ("clusters", "users", "contexts"):
            entries = merged.setdefault(section, [])
            taken = {e.get("name") for e in entries}
            for entry in config.get(section) or []:
                if not isinstance(entry, Mapping) or entry.get("name") in taken:
                    continue
                entries.append(_absolute(section, dict(entry), path.parent))
                taken.add(entry.get("name"))
    return merged


def _absolute(section: str, entry: dict[str, Any], base: Path) -> dict[str, Any]:
    inner_key, fields = _PATH_FIELDS.get(section, ("", ()))
    inner = entry.get(inner_key)
    if isinstance(inner, Mapping):
        inner = dict(inner)
        for field in fields:
            value = inner.get(field)
            if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                inner[field] = str(base / value)
        entry[inner_key] = inner
    return entry


def cluster_options(func: F) -> F:
    """``--kubeconfig`` and ``--context`` on a command (they may also come before the verb)."""
    func = click.option(
        "--context", "context_name", default=None, help="The kubeconfig context to use."
    )(func)
    return click.option(
        "--kubeconfig",
        default=None,
        type=click.Path(dir_okay=False),
        help="Kubeconfig file (default: see `tulle --help`).",
    )(func)


def choice_for(ctx: click.Context, kubeconfig: str | None = None) -> Choice:
    from lab.lifecycle import kubeconfig_path

    root = ctx.find_root()
    return choose(
        flag=kubeconfig or root.params.get("kubeconfig"),
        lab=root.params.get("lab"),
        env=os.environ,
        lab_kubeconfig=kubeconfig_path,
        home=HOME_KUBECONFIG.expanduser(),
        in_cluster=IN_CLUSTER_TOKEN.exists() and "KUBERNETES_SERVICE_HOST" in os.environ,
    )


def load(choice: Choice) -> Any:
    """The lightkube KubeConfig for ``choice``; a missing or broken file is a clear error."""
    from lightkube import ConfigError, KubeConfig

    try:
        if not choice.paths:
            return KubeConfig.from_service_account()
        configs = []
        for path in choice.paths:
            full = path.expanduser()
            if not full.is_file():
                if len(choice.paths) > 1:
                    continue  # kubectl skips missing files in a $KUBECONFIG list
                raise click.ClickException(f"kubeconfig {path} ({choice.why}) does not exist")
            configs.append((full, yaml.safe_load(full.read_text()) or {}))
        if not configs:
            raise click.ClickException(f"none of the kubeconfig files in {choice.why} exist")
        return KubeConfig.from_dict(merge(configs), fname=configs[0][0])
    except (ConfigError, OSError, yaml.YAMLError, KeyError, TypeError) as err:
        raise click.ClickException(f"cannot read kubeconfig ({choice.why}): {err}") from err
