"""wrk for the L7 benchmark: its command line (pinned, with headers) and what is wrong with a
run (errors, unexpected non-2xx); the report's parser and result are bench.l4.wrk's."""

from __future__ import annotations

from collections.abc import Sequence

from bench.l4.wrk import WrkOutputError, WrkResult, parse_wrk
from bench.l7.peers import pinned

__all__ = ["WrkOutputError", "WrkResult", "parse_wrk", "wrk_argv", "wrk_problem"]


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


def wrk_problem(result: WrkResult, denied: float = 0.0) -> str:
    """What is wrong with a wrk run ("" when nothing): any socket error; a non-2xx answer
    when none is expected, or a share of them more than 1 point off ``denied``."""
    refused = result.non_2xx / result.requests if result.requests else 0.0
    if sum(result.socket_errors.values()) or (
            abs(refused - denied) > 0.01 if denied else result.non_2xx):
        return (f"wrk saw {result.errors} errors ({result.socket_errors}, non-2xx "
                f"{result.non_2xx}, expected {denied:.1%} of {result.requests})")
    return ""
