"""L2 announcement of LoadBalancer addresses (MetalLB's L2 mode): for each address exactly
one ready node answers ARP on the nodes' network (``election``, pure), sending gratuitous
ARP when it takes an address over (``arp``: the frames, pure; ``responder``: the AF_PACKET
socket on the node's uplink; ``announcer``: the agent's loop from cluster state to it)."""
