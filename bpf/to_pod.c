/* to_pod.c: tc egress on a pod's host-side veth; every packet delivered to the pod.
 *
 * Order: parse -> reply of the pod's own egress connection (reverse NAT from the backend
 * back to the service VIP) -> continuing ingress connection -> ingress policy for a new
 * connection -> conntrack entry and a NEW flow event.
 */
#include "common.h"
#include "drop.h"
#include "parse.h"
#include "endpoints.h"
#include "conntrack.h"
#include "policy.h"
#include "lb.h"
#include "redirect.h"
#include "events.h"

int tulle_to_pod(struct __sk_buff *skb)
{
	struct pkt p;
	struct endpoint_info *ep;
	struct ct_entry *ct;
	struct ct_entry new_ct = {};
	struct tuple4 reply;
	__u32 ep_ip, ep_id, ep_flags, src_id;
	int ret = parse_packet(skb, &p);

	if (ret == PARSE_NOT_IPV4)
		return TC_ACT_OK;
	ep = endpoint_by_ifindex(skb->ifindex);
	if (!ep)
		return drop_flow(skb, &p, DROP_UNKNOWN_SENDER, OBS_TO_ENDPOINT, DIR_INGRESS, 0, 0);
	ep_ip = ep->ip;
	ep_id = ep->identity;
	ep_flags = ep->flags;
	if (ret != PARSE_OK)
		return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, 0, ep_id);
	if (p.fragment)
		return drop_flow(skb, &p, DROP_FRAG_NOT_SUPPORTED, OBS_TO_ENDPOINT, DIR_INGRESS, 0,
				 ep_id);

	ct_reverse(&p.tuple, &reply);
	ct = ct_lookup(&reply, CT_EGRESS);
	if (ct) { /* a reply to a connection this pod opened */
		__be32 vip = ct->rev_nat_addr;
		__be16 vport = ct->rev_nat_port;

		if (ct_account(ct, &p, 1))
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_TO_ENDPOINT, DIR_EGRESS, ct,
				   skb->ifindex, 1);
		if (vip) {
			ret = lb_rev_nat(skb, &p, vip, vport);
			if (ret)
				return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_EGRESS, 0, ep_id);
		}
		return TC_ACT_OK;
	}
	ct = ct_lookup(&p.tuple, CT_INGRESS);
	if (ct_continues(ct, &p)) {
		if (ct_account(ct, &p, 0))
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_TO_ENDPOINT, DIR_INGRESS, ct,
				   skb->ifindex, 0);
		return TC_ACT_OK;
	}

	src_id = identity_of(p.tuple.saddr);
	/* Another local process bound this node's waypoint address: it is nobody in particular. */
	if (src_id == IDENTITY_WAYPOINT && !waypoint_sent(skb, p.tuple.saddr))
		src_id = IDENTITY_WORLD;
	/* The node itself (kubelet-style health checks) is always let in, as in Kubernetes, and
	 * so is a waypoint: it judged the client's egress and this pod's ingress policy on the
	 * client's identity before forwarding (ARCHITECTURE.md, "Policy through the waypoint"). */
	if ((ep_flags & EP_F_INGRESS_ENFORCED) && src_id != IDENTITY_HOST &&
	    src_id != IDENTITY_WAYPOINT &&
	    !policy_allows(ep_ip, DIR_INGRESS, p.tuple.saddr, src_id, p.tuple.proto,
			   bpf_ntohs(p.tuple.dport)))
		return drop_flow(skb, &p, DROP_POLICY_DENIED, OBS_TO_ENDPOINT, DIR_INGRESS, src_id,
				 ep_id);

	new_ct.src_identity = src_id;
	new_ct.dst_identity = ep_id;
	ret = open_connection(skb, &p, CT_INGRESS, &new_ct, VERDICT_FORWARDED, OBS_TO_ENDPOINT,
			      DIR_INGRESS);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, src_id, ep_id);
	return TC_ACT_OK;
}
