"""Session persistence on the response (``gatewayapi/session.py`` decides the rest): the
token for the endpoint the request actually reached, unless the client already holds the
right one. A cookie is set only when the session starts or moves (its Max-Age, for a
Permanent cookie, counts from then: the absolute timeout); a header token is returned on
every response, since a client has nowhere else to keep it.

``shared_key`` gives the two waypoints of a node (active and standby, ``RESTART.md``) one
key kept beside their lock, so a takeover or a restart keeps every session."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from gatewayapi import Forward
from gatewayapi.session import SessionKey, cookie_path

if TYPE_CHECKING:
    from l7proxy.exchange import RawHeaders

Address = tuple[str, int]


def session_field(
    sessions: SessionKey, fwd: Forward, endpoint: Address | None
) -> tuple[bytes, bytes] | None:
    """The field to add to the response of ``fwd`` sent to ``endpoint`` (None: none)."""
    rule = fwd.selection.rule
    policy = rule.session
    if policy is None or endpoint is None:
        return None
    pin = fwd.pin
    kept = pin is not None and pin.endpoint == endpoint
    if kept and policy.cookie:
        return None
    if kept and pin is not None:
        token = pin.token
    else:
        try:
            token = sessions.issue(policy, fwd.backend_index, endpoint, sessions.clock())
        except ValueError:  # not an IP address (a test's resolver): nothing to pin
            return None
    match = rule.matches[fwd.selection.match_index] if rule.matches else None
    name, value = policy.response_header(token, cookie_path(match), fwd.request.scheme == "https")
    return name.encode("latin-1"), value.encode("latin-1")


def add_session_field(
    sessions: SessionKey, fwd: Forward, endpoint: Address | None, headers: RawHeaders
) -> None:
    """Append the session's field to ``headers`` (the response's, after the filters)."""
    found = session_field(sessions, fwd, endpoint)
    if found is not None:
        headers.append(found)


KEY_BYTES = 32


def shared_key(path: Path) -> bytes:
    """The key in ``path`` (mode 0600), made there first if absent. Written to a private
    temporary file and linked into place: of two processes starting together one links,
    the other finds the whole key, never a partial one."""
    with contextlib.suppress(FileNotFoundError):
        return _read_key(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, os.urandom(KEY_BYTES))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # the other waypoint's came first: use it
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path}: a session key file holds {KEY_BYTES} bytes, not {len(key)}")
    return key
