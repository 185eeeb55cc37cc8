"""The agent's log: its own lines at INFO, the HTTP client's line per request left out (40+
lines during a first sync's lists), the HTTP client's warnings kept."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from agent.daemon import QUIET_LOGGERS, setup_logging


@pytest.fixture
def restored_levels() -> Iterator[None]:
    names = ("", "tulle.agent", *QUIET_LOGGERS)
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_the_http_clients_request_lines_are_left_out_and_its_warnings_kept(
    restored_levels: None,
) -> None:
    setup_logging("node1")
    logging.getLogger().setLevel(logging.INFO)  # what basicConfig sets (pytest's handler is in)
    http = logging.getLogger("httpx2")
    assert not http.isEnabledFor(logging.INFO)  # 'HTTP Request: GET ...' per request
    assert http.isEnabledFor(logging.WARNING)
    assert logging.getLogger("tulle.agent").isEnabledFor(logging.INFO)
    assert logging.getLogger("agent.kube.informer").isEnabledFor(logging.INFO)
