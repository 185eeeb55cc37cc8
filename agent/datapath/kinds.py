"""The kinds the datapath plans from: what the agent lists (agent/daemon.py). A module of its
own, so that the agent starts its lists before it imports the datapath's modules."""

WATCHED_KINDS = (
    "Node",
    "Namespace",
    "Pod",
    "Service",
    "EndpointSlice",
    "NetworkPolicy",
    "HTTPRoute",
    "GRPCRoute",
    "TCPRoute",  # served in the kernel (agent/datapath/l4_routes.py)
    "UDPRoute",
    "Gateway",
    "GatewayClass",
    "ListenerSet",  # listeners added to Gateways (l7_keys)
    "ReferenceGrant",
    "Secret",
    "PeerAuthentication",
    "AuthorizationPolicy",
    "Ingress",
    "IngressClass",
    "BackendTrafficPolicy",  # their Services go to the waypoint (l7_keys)
    "HTTPLocalRateLimitPolicy",
)
