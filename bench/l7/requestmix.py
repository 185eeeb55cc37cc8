"""Requests that do not repeat, for issue 14's policy benchmark (pure: the sequence and the
wrk Lua script that sends it).

With one request repeated on every keep-alive connection, the waypoint's verdict memo
(``l7proxy.authz.AuthzGate.check``) judges it once and then only looks it up: the
benchmark would measure the memo, not the policies. Envoy's RBAC filter keeps no verdicts.
Here request ``n`` (1, 2, ... per wrk thread) carries ``n`` in its path, as REST ids do, so no
request repeats within a run and every one is judged. Its ``page`` query and
``x-client-version`` header vary too. One request in ``DENY_EVERY`` ends in ``/admin``
(``deny-admin-paths``) and another in ``DENY_EVERY`` says client version ``0.x``
(``deny-old-clients``). That is 2/16 = 12.5% answered 403 with the policies on, by a DENY
rule after reading the path or a header; the rest are allowed by the last ALLOW rule
after every rule has been tested.

``nth`` and ``lua_script`` describe the same sequence. The benchmark's preflight sends some
of ``nth``'s requests to every peer and checks their answers.
"""

from __future__ import annotations

from collections.abc import Sequence

DENY_EVERY = 16
"""Of each 16 consecutive requests, one has a denied path and one a denied header."""
PAGES = 7
VERSIONS = 13

Header = tuple[str, str]


def denied(n: int) -> bool:
    """Whether request ``n`` of the sequence is refused by the policies."""
    return n % DENY_EVERY in (0, DENY_EVERY // 2)


def nth(n: int, path: str, headers: Sequence[Header]) -> tuple[str, tuple[Header, ...]]:
    """Request ``n`` (from 1): its target (path and query) and headers, after ``headers``
    (the route's match)."""
    if n < 1:
        raise ValueError(f"request number {n}: the sequence starts at 1")
    version = f"1.{n % VERSIONS}"
    if n % DENY_EVERY == 0:
        target = f"{path}/{n}/admin"
    else:
        target = f"{path}/{n}?page={n % PAGES}"
        if n % DENY_EVERY == DENY_EVERY // 2:
            version = f"0.{n % VERSIONS}"
    return target, (*headers, ("x-client-version", version))


def _lua_string(text: str) -> str:
    if any(c in text for c in '"\\\n\r') or not text.isprintable():
        raise ValueError(f"{text!r}: not a plain header or path for the wrk script")
    return f'"{text}"'


def lua_script(path: str, headers: Sequence[Header]) -> str:
    """A wrk script whose ``request()`` sends ``nth(1)``, ``nth(2)``, ... on each thread
    (the benchmark runs one: ``-t1``). Each request is built in Lua as it is sent, on the
    load core, the same for both peers."""
    fixed = "".join(f"  h[{_lua_string(k)}] = {_lua_string(v)}\n" for k, v in headers)
    return f"""-- bench.l7.requestmix: request n has n in its path (no request repeats)
local base = {_lua_string(path)}
local n = 0
request = function()
  n = n + 1
  local h = {{}}
  h["Host"] = wrk.headers["Host"]
{fixed}  local version = "1." .. (n % {VERSIONS})
  local target
  if n % {DENY_EVERY} == 0 then
    target = base .. "/" .. n .. "/admin"
  else
    target = base .. "/" .. n .. "?page=" .. (n % {PAGES})
    if n % {DENY_EVERY} == {DENY_EVERY // 2} then
      version = "0." .. (n % {VERSIONS})
    end
  end
  h["x-client-version"] = version
  return wrk.format("GET", target, h)
end
"""
