"""The ARP responder: an AF_PACKET socket on the node's uplink that answers requests for the
addresses this node announces and sends gratuitous ARP for each address it takes over. The
addresses are never added to an interface (the node does not own them; the datapath serves
them) and nothing is routed; the kernel itself answers no ARP for them.

One thread reads the socket; ``announce`` (any thread) swaps the set. Gratuitous ARP goes
out ``GARP_COUNT`` times, ``GARP_SPACING`` apart, as MetalLB and keepalived repeat it: one
lost broadcast would otherwise leave clients on the old node until their entry goes stale."""

from __future__ import annotations

import logging
import socket
import threading

from agent.announce.arp import ETH_P_ARP, gratuitous, parse_request, reply

log = logging.getLogger("tulle.announce")
GARP_COUNT = 3
GARP_SPACING = 0.2  # seconds
_POLL = 0.2  # how often the reader looks at the stop flag


class ArpResponder:
    def __init__(self, sock: socket.socket, interface: str) -> None:
        self.sock = sock
        self.interface = interface
        self.mac: bytes = sock.getsockname()[4]
        self.addresses: frozenset[str] = frozenset()
        self.answered = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._garp: threading.Thread | None = None

    @classmethod
    def open(cls, interface: str) -> ArpResponder:
        """Bound to ``interface`` in the calling thread's network namespace."""
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        try:
            sock.bind((interface, ETH_P_ARP))
            sock.settimeout(_POLL)
        except OSError:
            sock.close()
            raise
        return cls(sock, interface)

    def start(self) -> ArpResponder:
        self._thread = threading.Thread(target=self._serve, name="arp", daemon=True)
        self._thread.start()
        return self

    def announce(self, addresses: frozenset[str]) -> None:
        """Answer for exactly ``addresses`` from now on; announce the new ones."""
        gained = addresses - self.addresses
        lost = self.addresses - addresses
        self.addresses = addresses
        if lost:
            log.info("no longer announcing %s on %s", ", ".join(sorted(lost)), self.interface)
        if gained:
            log.info("announcing %s on %s", ", ".join(sorted(gained)), self.interface)
            self._garp = threading.Thread(target=self._gratuitous, args=(sorted(gained),),
                                          name="garp", daemon=True)
            self._garp.start()

    def _gratuitous(self, addresses: list[str]) -> None:
        for i in range(GARP_COUNT):
            if i and self._stop.wait(GARP_SPACING):
                return
            for ip in addresses:
                if ip in self.addresses:  # not given away meanwhile
                    self._send(gratuitous(ip, self.mac))

    def _send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError as err:  # the link went down: the next announce or request retries
            log.warning("cannot send ARP on %s: %s", self.interface, err)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                frame, source = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            if source[2] == socket.PACKET_OUTGOING:
                continue  # our own replies and announcements, seen on the way out
            request = parse_request(frame)
            if (
                request is not None
                and request.target_ip in self.addresses
                and request.sender_ip != request.target_ip  # another's announcement: no answer
            ):
                self._send(reply(request, self.mac))
                self.answered += 1

    def close(self) -> None:
        self._stop.set()
        for thread in (self._thread, self._garp):
            if thread is not None:
                thread.join(timeout=2.0)
        self.sock.close()
