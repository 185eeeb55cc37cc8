/* from_pod.c: tc ingress on a pod's host-side veth; every packet the pod sends.
 *
 * Order: parse -> anti-spoofing -> service translation (Maglev, DNAT) -> conntrack
 * (continuing egress connection, or reply of an accepted one) -> egress policy for a new
 * connection -> conntrack entry and a NEW flow event. Replies of allowed connections never
 * meet policy.
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

/* Returns 0 after translating (or when the packet is not for a service), else a drop reason.
 * *redirected becomes 1 when this packet was sent to the waypoint. */
static __always_inline int translate_service(struct __sk_buff *skb, struct pkt *p,
					     struct ct_entry *new_ct, __u32 client_identity,
					     int *redirected)
{
	struct lb_key svc_key;
	struct lb_service *svc = lb_lookup_service(&p->tuple, &svc_key);
	struct ct_entry *svc_ct;
	struct ct_entry fresh = {};
	struct lb_backend backend;

	if (!svc)
		return 0;
	svc_ct = ct_lookup(&p->tuple, CT_SERVICE);
	if (svc_ct && !pkt_opens_tcp(p)) { /* a new connection always chooses afresh */
		backend.addr = svc_ct->backend_addr;
		backend.port = svc_ct->backend_port;
		svc_ct->last_seen_ns = bpf_ktime_get_ns();
	} else {
		if (l7_wanted(svc->flags & LB_F_L7, svc->flags & LB_F_L7_CLIENTS, &p->tuple) &&
		    waypoint_target(&backend.addr, &backend.port)) {
			/* L7 needs (HTTPRoute, Gateway): the waypoint picks the backend. */
			redirect_record(&p->tuple, client_identity);
			*redirected = 1;
		} else if (lb_select_backend(&svc_key, svc, &p->tuple, &backend) != 0) {
			return DROP_NO_SERVICE;
		}
		fresh.backend_addr = backend.addr;
		fresh.backend_port = backend.port;
		if (ct_create(&p->tuple, CT_SERVICE, &fresh) != 0)
			return DROP_CT_MAP_INSERTION_FAILED;
	}
	new_ct->rev_nat_addr = p->tuple.daddr;
	new_ct->rev_nat_port = p->tuple.dport;
	return lb_dnat(skb, p, backend.addr, backend.port);
}

int tulle_from_pod(struct __sk_buff *skb)
{
	struct pkt p;
	struct endpoint_info *ep;
	struct ct_entry *ct;
	struct ct_entry new_ct = {};
	struct tuple4 reply;
	__u32 ep_ip, ep_id, ep_flags, dst_id;
	int redirected = 0;
	int ret = parse_packet(skb, &p);

	if (ret == PARSE_NOT_IPV4)
		return TC_ACT_OK; /* ARP and IPv6 neighbour traffic: not policed here */
	ep = endpoint_by_ifindex(skb->ifindex);
	if (!ep)
		return drop_flow(skb, &p, DROP_UNKNOWN_SENDER, OBS_FROM_ENDPOINT, DIR_EGRESS, 0, 0);
	ep_ip = ep->ip;
	ep_id = ep->identity;
	ep_flags = ep->flags;
	if (ret != PARSE_OK)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	if (p.tuple.saddr != ep_ip)
		return drop_flow(skb, &p, DROP_SPOOFED_SOURCE, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	if (p.fragment)
		return drop_flow(skb, &p, DROP_FRAG_NOT_SUPPORTED, OBS_FROM_ENDPOINT, DIR_EGRESS,
				 ep_id, 0);

	ret = translate_service(skb, &p, &new_ct, ep_id, &redirected);
	if (ret == DROP_NO_SERVICE) {
		/* Let the node's unreachable route for the service range answer with ICMP, so
		 * the client fails at once; the flow records why. */
		drop_flow(skb, &p, DROP_NO_SERVICE, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
		return TC_ACT_OK;
	}
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);

	ct = ct_lookup(&p.tuple, CT_EGRESS);
	if (ct_continues(ct, &p)) {
		if (ct_account(ct, &p, 0))
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_FROM_ENDPOINT, DIR_EGRESS,
				   ct, skb->ifindex, 0);
		return TC_ACT_OK;
	}
	ct_reverse(&p.tuple, &reply);
	ct = ct_lookup(&reply, CT_INGRESS);
	if (ct) { /* the pod answering a connection it accepted */
		if (ct_account(ct, &p, 1))
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_FROM_ENDPOINT, DIR_INGRESS,
				   ct, skb->ifindex, 1);
		return TC_ACT_OK;
	}

	dst_id = identity_of(p.tuple.daddr);
	if (dst_id == IDENTITY_WAYPOINT) {
		/* Any node's waypoint is reached only through the redirect above, which records
		 * the original destination: the waypoint judges this pod's egress policy against
		 * the backend its route picks (ARCHITECTURE.md, "Policy through the waypoint"). */
		if (!redirected)
			return drop_flow(skb, &p, DROP_WAYPOINT_NOT_REDIRECTED, OBS_FROM_ENDPOINT,
					 DIR_EGRESS, ep_id, dst_id);
	} else if ((ep_flags & EP_F_EGRESS_ENFORCED) &&
		   !policy_allows(ep_ip, DIR_EGRESS, p.tuple.daddr, dst_id, p.tuple.proto,
				  bpf_ntohs(p.tuple.dport))) {
		return drop_flow(skb, &p, DROP_POLICY_DENIED, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id,
				 dst_id);
	}

	new_ct.src_identity = ep_id;
	new_ct.dst_identity = dst_id;
	ret = open_connection(skb, &p, CT_EGRESS, &new_ct,
			      new_ct.rev_nat_addr ? VERDICT_TRANSLATED : VERDICT_FORWARDED,
			      OBS_FROM_ENDPOINT, DIR_EGRESS);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, dst_id);
	return TC_ACT_OK;
}
