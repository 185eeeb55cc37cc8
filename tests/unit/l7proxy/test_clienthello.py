"""The ClientHello reader: real ClientHellos (from Python's ssl) whole and fragmented,
hand-built ones, and what it refuses (malformed, truncated, oversized, not TLS), with a
fuzz test that it raises nothing but its own error."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l7proxy.clienthello import (
    MALFORMED,
    MAX_RECORD,
    NOT_A_CLIENT_HELLO,
    TOO_LARGE,
    ClientHello,
    ClientHelloError,
    ClientHelloReader,
)


def real_hello(server_name: str | None) -> bytes:
    """The first flight of a Python TLS client (TLS 1.3 with key shares)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def u8(b: bytes) -> bytes:
    return len(b).to_bytes(1, "big") + b


def u16(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def sni(*names: bytes, name_type: int = 0) -> bytes:
    entries = b"".join(bytes([name_type]) + u16(n) for n in names)
    return b"\x00\x00" + u16(u16(entries))


def body(extensions: bytes | None = b"", session: bytes = b"", suites: bytes = b"\x13\x01",
         compression: bytes = b"\x00") -> bytes:
    out = b"\x03\x03" + bytes(32) + u8(session) + u16(suites) + u8(compression)
    return out if extensions is None else out + u16(extensions)


def message(payload: bytes, kind: int = 1) -> bytes:
    return bytes([kind]) + len(payload).to_bytes(3, "big") + payload


def records(msg: bytes, size: int = MAX_RECORD, content_type: int = 22) -> bytes:
    chunks = [msg[i : i + size] for i in range(0, len(msg), size)] or [b""]
    return b"".join(bytes([content_type, 3, 1]) + u16(c) for c in chunks)


def read(data: bytes) -> ClientHello | None:
    return ClientHelloReader().feed(data)


def refused(data: bytes) -> str:
    with pytest.raises(ClientHelloError) as info:
        ClientHelloReader().feed(data)
    return info.value.reason


def test_a_real_client_hello_names_its_server() -> None:
    assert read(real_hello("db.example.com")) == ClientHello("db.example.com")


def test_a_real_client_hello_without_sni_has_no_name() -> None:
    assert read(real_hello(None)) == ClientHello(None)


def test_byte_by_byte_the_answer_comes_with_the_last_byte_and_every_byte_is_kept() -> None:
    data = real_hello("a.example.com")
    reader = ClientHelloReader()
    for i in range(len(data) - 1):
        assert reader.feed(data[i : i + 1]) is None
    assert reader.feed(data[-1:]) == ClientHello("a.example.com")
    assert bytes(reader.received) == data


@pytest.mark.parametrize("size", [1, 7, 100])
def test_a_client_hello_fragmented_over_records_is_reassembled(size: int) -> None:
    msg = message(body(sni(b"frag.example.com")))
    assert read(records(msg, size)) == ClientHello("frag.example.com")


def test_names_are_lowercased_without_a_trailing_dot() -> None:
    assert read(records(message(body(sni(b"DB.Example.COM."))))) == ClientHello("db.example.com")


def test_other_name_types_are_skipped_and_no_extensions_means_no_name() -> None:
    assert read(records(message(body(sni(b"x", name_type=7))))) == ClientHello(None)
    assert read(records(message(body(None)))) == ClientHello(None)
    assert read(records(message(body(b"\x00\x10" + u16(b"\x00\x02h2"))))) == ClientHello(None)


MALFORMED_CASES = {
    "two host names": records(message(body(sni(b"a.com", b"b.com")))),
    "empty name": records(message(body(sni(b"")))),
    "non-ascii name": records(message(body(sni("é.com".encode())))),
    "nul in name": records(message(body(sni(b"a\x00.com")))),
    "slash in name": records(message(body(sni(b"a/b.com")))),
    "name over 255": records(message(body(sni(b"a" * 256)))),
    "empty name list": records(message(body(b"\x00\x00" + u16(u16(b""))))),
    "list length lies": records(message(body(b"\x00\x00" + u16(b"\x00\x09\x00\x00\x01a")))),
    "repeated extension": records(message(body(sni(b"a.com") + sni(b"b.com")))),
    "extension overruns": records(message(body(b"") [:-2] + b"\x00\x08\x00\x00\x00\x10")),
    "bytes after extensions": records(message(body(sni(b"a.com")) + b"\x00")),
    "odd cipher suites": records(message(body(suites=b"\x13"))),
    "no cipher suites": records(message(body(suites=b""))),
    "no compression": records(message(body(compression=b""))),
    "long session id": records(message(body(session=bytes(33)))),
    "truncated random": records(message(b"\x03\x03" + bytes(10))),
    "empty record": bytes([22, 3, 1, 0, 0]),
    "record over 2^14": bytes([22, 3, 1]) + (MAX_RECORD + 1).to_bytes(2, "big"),
    "bytes after the message": records(message(body(sni(b"a.com"))) + b"\x00"),
}


@pytest.mark.parametrize("data", MALFORMED_CASES.values(), ids=MALFORMED_CASES.keys())
def test_malformed_client_hellos_are_refused(data: bytes) -> None:
    assert refused(data) == MALFORMED


NOT_HELLO_CASES = {
    "plain http": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "alert record": bytes([21, 3, 3, 0, 2, 2, 40]),
    "ssl 2 framing": b"\x80\x2e\x01\x00\x02",
    "server hello": records(message(body(), kind=2)),
}


@pytest.mark.parametrize("data", NOT_HELLO_CASES.values(), ids=NOT_HELLO_CASES.keys())
def test_what_is_not_a_client_hello_is_refused_from_its_first_bytes(data: bytes) -> None:
    assert refused(data) == NOT_A_CLIENT_HELLO


def test_a_client_hello_over_the_limit_is_refused_before_it_is_whole() -> None:
    reader = ClientHelloReader(max_bytes=4096)
    announced = message(body(sni(b"a.com") + b"\xff\x00" + u16(bytes(8000))))
    with pytest.raises(ClientHelloError) as info:
        reader.feed(records(announced, 1000)[:1500])
    assert info.value.reason == TOO_LARGE


def test_records_that_never_finish_a_message_are_bounded() -> None:
    reader = ClientHelloReader(max_bytes=2048)
    header = message(b"")[:1] + (100_000).to_bytes(3, "big")
    with pytest.raises(ClientHelloError) as info:
        reader.feed(records(header + bytes(3000), 500))
    assert info.value.reason == TOO_LARGE


def test_truncated_input_waits_for_more() -> None:
    data = real_hello("db.example.com")
    for cut in (1, 4, 5, 6, 9, len(data) // 2, len(data) - 1):
        assert ClientHelloReader().feed(data[:cut]) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bytes_raise_only_its_own_error(data: bytes) -> None:
    try:
        ClientHelloReader(max_bytes=1024).feed(data)
    except ClientHelloError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_real_hellos_raise_only_its_own_error(data: st.DataObject) -> None:
    hello = bytearray(records(message(body(sni(b"fuzz.example.com") + b"\x00\x10"
                                           + u16(b"\x00\x03\x02h2")))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(hello) - 1))
        hello[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(hello)))
    reader = ClientHelloReader()
    try:
        reader.feed(bytes(hello[:cut]))
        reader.feed(bytes(hello[cut:]))
    except ClientHelloError:
        pass
