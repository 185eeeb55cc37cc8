"""Flag bits the kernel programs and Python share, read from the C headers that define them.

Importing this module needs no BCC, so pure planners (``desired``) and the waypoint can use
the flags without loading the compiler (``maps`` re-exports them for the writers).
"""

from __future__ import annotations

from agent.datapath.cdefs import LIB_DIR, defines

_ENDPOINT = defines(LIB_DIR / "endpoints.h", "EP_F_")
EP_F_INGRESS_ENFORCED = _ENDPOINT["EP_F_INGRESS_ENFORCED"]
EP_F_EGRESS_ENFORCED = _ENDPOINT["EP_F_EGRESS_ENFORCED"]
EP_F_MTLS = _ENDPOINT["EP_F_MTLS"]  # enrolled in mTLS: its TCP to enrolled pods is tunnelled
EP_F_AUTHZ_KERNEL = _ENDPOINT["EP_F_AUTHZ_KERNEL"]  # L4 AuthorizationPolicy judged at clients
EP_F_INGRESS_OVERFLOW = _ENDPOINT["EP_F_INGRESS_OVERFLOW"]  # its ingress policy did not fit
EP_F_EGRESS_OVERFLOW = _ENDPOINT["EP_F_EGRESS_OVERFLOW"]
LB_F_L7 = defines(LIB_DIR / "lb.h", "LB_F_")["LB_F_L7"]  # redirect to this node's waypoint
# Served on the uplink from outside (nodeport.h); Local: only this node's backends listed.
LB_F_EXTERNAL = defines(LIB_DIR / "lb.h", "LB_F_")["LB_F_EXTERNAL"]
LB_F_LOCAL = defines(LIB_DIR / "lb.h", "LB_F_")["LB_F_LOCAL"]
LB_F_L7_CLIENTS = defines(LIB_DIR / "redirect.h", "LB_F_")["LB_F_L7_CLIENTS"]  # listed clients only
