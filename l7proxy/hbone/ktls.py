"""Does this kernel offer kTLS? ``setsockopt(SOL_TCP, TCP_ULP, "tls")`` on a connected TCP
socket succeeds only when the ``tls`` module is built and loadable (DESIGN.md: this machine
has none, so the probe answers False here and the tunnel encrypts in the waypoint).

The probe is what a kTLS node would branch on: after the handshake, hand the session keys to
the kernel (``TLS_TX``/``TLS_RX``) and splice plaintext. That offload is not implemented; the
result is exported as ``tulle_waypoint_ktls`` so operators see what a node could do.
"""

from __future__ import annotations

import socket

TCP_ULP = getattr(socket, "TCP_ULP", 31)  # include/uapi/linux/tcp.h


def probe() -> bool:
    """True if a connected loopback TCP socket accepts the ``tls`` upper-layer protocol."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    peer: socket.socket | None = None
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client.connect(listener.getsockname())
        peer, _ = listener.accept()
        client.setsockopt(socket.SOL_TCP, TCP_ULP, b"tls")
        return True
    except OSError:
        return False
    finally:
        for sock in (client, peer, listener):
            if sock is not None:
                sock.close()
