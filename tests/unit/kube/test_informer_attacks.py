"""The informer as a victim: a broken or malicious API server (a real HTTP server on loopback)
feeds it lists and watch streams with objects of the wrong shape, duplicated names, events
out of order and a stream cut mid-JSON. The informer must log, skip or relist, keep its last
good state and go on: never stop, never apply part of an object, never stall on a bad event."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lightkube import Client, KubeConfig

from agent.kube.backoff import Backoff
from agent.kube.cache import Cache, CacheError, key_of
from agent.kube.informer import Informer
from agent.kube.resources import resource_for


def svc(name: str, rv: int, port: int = 80) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)},
        "spec": {"ports": [{"port": port}]},
    }


def event(type_: str, obj: Any) -> bytes:
    return json.dumps({"type": type_, "object": obj}).encode()


@dataclass
class Script:
    """What the fake server answers: list bodies in turn (the last one repeats), and watch
    lines, each with the revision it comes after (a watch from N gets those after N)."""

    lists: list[bytes]
    watch: list[tuple[int, bytes]] = field(default_factory=list)
    tail: bytes = b""  # written after the watch lines, unterminated (a cut mid-JSON)
    requests: list[str] = field(default_factory=list)

    def list_body(self) -> bytes:
        listed = sum(1 for r in self.requests if "watch" not in r)
        return self.lists[min(listed, len(self.lists)) - 1]


def _handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            script.requests.append(self.path)
            query = parse_qs(urlsplit(self.path).query)
            if "watch" not in query:
                self._send(script.list_body())
                return
            since = int(query.get("resourceVersion", ["0"])[0])
            lines = [line for after, line in script.watch if after >= since]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            for line in lines:
                self.wfile.write(line + b"\n")
            self.wfile.write(script.tail)
            self.wfile.flush()
            self.close_connection = True

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _kubeconfig(port: int) -> dict[str, Any]:
    return {
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }


@pytest.fixture
def fake() -> Iterator[Callable[[Script], Informer[Any]]]:
    servers: list[ThreadingHTTPServer] = []
    informers: list[tuple[Informer[Any], threading.Thread]] = []

    def start(script: Script) -> Informer[Any]:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(script))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        client = Client(
            config=KubeConfig.from_dict(_kubeconfig(server.server_address[1])),
            timeout=5,
        )
        informer = Informer(
            client, resource_for("Service"), watch_timeout=1, backoff=Backoff(0.01, 0.05)
        )
        thread = threading.Thread(target=informer.run, daemon=True)
        thread.start()
        informers.append((informer, thread))
        return informer

    try:
        yield start
    finally:
        for informer, thread in informers:
            informer.stop()
            thread.join(5)
            assert not thread.is_alive()
        for server in servers:
            server.shutdown()
            server.server_close()


def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def _names(informer: Informer[Any]) -> dict[str, int]:
    return {
        name: int(obj["metadata"]["resourceVersion"])
        for (_, name), obj in informer.cache.objects.items()
    }


def _list(*items: Any, rv: Any = "10") -> bytes:
    return json.dumps(
        {"kind": "ServiceList", "metadata": {"resourceVersion": rv}, "items": list(items)}
    ).encode()


def test_a_list_with_malformed_items_keeps_the_good_ones(
    fake: Callable[[Script], Informer[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    body = _list(
        svc("a", 3),
        5,
        "x",
        None,
        [svc("z", 4)],
        {"metadata": "nope"},
        {"metadata": {"name": {"not": "a string"}, "resourceVersion": "4"}},
        {"metadata": {"name": "b", "namespace": ["default"], "resourceVersion": "4"}},
        {"metadata": {"name": "c", "namespace": "default", "resourceVersion": "soon"}},
        svc("d", 5),
        svc("a", 6, port=81),  # the same name twice: the later one stands, once
    )
    informer = fake(Script([body]))
    assert informer.synced.wait(10)
    assert _names(informer) == {"a": 6, "d": 5}
    assert informer.cache.get("default", "a")["spec"]["ports"] == [{"port": 81}]
    assert informer.cache.revision == 10
    assert "ignoring a listed object" in caplog.text


@pytest.mark.parametrize(
    "bad",
    [
        b"[]",
        b'"x"',
        b"null",
        b'{"items": "x"}',
        b'{"items": {"a": 1}}',
        b'{"metadata": {"resourceVersion": "abc"}, "items": []}',
        b'{"metadata": "x", "items": [',
    ],
)
def test_an_unreadable_list_is_retried_until_the_server_mends(
    fake: Callable[[Script], Informer[Any]], bad: bytes
) -> None:
    informer = fake(Script([bad, bad, _list(svc("a", 3))]))
    assert informer.synced.wait(10)
    assert _names(informer) == {"a": 3}


def test_bad_watch_events_are_skipped_not_replayed_for_ever(
    fake: Callable[[Script], Informer[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    script = Script(
        [_list(svc("a", 3))],
        watch=[
            (10, event("ADDED", svc("b", 11))),
            (11, event("ADDED", 5)),  # no revision to skip past: undecodable
            (11, event("MODIFIED", "x")),
            (11, event("MODIFIED", None)),
            (11, event("ADDED", {"metadata": {"name": ["b"], "resourceVersion": "12"}})),
            (11, event("WEIRD", svc("a", 12))),
            (12, event("MODIFIED", svc("a", 13, port=8080))),
            (13, event("ADDED", svc("b", 9, port=1))),  # older than the cache: out of order
            (13, event("DELETED", svc("nope", 14))),
            (14, event("ADDED", svc("c", 15))),
        ],
    )
    informer = fake(script)
    assert informer.synced.wait(10)
    assert _until(lambda: informer.cache.revision >= 15)
    assert _names(informer) == {"a": 13, "b": 11, "c": 15}
    assert informer.cache.get("default", "a")["spec"]["ports"] == [{"port": 8080}]
    assert informer.cache.get("default", "b")["spec"]["ports"] == [{"port": 80}]
    assert "skipping an undecodable ADDED event" in caplog.text


def test_a_stream_cut_mid_json_applies_nothing_of_it_and_watches_again(
    fake: Callable[[Script], Informer[Any]],
) -> None:
    cut = event("MODIFIED", svc("a", 12, port=9))[:-20]
    script = Script([_list(svc("a", 3))], watch=[(10, event("ADDED", svc("b", 11)))], tail=cut)
    informer = fake(script)
    assert informer.synced.wait(10)
    assert _until(lambda: sum("watch" in r for r in script.requests) >= 3)
    assert _names(informer) == {"a": 3, "b": 11}
    assert informer.cache.get("default", "a")["spec"]["ports"] == [{"port": 80}]
    watches = [parse_qs(urlsplit(r).query) for r in script.requests if "watch" in r]
    assert {w["resourceVersion"][0] for w in watches[1:]} == {"11"}  # resumed, not relisted


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
_metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": _json | st.text(max_size=3),
        "namespace": _json,
        "resourceVersion": _json | st.integers(0, 20).map(str),
    },
)
_objects = _json | st.fixed_dictionaries({"metadata": _metadata | _json})


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "X"]), _objects),
        max_size=12,
    )
)
def test_the_cache_takes_any_event_or_says_why(events: list[tuple[str, Any]]) -> None:
    """Whatever a watch delivers, the cache applies it whole or raises CacheError (which the
    informer logs and skips); what it holds stays well-formed."""
    cache: Cache[Any] = Cache()
    for type_, obj in events:
        try:
            cache.apply(type_, obj)
        except CacheError:
            pass
        for (namespace, name), held in cache.objects.items():
            assert isinstance(namespace, str) and isinstance(name, str) and name
            assert key_of(held) == (namespace, name)
