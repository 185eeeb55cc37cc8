"""The node pair's shared session key (``l7proxy.session.shared_key``): made once, read by
the second waypoint and after a restart, private, and a damaged file refused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from l7proxy.session import KEY_BYTES, shared_key


def test_made_once_then_read(tmp_path: Path) -> None:
    path = tmp_path / "waypoint.lock.session-key"
    first = shared_key(path)
    assert len(first) == KEY_BYTES
    assert shared_key(path) == first  # the standby, or the next start
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left


def test_a_damaged_key_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="key"):
        shared_key(path)
