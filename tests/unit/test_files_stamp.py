"""`agent.files.stamp`, what the certificate reloaders compare before re-reading their files:
the same while nothing changes, different when a file is rewritten, replaced the way a Secret
volume does it (a symlink swapped to a new directory), created or removed."""

from __future__ import annotations

import os
from pathlib import Path

from agent.files import stamp


def test_unchanged_files_keep_their_stamp(tmp_path: Path) -> None:
    a, b = tmp_path / "tls.crt", tmp_path / "tls.key"
    a.write_text("cert")
    b.write_text("key")
    assert stamp([a, b]) == stamp([a, b])


def test_a_rewrite_changes_the_stamp(tmp_path: Path) -> None:
    a = tmp_path / "tls.crt"
    a.write_text("cert")
    before = stamp([a])
    a.write_text("a longer certificate")
    assert stamp([a]) != before


def test_a_secret_volume_swap_changes_the_stamp(tmp_path: Path) -> None:
    for gen in ("..2026_1", "..2026_2"):
        (tmp_path / gen).mkdir()
        (tmp_path / gen / "tls.crt").write_text("same size")
    os.symlink("..2026_1", tmp_path / "..data")
    link = tmp_path / "tls.crt"
    os.symlink("..data/tls.crt", link)
    before = stamp([link])
    os.symlink("..2026_2", tmp_path / "..data.tmp")
    os.replace(tmp_path / "..data.tmp", tmp_path / "..data")
    assert stamp([link]) != before  # same name and size: the inode tells


def test_a_file_appearing_or_going_changes_the_stamp(tmp_path: Path) -> None:
    a, b = tmp_path / "ca.crt", tmp_path / "bundle.pem"
    a.write_text("ca")
    only_a = stamp([a, b])
    b.write_text("bundle")
    both = stamp([a, b])
    assert both != only_a
    a.unlink()
    assert stamp([a, b]) not in (only_a, both)
    assert stamp([tmp_path / "missing"]) == ()
