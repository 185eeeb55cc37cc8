"""cni.install: the DaemonSet's install-cni step. Chaining is pure and idempotent; a node
whose configuration cannot take the plugin gets the reason; the plugin written is a zipapp
the host's python3 runs without any installed package."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from cni.install import InstallError, chained, entry, install, main, pick

PTP = {"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]}}
CONFLIST = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [PTP]}
TULLE = entry("/var/run/tulle/cni", 0)


def test_the_plugin_goes_last_once() -> None:
    once = chained(CONFLIST, TULLE, "x")
    assert once["plugins"] == [PTP, TULLE] and once["name"] == "k8s-pod-network"
    assert chained(once, TULLE, "x") == once
    moved = chained({**CONFLIST, "plugins": [TULLE, PTP]}, TULLE, "x")
    assert moved["plugins"] == [PTP, TULLE]
    newer = chained(once, entry("/other", 10), "x")
    assert newer["plugins"] == [PTP, entry("/other", 10)]  # replaced, not added


@pytest.mark.parametrize(
    ("conf", "reason"),
    [
        ({"cniVersion": "1.0.0", "name": "n", "type": "bridge"}, "not a .conflist"),
        ({"name": "n", "plugins": "ptp"}, "not a .conflist"),
        ({"name": "n", "plugins": [TULLE]}, "no plugin before tulle-cni"),
        ({"name": "n", "plugins": []}, "no plugin before tulle-cni"),
    ],
)
def test_a_configuration_that_cannot_chain_is_refused(conf: dict[str, Any], reason: str) -> None:
    with pytest.raises(InstallError, match=reason):
        chained(conf, TULLE, "10-net.conf")


def test_the_runtimes_file_is_the_first_by_name(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="no CNI configuration yet"):
        pick(tmp_path)
    for name in ("20-b.conflist", "10-a.conf", "05-notes.txt", ".hidden.conflist.tmp"):
        (tmp_path / name).write_text("{}")
    assert pick(tmp_path).name == "10-a.conf"


def _node(tmp_path: Path, conf: dict[str, Any] | str) -> tuple[Path, Path]:
    confdir, bindir = tmp_path / "net.d", tmp_path / "bin"
    confdir.mkdir()
    text = conf if isinstance(conf, str) else json.dumps(conf)
    (confdir / "10-k8s.conflist").write_text(text)
    return confdir, bindir


def test_install_writes_the_plugin_and_chains_it_idempotently(tmp_path: Path) -> None:
    confdir, bindir = _node(tmp_path, CONFLIST)
    done = install(confdir, bindir, TULLE)
    assert done == [f"wrote {bindir}/tulle-cni",
                    f"chained tulle-cni last in {confdir}/10-k8s.conflist"]
    written = json.loads((confdir / "10-k8s.conflist").read_text())
    assert written["plugins"] == [PTP, TULLE]
    assert os.stat(bindir / "tulle-cni").st_mode & 0o777 == 0o755
    stamp = (confdir / "10-k8s.conflist").stat().st_mtime_ns
    assert install(confdir, bindir, TULLE) == [f"{confdir}/10-k8s.conflist already chains tulle-cni"]
    assert (confdir / "10-k8s.conflist").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in confdir.iterdir()) == ["10-k8s.conflist"]  # no temporaries


def test_the_plugin_runs_from_its_zip_alone(tmp_path: Path) -> None:
    """-I -S: no site-packages, so cni and pyroute2 come from the zipapp itself."""
    confdir, bindir = _node(tmp_path, CONFLIST)
    install(confdir, bindir, TULLE)
    plugin = bindir / "tulle-cni"
    assert plugin.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    version = subprocess.run(
        [sys.executable, "-I", "-S", str(plugin)], input=json.dumps(CONFLIST),
        capture_output=True, text=True, timeout=30, check=False,
        env={"CNI_COMMAND": "VERSION", "PATH": os.environ["PATH"]})
    assert version.returncode == 0, version.stderr
    assert "1.1.0" in json.loads(version.stdout)["supportedVersions"]
    imported = subprocess.run(
        [sys.executable, "-I", "-S", "-c",
         "import sys; sys.path.insert(0, sys.argv[1]); import cni.link, pyroute2; "
         "print(pyroute2.__file__)", str(plugin)],
        capture_output=True, text=True, timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(str(plugin))


@pytest.mark.parametrize(
    ("conf", "reason"),
    [("{not json", "cannot read it as JSON"), ("[1]", "not a JSON object"),
     (json.dumps({"name": "n", "type": "bridge"}), "not a .conflist")],
)
def test_the_command_names_what_is_wrong_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], conf: str, reason: str
) -> None:
    confdir, bindir = _node(tmp_path, conf)
    status = main(["--cni-conf-dir", str(confdir), "--cni-bin-dir", str(bindir)])
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("tulle-cni install: ") and reason in err
    assert (confdir / "10-k8s.conflist").read_text() == conf


def test_a_negative_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--cni-conf-dir", str(tmp_path), "--attach-timeout", "-1"])
    assert exit_.value.code == 2


def test_the_plugin_archive_depends_on_content_not_file_times() -> None:
    """Neither the clock nor a reinstalled package (same files, new mtimes) may make install
    rewrite the plugin."""
    from cni.install import SHEBANG, plugin_zip

    data = plugin_zip()
    with zipfile.ZipFile(io.BytesIO(data[len(SHEBANG):])) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    assert plugin_zip() == data
