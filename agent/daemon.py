"""The node agent: one per node (the DaemonSet's process).

It watches desired state (the lab store here; the Kubernetes API in a cluster), logs what
it sees and reports health. The datapath reconciler plugs in behind the same cache.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from agent.lab.state import write_json_atomic
from agent.store import Store
from agent.store.events import SYNC, Event
from agent.store.informer import Cache, list_then_watch

log = logging.getLogger("tulle.agent")
HEALTH_INTERVAL = 1.0


class Agent:
    def __init__(self, node: str, store: Store):
        self.node = node
        self.store = store
        self.cache = Cache()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.events_seen = 0
        self.last_error: str | None = None

    def handle(self, event: Event) -> None:
        with self.lock:
            self.cache.handle(event)
            self.events_seen += 1
        if event.type == SYNC:
            counts = Counter(o["kind"] for o in event.object["items"])
            log.info(
                "synced at revision %d: %s",
                event.revision,
                ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no objects",
            )
        else:
            ns = f"{event.namespace}/" if event.namespace else ""
            log.info(
                "%s %s %s%s (revision %d)", event.type, event.kind, ns, event.name, event.revision
            )

    def report_node_ready(self, ready: bool, reason: str) -> None:
        """Set the Ready condition on this node's Node object, only when it changes."""
        node = self.store.get("Node", "", self.node)
        if node is None:
            log.warning("no Node object named %s in the store", self.node)
            return
        status = dict(node.get("status") or {})
        others = [c for c in status.get("conditions") or [] if c.get("type") != "Ready"]
        current: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
        )
        wanted = "True" if ready else "False"
        if current.get("status") == wanted and current.get("reason") == reason:
            return
        condition = {
            "type": "Ready",
            "status": wanted,
            "reason": reason,
            "message": f"tulle agent pid {os.getpid()}",
            "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        status["conditions"] = [*others, condition]
        self.store.update_status("Node", "", self.node, status)

    def watch_forever(self) -> None:
        while not self.stop.is_set():
            try:
                list_then_watch(self.store, None, self.handle, self.stop)
            except Exception as err:  # keep serving health; report and retry
                self.last_error = f"{type(err).__name__}: {err}"
                log.exception("watch failed; retrying in 1s")
                self.stop.wait(1.0)

    def health(self) -> dict[str, object]:
        with self.lock:
            return {
                "node": self.node,
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "time": time.time(),
                "ready": self.cache.synced and self.last_error is None,
                "revision": self.cache.revision,
                "objects": len(self.cache.objects),
                "events": self.events_seen,
                "error": self.last_error,
            }


def run(node: str, store_file: str, health_file: str | None) -> int:
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {node} %(levelname)s %(message)s")
    with Store(store_file) as store:
        agent = Agent(node, store)

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            agent.stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        watcher = threading.Thread(target=agent.watch_forever, name="watch", daemon=True)
        watcher.start()
        log.info("agent for node %s started (pid %d), store %s", node, os.getpid(), store_file)
        while not agent.stop.wait(HEALTH_INTERVAL):
            health = agent.health()
            if health_file:
                write_json_atomic(Path(health_file), health)
            if health["ready"]:
                agent.report_node_ready(True, "AgentReady")
        watcher.join(timeout=2.0)
        agent.report_node_ready(False, "AgentStopped")
    return 0
