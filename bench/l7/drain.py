"""``python -m bench.l7.drain PATH``: the agent's L7 flow intake reduced to reading. It
listens on the unix socket the waypoint's ``--flows unix:PATH`` connects to, reads the
lines (a JSON array of compact records each, or an object with them followed by their
timing marks' binary column, or one flow object) and counts the flows in them; on SIGTERM
it prints ``flows N`` and exits. It runs on the load generator's core, so
the waypoint's core pays exactly what production makes it pay (encoding each batch of
records, writing it to the socket) and the agent's side (building flows, enrichment, the
flow ring) is not charged to either peer."""

from __future__ import annotations

import json
import selectors
import signal
import socket
import sys
from pathlib import Path

from agent.flows.l7record import column_size


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
    flows = 0
    partial: dict[socket.socket, bytes] = {}
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
                partial.pop(sock, None)
                sock.close()
                continue
            buf = partial.get(sock, b"") + data
            while (end := buf.find(b"\n")) >= 0:
                line = buf[: end + 1]
                size = column_size(line)  # a batch's binary marks column follows its line
                if len(buf) < end + 1 + size:
                    break
                buf = buf[end + 1 + size :]
                if line.startswith(b"["):
                    flows += len(json.loads(line))
                elif size or line.startswith((b'{"split"', b'{"marks"')):
                    flows += len(json.loads(line)["records"])
                else:
                    flows += 1
            partial[sock] = buf
    server.close()
    path.unlink(missing_ok=True)
    print(f"flows {flows}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
