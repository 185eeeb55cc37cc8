/* from_pod.c: tc ingress on a pod's host-side veth; every packet the pod sends.
 *
 * Order: parse -> non-IPv4 (ARP from the pod's own address only) -> anti-spoofing ->
 * fragments (ports from the first) -> ICMP errors related to a connection -> service
 * translation (Maglev, DNAT) -> a tunnelled connection's later packets to the waypoint (mtls.h)
 * -> conntrack (continuing egress connection, or reply of an accepted one) -> egress policy for
 * a new connection -> the destination's L4 AuthorizationPolicy (authz.h: a reset, judged here
 * on the client's node) -> mTLS: to the waypoint's tunnel, or a reset for plaintext to a STRICT
 * port -> conntrack entry and a NEW flow event. Replies of allowed connections never meet
 * policy.
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
#include "authz.h"
#include "hairpin.h"
#include "events.h"

/* A new connection refused at its first packet: the drop is recorded (naming `policy`); a SYN
 * is turned into the reset the client's socket expects, from where it is connected (the VIP
 * when a Service chose the destination), straight into the pod's namespace (not through
 * to_pod, which would take the reset for a new connection). */
static __always_inline int refuse_connection(struct __sk_buff *skb, struct pkt *p,
					     const struct ct_entry *new_ct, __u32 reason,
					     __u32 src_id, __u32 dst_id, __u32 policy,
					     __u32 ifindex)
{
	int ret;

	drop_flow_policy(skb, p, reason, OBS_FROM_ENDPOINT, DIR_EGRESS, src_id, dst_id, policy);
	if (!pkt_opens_tcp(p))
		return TC_ACT_SHOT;
	ret = new_ct->rev_nat_addr ? mtls_reset(skb, p, new_ct->rev_nat_addr, new_ct->rev_nat_port) :
				     mtls_reset(skb, p, p->tuple.daddr, p->tuple.dport);
	if (ret)
		return TC_ACT_SHOT;
	return bpf_redirect_peer(ifindex, 0);
}

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
		/* quota.h: a pod over its quota must not churn CT_SERVICE entries either. */
		if (ct_quota_admit(p->tuple.saddr))
			return DROP_CT_ENDPOINT_QUOTA_EXCEEDED;
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
	struct icmp_quote quote;
	__u32 ep_ip, ep_id, ep_flags, dst_id, mode, ep_ifindex;
	__u32 policy = 0; /* policy.h: which policy set allowed a new connection */
	__u8 verdict;
	__be32 waypoint = 0;
	__be16 waypoint_port;
	int redirected = 0;
	int hairpin;
	int ret = parse_packet(skb, &p);

	ep_ifindex = ctx_ifindex(skb);
	ep = endpoint_by_ifindex(ep_ifindex);
	if (!ep)
		return drop_flow(skb, &p, DROP_UNKNOWN_SENDER, OBS_FROM_ENDPOINT, DIR_EGRESS, 0, 0);
	ep_ip = ep->ip;
	ep_id = ep->identity;
	ep_flags = ep->flags;
	/* Fail closed (nonip.h): ARP speaking for the pod's own address, nothing else. */
	if (ret == PARSE_NOT_IPV4) {
		ret = nonip_from_pod(skb, &p, ep_ip);
		if (ret)
			return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
		return TC_ACT_OK;
	}
	if (ret != PARSE_OK)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	if (p.tuple.saddr != ep_ip)
		return drop_flow(skb, &p, DROP_SPOOFED_SOURCE, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	/* Fragments (frag.h): later ones get the first one's ports, hence its fate. */
	ret = frag_track(&p);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	/* ICMP errors (icmp.h): one quoting a connection of this pod passes egress policy. It
	 * must go back to the quoted packet's sender: a quote is no pass to reach anyone else. */
	if (icmp_error_quote(skb, &p, &quote) && p.tuple.daddr == quote.tuple.saddr) {
		if (ct_lookup(&quote.tuple, CT_INGRESS)) /* about a packet the pod accepted */
			return TC_ACT_OK;
		ct_reverse(&quote.tuple, &reply); /* about a reply on the pod's own connection */
		ct = ct_lookup(&reply, CT_SERVICE);
		if (ct) { /* the reply came from a VIP: the error goes to the backend behind it */
			struct tuple4 real = reply;

			real.daddr = ct->backend_addr;
			real.dport = ct->backend_port;
			if (ct_lookup(&real, CT_EGRESS)) {
				ret = icmp_xlate(skb, &p, &quote, 0, reply.daddr, real.daddr, reply.dport,
						 real.dport);
				if (ret)
					return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS,
							 ep_id, 0);
				return TC_ACT_OK;
			}
		}
		if (ct_lookup(&reply, CT_EGRESS))
			return TC_ACT_OK;
	}

	ret = translate_service(skb, &p, &new_ct, ep_id, &redirected);
	if (ret == DROP_NO_SERVICE) {
		/* Let the node's unreachable route for the service range answer with ICMP, so
		 * the client fails at once; the flow records why. */
		drop_flow(skb, &p, DROP_NO_SERVICE, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
		return TC_ACT_OK;
	}
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	/* Hairpin (hairpin.h): the Service chose the pod itself. */
	hairpin = new_ct.rev_nat_addr && p.tuple.daddr == ep_ip;
	/* mtls.h: an enrolled pod's tunnelled connection goes on to the waypoint. */
	if ((ep_flags & EP_F_MTLS) && !redirected && p.tuple.proto == IPPROTO_TCP &&
	    waypoint_target(&waypoint, &waypoint_port)) {
		ret = mtls_tunnel_continue(skb, &p, waypoint);
		if (ret < 0)
			return drop_flow(skb, &p, -ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, 0);
	}

	ct = ct_lookup(&p.tuple, CT_EGRESS);
	if (ct_continues(ct, &p)) {
		if (ct_account(ct, &p, 0)) {
			ct_quota_release(ep_ip); /* quota.h: closed, no longer live */
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_FROM_ENDPOINT, DIR_EGRESS,
				   ct, ctx_ifindex(skb), 0);
		}
		goto out;
	}
	ct_reverse(&p.tuple, &reply);
	ct = ct_lookup(&reply, CT_INGRESS);
	if (ct) { /* the pod answering a connection it accepted */
		if (ct_account(ct, &p, 1))
			trace_flow(&p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_FROM_ENDPOINT, DIR_INGRESS,
				   ct, ctx_ifindex(skb), 1);
		/* Hairpin: the answer to the pod's own call goes back to the pod. */
		ret = p.tuple.daddr == HAIRPIN_ADDR ? hairpin_reply(skb, &p, ep_ip) : 0;
		if (ret)
			return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_INGRESS, ep_id, 0);
		return TC_ACT_OK;
	}

	dst_id = identity_of(p.tuple.daddr);
	/* endpoints.h: its egress policy did not fit the maps: deny, never half-enforce. */
	if (ep_flags & EP_F_EGRESS_OVERFLOW)
		return drop_flow(skb, &p, DROP_POLICY_MAP_OVERFLOW, OBS_FROM_ENDPOINT, DIR_EGRESS,
				 ep_id, dst_id);
	if (dst_id == IDENTITY_WAYPOINT) {
		/* Any node's waypoint is reached only through the redirect above, which records
		 * the original destination: the waypoint judges this pod's egress policy against
		 * the backend its route picks (ARCHITECTURE.md, "Policy through the waypoint"). */
		if (!redirected)
			return drop_flow(skb, &p, DROP_WAYPOINT_NOT_REDIRECTED, OBS_FROM_ENDPOINT,
					 DIR_EGRESS, ep_id, dst_id);
	} else if (ep_flags & EP_F_EGRESS_ENFORCED) {
		policy = policy_allows(ep_ip, DIR_EGRESS, p.tuple.daddr, dst_id, p.tuple.proto,
				       bpf_ntohs(p.tuple.dport));
		if (!policy)
			return drop_flow(skb, &p, DROP_POLICY_DENIED, OBS_FROM_ENDPOINT, DIR_EGRESS,
					 ep_id, dst_id);
	}
	/* authz.h: the destination's L4-only AuthorizationPolicy, judged before the SYN leaves
	 * this node (what goes to a waypoint is judged there, on the request). */
	if (dst_id >= IDENTITY_MIN_POD) {
		__u32 denied_by = 0;

		ret = authz_judge(ep_ip, dst_id, bpf_ntohs(p.tuple.dport), &denied_by);
		if (ret)
			return refuse_connection(skb, &p, &new_ct, ret, ep_id, dst_id, denied_by,
						 ep_ifindex);
	}

	verdict = new_ct.rev_nat_addr ? VERDICT_TRANSLATED : VERDICT_FORWARDED;
	/* mTLS (mtls.h), after policy judged the real destination: TCP between enrolled pods goes
	 * to this node's waypoint's tunnel (an L7 redirect above keeps precedence: the waypoint
	 * tunnels its upstream hop); plaintext that a STRICT port would refuse is reset here, at
	 * once, rather than dropped there to time out. */
	mode = !redirected && !hairpin && p.tuple.proto == IPPROTO_TCP ?
		       mtls_mode(p.tuple.daddr, p.tuple.dport) : MTLS_NONE;
	if ((mode == MTLS_PERMISSIVE || mode == MTLS_STRICT) && (ep_flags & EP_F_MTLS) &&
	    pkt_opens_tcp(&p) && waypoint_target(&waypoint, &waypoint_port)) {
		ret = mtls_tunnel(skb, &p, &new_ct, ep_id, waypoint);
		if (ret)
			return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, dst_id);
	} else if (mode == MTLS_STRICT) {
		return refuse_connection(skb, &p, &new_ct, DROP_AUTH_REQUIRED, ep_id, dst_id, 0,
					 ep_ifindex);
	}

	new_ct.src_identity = ep_id;
	new_ct.dst_identity = dst_id;
	/* quota.h: one pod cannot fill (or, LRU, evict) the node's conntrack. */
	ret = ct_quota_admit(ep_ip);
	if (!ret)
		ret = open_connection(skb, &p, CT_EGRESS, &new_ct, verdict, OBS_FROM_ENDPOINT,
				      DIR_EGRESS, policy);
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, dst_id);
	ct_quota_charge(ep_ip);
out:
	/* Hairpin: from an address the pod does not own, so its stack accepts the packet. */
	ret = hairpin ? hairpin_snat(skb, &p) : 0;
	if (ret)
		return drop_flow(skb, &p, ret, OBS_FROM_ENDPOINT, DIR_EGRESS, ep_id, ep_id);
	return TC_ACT_OK;
}
