"""Workload identity (issue 11), pure and sans-IO: SPIFFE IDs, the certificate authority's
decisions and X.509-SVIDs, and the PeerAuthentication-shaped mTLS policy. The agent, the
waypoint and the identity service import it; it imports none of them, and does no network
or file I/O of its own (callers hand it bytes and objects)."""
