"""The lab's flow relay: merges every lab node's observer stream on the lab's relay socket.

Only unix sockets: nothing listens in the machine's root network namespace.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from agent.observer.relay import Relay
from lab.components import observer_socket
from lab.labstatus import load_plan
from lab.state import LabPaths

log = logging.getLogger("tulle.relay")


def run(name: str) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s relay %(levelname)s %(message)s")
    paths = LabPaths.for_lab(name)
    plan = load_plan(paths)
    if plan is None:
        log.error("lab %s has no lab.json; is it up?", name)
        return 1
    peers = [(n.name, f"unix:{observer_socket(paths, n.name)}") for n in plan.nodes]
    paths.relay_socket.unlink(missing_ok=True)
    relay = Relay(peers, tcp_address=None, unix_socket=str(paths.relay_socket))
    relay.start()
    log.info("relay for %s serving on %s", ", ".join(p for p, _ in peers), paths.relay_socket)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    relay.stop()
    return 0
