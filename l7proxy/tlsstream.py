"""``TlsStream``: an ``SSLObject`` on memory BIOs between the accepted socket and the
HTTP/1.1 connection (ciphertext in from the socket, plaintext out to the application),
with the handshake timeout and refusals reported to the ``TlsTerminator``."""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from l7proxy.tlscerts import TlsPort

if TYPE_CHECKING:
    from l7proxy.tls import TlsTerminator

Address = tuple[str, int]
READ_SIZE = 256 * 1024
HANDSHAKE_FAILED = "TLS_HANDSHAKE_FAILED"
HANDSHAKE_TIMEOUT = "TLS_HANDSHAKE_TIMEOUT"


class TlsStream(asyncio.Protocol, asyncio.Transport):
    """The socket's protocol (ciphertext) and the application's transport (plaintext)."""

    def __init__(
        self,
        terminator: TlsTerminator,
        raw: asyncio.Transport,
        app: asyncio.Protocol,
        port: TlsPort,
        client: Address,
        local: Address,
    ) -> None:
        super().__init__()
        self.terminator = terminator
        self.raw = raw
        self.app = app
        self.port = port
        self.client = client
        self.local = local
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        first = port.dispatch or terminator._dispatch
        self.sslobj = first.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.sslobj.stream = self  # type: ignore[attr-defined]
        self.server_name: str | None = None
        self.listener: str | None = None
        """The listener SNI chose; requests whose Host is another listener's get 421."""
        self.refusal: tuple[str, str] | None = None
        self.handshaken = False
        self.closed = False
        self.reading_paused = False
        self.pending: list[bytes] = []
        loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = loop.call_later(
            terminator.handshake_timeout, self._handshake_timeout
        )

    # --- from the socket ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.incoming.write(data)
        if not self.handshaken and not self._handshake():
            return
        self._deliver()

    def eof_received(self) -> bool | None:
        self.incoming.write_eof()
        if self.handshaken:
            self._deliver()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.app.connection_lost(exc)

    def pause_writing(self) -> None:
        self.app.pause_writing()

    def resume_writing(self) -> None:
        self.app.resume_writing()

    def _handshake(self) -> bool:
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return False
        except (ssl.SSLError, OSError) as exc:
            self._flush()
            reason, summary = self.refusal or (HANDSHAKE_FAILED, _ssl_reason(exc))
            self._refuse(reason, summary)
            return False
        self.handshaken = True
        self._cancel_timer()
        self.terminator.metrics.handshakes += 1
        pending, self.pending = self.pending, []
        for data in pending:
            self.sslobj.write(data)
        self._flush()
        return True

    def _deliver(self) -> None:
        while not self.reading_paused and not self.closed:
            try:
                data = self.sslobj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.close()  # close_notify: the client is done
                break
            except (ssl.SSLError, OSError):
                self.abort()
                break
            if not data:
                self.close()
                break
            self.app.data_received(data)
        self._flush()

    def _refuse(self, reason: str, summary: str) -> None:
        if self.server_name and self.server_name not in summary:
            summary += f" (SNI {self.server_name})"
        self.terminator.refused(self, reason, summary)
        self.closed = True
        self.raw.close()  # the alert was flushed

    def _handshake_timeout(self) -> None:
        self.timer = None
        if not self.handshaken and not self.closed:
            self.terminator.refused(self, HANDSHAKE_TIMEOUT, "handshake not complete in time")
            self.abort()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _flush(self) -> None:
        if self.outgoing.pending:
            data = self.outgoing.read()
            if not self.raw.is_closing():
                self.raw.write(data)

    # --- from the application ----------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed or not data:
            return
        if not self.handshaken:
            self.pending.append(bytes(data))
            return
        try:
            self.sslobj.write(data)
        except ssl.SSLError:
            self.abort()
            return
        self._flush()

    def writelines(self, list_of_data: object) -> None:
        for data in list_of_data:  # type: ignore[attr-defined]
            self.write(data)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.handshaken:
            try:
                self.sslobj.unwrap()  # close_notify
            except (ssl.SSLError, OSError):
                pass
            self._flush()
        self.raw.close()

    def abort(self) -> None:
        self.closed = True
        self.raw.abort()

    def is_closing(self) -> bool:
        return self.closed or self.raw.is_closing()

    def pause_reading(self) -> None:
        if not self.reading_paused:
            self.reading_paused = True
            self.raw.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.raw.resume_reading()
            if self.handshaken:
                asyncio.get_running_loop().call_soon(self._deliver)

    def is_reading(self) -> bool:
        return not self.reading_paused

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self.raw.get_write_buffer_size()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "ssl_object":
            return self.sslobj
        if name == "server_name":
            return self.server_name
        return self.raw.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self.app = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.app


def _ssl_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc or type(exc).__name__)
