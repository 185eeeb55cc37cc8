/* to_pod.c: tc egress on a pod's host-side veth; every packet delivered to the pod.
 *
 * Order: parse -> non-IPv4 (ARP only) -> fragments (ports from the first) -> ICMP errors
 * related to a connection (quote reverse-NATed) -> reply of the pod's own egress connection
 * (reverse NAT from the backend back to the service VIP) -> continuing ingress connection ->
 * ingress policy for a new connection -> conntrack entry and a NEW flow event.
 */
#include "common.h"
#include "drop.h"
#include "parse.h"
#include "nonip.h"
#include "frag.h"
#include "icmp.h"
#include "endpoints.h"
#include "conntrack.h"
#include "quota.h"
#include "policy.h"
#include "lb.h"
#include "redirect.h"
#include "mtls.h"
#include "events.h"
#include "hairpin.h"

int tulle_to_pod(struct __sk_buff *skb)
{
	struct pkt p;
	struct endpoint_info *ep;
	struct ct_entry *ct;
	struct ct_entry new_ct = {};
	struct tuple4 reply;
	struct icmp_quote quote;
	__u32 ep_ip, ep_id, ep_flags, src_id;
	__u32 policy = 0; /* policy.h: which policy set allowed a new connection */
	__be32 peer_ip;
	int ret = parse_packet(skb, &p);

	ep = endpoint_by_ifindex(ctx_ifindex(skb));
	if (!ep)
		return drop_flow(skb, &p, DROP_UNKNOWN_SENDER, OBS_TO_ENDPOINT, DIR_INGRESS, 0, 0);
	ep_ip = ep->ip;
	ep_id = ep->identity;
	ep_flags = ep->flags;
	/* Fail closed (nonip.h): ARP from the node, nothing else. */
	if (ret == PARSE_NOT_IPV4) {
		ret = nonip_to_pod(skb, &p);
		if (ret)
			return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, 0, ep_id);
		return TC_ACT_OK;
	}
	if (ret != PARSE_OK)
		return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, 0, ep_id);
	/* Fragments (frag.h): later ones get the first one's ports, hence its fate. */
	ret = frag_track(&p);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, 0, ep_id);
	/* ICMP errors (icmp.h): one quoting a connection of this pod passes ingress policy, with
	 * the connection's reverse NAT applied to the quote (and to a translated sender). */
	if (icmp_error_quote(skb, &p, &quote)) {
		ct = ct_lookup(&quote.tuple, CT_EGRESS); /* about a packet the pod sent */
		if (ct) {
			__be32 vip = ct->rev_nat_addr;
			__be16 vport = ct->rev_nat_port;

			ret = vip ? icmp_xlate(skb, &p, &quote, 1, quote.tuple.daddr, vip,
					       quote.tuple.dport, vport) : 0;
			if (ret)
				return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, 0, ep_id);
			return TC_ACT_OK;
		}
		ct_reverse(&quote.tuple, &reply); /* about the pod's reply on a connection it accepted */
		if (ct_lookup(&reply, CT_INGRESS))
			return TC_ACT_OK;
	}

	ct_reverse(&p.tuple, &reply);
	ct = ct_lookup(&reply, CT_EGRESS);
	if (ct) { /* a reply to a connection this pod opened */
		__be32 vip = ct->rev_nat_addr;
		__be16 vport = ct->rev_nat_port;
		/* One reply flow per translated connection, not per packet (events.h). */
		int first_reply = ct_translated(ct) && !ct->packets_rev;

		if (ct_account(ct, &p, 1)) {
			ct_quota_release(reply.saddr); /* quota.h: its opener's connection closed */
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_TO_ENDPOINT, DIR_EGRESS, ct,
				   ctx_ifindex(skb), 1);
		}
		if (vip) {
			if (first_reply)
				trace_flow(&p, EVENT_REPLY, VERDICT_TRANSLATED, OBS_TO_ENDPOINT,
					   DIR_EGRESS, ct, ctx_ifindex(skb), 1);
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
				   ctx_ifindex(skb), 0);
		return TC_ACT_OK;
	}

	src_id = identity_of(p.tuple.saddr);
	peer_ip = p.tuple.saddr;
	/* Another local process bound this node's waypoint address: it is nobody in particular. */
	if (src_id == IDENTITY_WAYPOINT && !waypoint_sent(skb, p.tuple.saddr))
		src_id = IDENTITY_WORLD;
	/* Hairpin (hairpin.h): the pod calling itself through a Service is judged as itself. */
	if (hairpin_peer(&p, ep_ip)) {
		src_id = ep_id;
		peer_ip = ep_ip;
	}
	/* endpoints.h: its ingress policy did not fit the maps; the node itself still reaches it. */
	if ((ep_flags & EP_F_INGRESS_OVERFLOW) && src_id != IDENTITY_HOST)
		return drop_flow(skb, &p, DROP_POLICY_MAP_OVERFLOW, OBS_TO_ENDPOINT, DIR_INGRESS,
				 src_id, ep_id);
	/* mtls.h: a STRICT port takes TCP only through the waypoint's tunnel (this node's marked
	 * waypoint delivers it) and from the node (probes). A pod calling itself through its
	 * Service never left it. Other protocols are not tunnelled: bpf/README.md. */
	if (p.tuple.proto == IPPROTO_TCP && mtls_mode(ep_ip, p.tuple.dport) == MTLS_STRICT &&
	    !mtls_admits(src_id, p.tuple.saddr) && peer_ip != ep_ip)
		return drop_flow(skb, &p, DROP_AUTH_REQUIRED, OBS_TO_ENDPOINT, DIR_INGRESS, src_id,
				 ep_id);
	/* endpoints.h, authz.h: the client's node judged this pod's L4 AuthorizationPolicy; what
	 * no such node sent (another node's own processes, the world) is refused. */
	if ((ep_flags & EP_F_AUTHZ_KERNEL) && src_id < IDENTITY_MIN_POD && src_id != IDENTITY_HOST &&
	    src_id != IDENTITY_WAYPOINT)
		return drop_flow(skb, &p, DROP_POLICY_DENIED, OBS_TO_ENDPOINT, DIR_INGRESS, src_id,
				 ep_id);
	/* The node itself (kubelet-style health checks) is always let in, as in Kubernetes, and
	 * so is a waypoint: it judged the client's egress and this pod's ingress policy on the
	 * client's identity before forwarding (ARCHITECTURE.md, "Policy through the waypoint"). */
	if ((ep_flags & EP_F_INGRESS_ENFORCED) && src_id != IDENTITY_HOST &&
	    src_id != IDENTITY_WAYPOINT) {
		policy = policy_allows(ep_ip, DIR_INGRESS, peer_ip, src_id, p.tuple.proto,
				       bpf_ntohs(p.tuple.dport));
		if (!policy)
			return drop_flow(skb, &p, DROP_POLICY_DENIED, OBS_TO_ENDPOINT, DIR_INGRESS,
					 src_id, ep_id);
	}

	new_ct.src_identity = src_id;
	new_ct.dst_identity = ep_id;
	ret = open_connection(skb, &p, CT_INGRESS, &new_ct, VERDICT_FORWARDED, OBS_TO_ENDPOINT,
			      DIR_INGRESS, policy);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_TO_ENDPOINT, DIR_INGRESS, src_id, ep_id);
	return TC_ACT_OK;
}
