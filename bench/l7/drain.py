"""``python -m bench.l7.drain PATH``: the agent's L7 flow intake reduced to reading. It
listens on the unix socket the waypoint's ``--flows unix:PATH`` connects to, reads the
JSON lines and counts them; on SIGTERM it prints ``lines N`` and exits. It runs on the
load generator's core, so the waypoint's core pays exactly what production makes it pay
(building each flow, encoding it to JSON, writing it to the socket) and the agent's side
(parsing, enrichment, the flow ring) is not charged to either peer."""

from __future__ import annotations

import selectors
import signal
import socket
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.l7.drain SOCKET_PATH", file=sys.stderr)
        return 2
    path = Path(args[0])
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    lines = 0
    running = True

    def stop(_signum: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while running:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is server:
                conn, _ = server.accept()
                conn.setblocking(False)
                selector.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                selector.unregister(sock)
                sock.close()
                continue
            lines += data.count(b"\n")
    server.close()
    path.unlink(missing_ok=True)
    print(f"lines {lines}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
