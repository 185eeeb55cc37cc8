"""Tulle's per-node waypoint proxy (Gateway API HTTPRoute, node-to-node mTLS).

The route engine and server arrive with the waypoint issue; this package exists so the
distribution layout is fixed from the start.
"""
