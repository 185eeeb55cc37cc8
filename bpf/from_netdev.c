/* from_netdev.c: tc ingress on a node's uplink; every packet arriving from the network.
 *
 * Order: parse (non-IPv4 passes: ARP and the rest are the node's) -> a source in this node's
 * pod CIDR is spoofed (those pods' packets never arrive from outside) -> a remote backend's
 * reply to a SNATed NodePort connection, reversed toward the client -> a packet for a NodePort
 * or LoadBalancer address translated toward its backend (nodeport.h) -> everything else
 * passes untouched (pod-to-pod traffic between nodes, the node's own).
 */
#include "common.h"
#include "drop.h"
#include "parse.h"
#include "endpoints.h"
#include "conntrack.h"
#include "lb.h"
#include "events.h"
#include "nodeport.h"

int tulle_from_netdev(struct __sk_buff *skb)
{
	struct pkt p;
	struct lb_key key;
	struct lb_service *svc;
	int ret = parse_packet(skb, &p);

	if (ret == PARSE_NOT_IPV4)
		return TC_ACT_OK;
	if (ret != PARSE_OK)
		return drop_flow(skb, &p, ret, OBS_FROM_NETWORK, DIR_INGRESS, IDENTITY_WORLD, 0);
	if (nodeport_in_pod_cidr(p.tuple.saddr))
		return drop_flow(skb, &p, DROP_SPOOFED_SOURCE, OBS_FROM_NETWORK, DIR_INGRESS,
				 IDENTITY_WORLD, 0);
	if (!pkt_has_l4(&p)) /* a later fragment: its ports are unknown here; the stack's */
		return TC_ACT_OK;
	ret = nodeport_reply(skb, &p, 1);
	if (ret < 0)
		return drop_flow(skb, &p, -ret, OBS_FROM_NETWORK, DIR_INGRESS, 0, 0);
	if (ret)
		return TC_ACT_OK;
	svc = nodeport_lookup(&p.tuple, &key);
	if (!svc)
		return TC_ACT_OK;
	ret = nodeport_forward(skb, &p, &key, svc);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_NETWORK, DIR_INGRESS,
				 identity_of(p.tuple.saddr), 0);
	return TC_ACT_OK;
}
