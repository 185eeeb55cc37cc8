"""`tulle observe --http-path` refuses what RE2 cannot run in linear time, before any I/O
(issue 9, item 6)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agent.cli.observe import observe


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("/(a)/\\1", "backreferences"),
        ("/x(?=y)", "lookahead"),
        ("/" + "a" * 1024, "limited to 1024 bytes"),
    ],
)
def test_http_path_with_unsupported_regex_is_a_usage_error(pattern: str, why: str) -> None:
    result = CliRunner().invoke(observe, ["--http-path", pattern, "--input-file", "-"], input="")
    assert result.exit_code == 2, result.output
    assert "http path: regular expression" in result.output and why in result.output
