"""wrk for the L7 benchmark: its command line (pinned, with headers); the report's parser and
result are bench.l4.wrk's."""

from __future__ import annotations

from collections.abc import Sequence

from bench.l4.wrk import WrkOutputError, WrkResult, parse_wrk
from bench.l7.peers import pinned

__all__ = ["WrkOutputError", "WrkResult", "parse_wrk", "wrk_argv"]


def wrk_argv(
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    threads: int = 1,
    connections: int = 32,
    seconds: int = 10,
    cpu: int | None = 0,
    script: str | None = None,
) -> list[str]:
    """``script``: a wrk Lua script (``-s``) that writes each request (``bench.l7.requestmix``);
    ``headers`` still go to the default request."""
    argv = pinned(cpu) if cpu is not None else []
    argv += ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv += ["--timeout", "5s"]
    if script is not None:
        argv += ["-s", script]
    for name, value in headers:
        argv += ["-H", f"{name}: {value}"]
    return [*argv, url]
