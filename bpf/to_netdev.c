/* to_netdev.c: tc egress on a node's uplink; every packet leaving for the network.
 *
 * One job: a local backend's reply on a NodePort or LoadBalancer connection that was not
 * SNATed (externalTrafficPolicy Local, or Cluster with a backend on this node) leaves from the
 * address and port the client dialled (nodeport.h). Everything else leaves untouched.
 */
#include "common.h"
#include "drop.h"
#include "parse.h"
#include "endpoints.h"
#include "conntrack.h"
#include "lb.h"
#include "events.h"
#include "nodeport.h"

int tulle_to_netdev(struct __sk_buff *skb)
{
	struct pkt p;
	int ret = parse_packet(skb, &p);

	if (ret != PARSE_OK || !pkt_has_l4(&p))
		return TC_ACT_OK; /* the node's own packets: not ours to judge */
	ret = nodeport_reply(skb, &p, 0);
	if (ret < 0)
		return drop_flow(skb, &p, -ret, OBS_TO_NETWORK, DIR_INGRESS, 0, 0);
	return TC_ACT_OK;
}
