"""Tulle's flow observer API (gRPC, package ``tulle.observer.v1``).

Every agent serves it on TCP port 4244 (`AGENT_PORT`) and on a unix socket chosen by
whoever starts the agent; the relay serves the same API on TCP port 4245 (`RELAY_PORT`)
and merges all nodes' flows in time order. Ports follow Hubble's.

Modules: `convert` (the only translation between the proto and Python), `server`
(`ObserverServer`, one node's ring), `relay` (`Relay`, all nodes), `client`
(`ObserverClient`, used by the CLI), `hosting` (TCP plus unix-socket gRPC hosting), `tls`
(relay-to-agent mTLS: names, reloading files, why a handshake failed), `certgen` (the CA
and pairs `tulle certs relay` writes), `relayd` (the relay as a cluster process).
"""

AGENT_PORT = 4244
RELAY_PORT = 4245

__all__ = ["AGENT_PORT", "RELAY_PORT"]
