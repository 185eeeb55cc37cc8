"""HBONE in the waypoint: mutual TLS 1.3 + HTTP/2 CONNECT tunnels between node waypoints
(issue 11 item 4). See README.md in this directory for the wire format.

- ``identities``: TLS contexts from the node-local SVID directory, reloaded on change, and
  the SPIFFE check of a peer after OpenSSL's;
- ``refusal``: a failed handshake or peer check named as a drop reason;
- ``connecthead``: the CONNECT request head, parsed strictly (pure);
- ``tunnel``: one HTTP/2 connection over TLS and its streams, with flow control;
- ``inbound``: the 15008 listener (the receiving end);
- ``pool`` and ``outbound``: the 15007 listener (the sending end) and its pooled connections;
- ``metrics``, ``ktls``: the Prometheus collector and the kTLS probe.
"""
