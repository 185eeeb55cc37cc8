/* nodeport.h: NodePort and LoadBalancer Services reached from outside the cluster, on a node's
 * uplink (from_netdev.c, to_netdev.c). Cilium's kube-proxy replacement (bpf/lib/nodeport.h) is
 * the reference; the backend is chosen by lb.h's Maglev tables, as for a ClusterIP.
 *
 *   nodeport_lookup(tuple, &key)    the lb_services_v1 entry for (node or LB address, port,
 *                                   proto) when it is one served from outside (LB_F_EXTERNAL)
 *   nodeport_in_pod_cidr(addr)      the address is in this node's pod CIDR (TULLE_CFG_POD_CIDR)
 *   nodeport_forward(skb, pkt, key, svc)
 *                                   translate a client's packet toward its backend: DNAT, and
 *                                   SNAT to the node (TULLE_CFG_NODE_ADDR) when the policy is
 *                                   Cluster and the backend is on another node, so the reply
 *                                   comes back here; a CT_NODEPORT entry and a TRANSLATED flow
 *                                   for a new connection. 0 or a drop reason. An entry
 *                                   flagged LB_F_L7 too (a Gateway listener, an Ingress
 *                                   class's port) goes to this node's waypoint instead,
 *                                   recording the original destination as from_pod.c does
 *                                   (redirect.h): never SNATed, so the waypoint sees the
 *                                   client's own address (its X-Forwarded-For).
 *   nodeport_reply(skb, pkt, snat)  reverse the translation of a reply (snat: a reply from a
 *                                   remote backend arriving on the uplink; else a local
 *                                   backend's leaving by it): 1 when it was one, 0 when not,
 *                                   or a negative drop reason
 *
 * Entries (the agent's): for each port of a NodePort or LoadBalancer Service, this node's
 * address : nodePort and each status.loadBalancer.ingress IP : port, flagged LB_F_EXTERNAL,
 * plus LB_F_LOCAL for externalTrafficPolicy Local, whose backends are this node's only: none
 * there and the packet is dropped (DROP_NO_SERVICE), never sent to another node.
 *
 * Routing: the translated packet goes back to the stack (TC_ACT_OK), which forwards it. A
 * SNATed packet and the reversed reply carry the node's own address as source, which the
 * stack takes on the uplink only with net.ipv4.conf.<uplink>.accept_local=1 (the lab's
 * nodes set it). SNAT keeps the client's source port when no other client's open connection
 * to that backend holds it; otherwise it takes one of NODEPORT_SNAT_TRIES hashed ports from
 * NODEPORT_SNAT_MIN..65535, above Linux's default ephemeral range so the node's own sockets do
 * not collide, and records it in the client's CT_SERVICE entry (snat_port). When every try is
 * held the connection is dropped (DROP_CT_MAP_INSERTION_FAILED), never given another client's
 * replies.
 */
#ifndef TULLE_NODEPORT_H
#define TULLE_NODEPORT_H

#include "common.h"
#include "conntrack.h"
#include "drop.h"
#include "endpoints.h"
#include "events.h"
#include "lb.h"
#include "parse.h"
#include "redirect.h"

static __always_inline struct lb_service *nodeport_lookup(const struct tuple4 *t,
							  struct lb_key *key)
{
	struct lb_service *svc = lb_lookup_service(t, key);

	return svc && (svc->flags & LB_F_EXTERNAL) ? svc : NULL;
}

static __always_inline int nodeport_in_pod_cidr(__be32 addr)
{
	__u64 cidr = config_get(TULLE_CFG_POD_CIDR);
	__u32 len = cidr >> 32;
	__u32 mask;

	if (!cidr || len == 0 || len > 32)
		return 0;
	mask = len == 32 ? 0xffffffff : ~(0xffffffffU >> len);
	return (bpf_ntohl(addr) & mask) == (bpf_ntohl((__be32)cidr) & mask);
}

#define NODEPORT_SNAT_TRIES 8
#define NODEPORT_SNAT_MIN 61000
#define NODEPORT_SNAT_SPAN (65536 - NODEPORT_SNAT_MIN)

static __always_inline int nodeport_snats(const struct lb_service *svc, __be32 backend)
{
	return !(svc->flags & LB_F_LOCAL) && !nodeport_in_pod_cidr(backend);
}

/* The node-side port for a client's new SNATed connection to a backend, network order; 0 when
 * every candidate is held by another client's open connection. */
static __always_inline __be16 nodeport_snat_port(const struct tuple4 *client, __be32 node,
						  const struct lb_backend *backend)
{
	struct tuple4 t = { .saddr = node, .daddr = backend->addr, .sport = client->sport,
			    .dport = backend->port, .proto = client->proto };
	__u32 spread = (bpf_ntohl(client->saddr) * 2654435761U) ^ bpf_ntohs(client->sport);
	struct ct_entry *held;
	int i;

	for (i = 0; i < NODEPORT_SNAT_TRIES; i++) {
		held = ct_lookup(&t, CT_NODEPORT);
		if (!held || (held->flags & CT_F_CLOSED) ||
		    (held->backend_addr == client->saddr && held->backend_port == client->sport))
			return t.sport;
		t.sport = bpf_htons(NODEPORT_SNAT_MIN + (spread + i * 40503U) % NODEPORT_SNAT_SPAN);
	}
	return 0;
}

static __always_inline int nodeport_forward(struct __sk_buff *skb, struct pkt *p,
					    struct lb_key *key, const struct lb_service *svc)
{
	struct ct_entry fresh = {};
	struct ct_entry *svc_ct, *ct, *other;
	struct lb_backend backend;
	struct tuple4 client = p->tuple;
	__be32 node = (__be32)config_get(TULLE_CFG_NODE_ADDR);
	__be16 snat_port;
	int snat, ret;

	svc_ct = ct_lookup(&client, CT_SERVICE);
	if (svc_ct && !pkt_opens_tcp(p)) { /* a new connection always chooses afresh */
		backend.addr = svc_ct->backend_addr;
		backend.port = svc_ct->backend_port;
		snat_port = svc_ct->snat_port;
		svc_ct->last_seen_ns = bpf_ktime_get_ns();
		snat = nodeport_snats(svc, backend.addr);
	} else {
		if ((svc->flags & LB_F_L7) && waypoint_target(&backend.addr, &backend.port))
			redirect_record(&client, identity_of(client.saddr));
		else if (lb_select_backend(key, svc, &client, &backend) != 0)
			return DROP_NO_SERVICE; /* an L7 entry without a waypoint has no backends */
		snat = nodeport_snats(svc, backend.addr);
		snat_port = 0;
		if (snat) {
			if (!node)
				return DROP_NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION;
			snat_port = nodeport_snat_port(&client, node, &backend);
			if (!snat_port)
				return DROP_CT_MAP_INSERTION_FAILED; /* every candidate port is held */
		}
		fresh.backend_addr = backend.addr;
		fresh.backend_port = backend.port;
		fresh.snat_port = snat_port;
		if (ct_create(&client, CT_SERVICE, &fresh) != 0)
			return DROP_CT_MAP_INSERTION_FAILED;
	}
	if (snat && !node)
		return DROP_NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION;
	if (snat && !snat_port)
		snat_port = client.sport;
	ret = lb_dnat(skb, p, backend.addr, backend.port);
	if (!ret && snat)
		ret = lb_rev_nat(skb, p, node, snat_port);
	if (ret)
		return ret;

	ct = ct_lookup(&p->tuple, CT_NODEPORT);
	if (ct && snat && !(ct->flags & CT_F_CLOSED) &&
	    (ct->backend_addr != client.saddr || ct->backend_port != client.sport))
		return DROP_CT_MAP_INSERTION_FAILED; /* another CPU gave the port to another client */
	if (ct && pkt_opens_tcp(p) &&
	    (ct->rev_nat_addr != client.daddr || ct->rev_nat_port != client.dport))
		ct = NULL; /* a new connection to another address translated onto an old entry's
			    * tuple (two Gateway addresses both lead to the waypoint): its replies
			    * must come from the address this one dialled, so it starts afresh */
	if (ct_continues(ct, p)) {
		if (ct_account(ct, p, 0))
			trace_flow(p, EVENT_CLOSE, VERDICT_FORWARDED, OBS_FROM_NETWORK, DIR_INGRESS, ct,
				   ctx_ifindex(skb), 0);
		return 0;
	}
	__builtin_memset(&fresh, 0, sizeof(fresh));
	fresh.rev_nat_addr = client.daddr;
	fresh.rev_nat_port = client.dport;
	if (snat) {
		fresh.flags = CT_F_SNAT;
		fresh.backend_addr = client.saddr;
		fresh.backend_port = client.sport;
	}
	fresh.src_identity = identity_of(client.saddr);
	fresh.dst_identity = identity_of(backend.addr);
	return open_connection(skb, p, CT_NODEPORT, &fresh, VERDICT_TRANSLATED, OBS_FROM_NETWORK,
			       DIR_INGRESS, 0);
}

static __always_inline int nodeport_reply(struct __sk_buff *skb, struct pkt *p, int snat)
{
	struct tuple4 opened;
	struct ct_entry *ct;
	__be32 client;
	__be16 client_port;
	int first, ret;

	ct_reverse(&p->tuple, &opened);
	ct = ct_lookup(&opened, CT_NODEPORT);
	if (!ct || !(ct->flags & CT_F_SNAT) != !snat)
		return 0;
	first = !ct->packets_rev;
	client = ct->backend_addr;
	client_port = ct->backend_port;
	if (ct_account(ct, p, 1))
		trace_flow(p, EVENT_CLOSE, VERDICT_FORWARDED, snat ? OBS_FROM_NETWORK : OBS_TO_NETWORK,
			   DIR_INGRESS, ct, ctx_ifindex(skb), 1);
	if (first)
		trace_flow(p, EVENT_REPLY, VERDICT_TRANSLATED, snat ? OBS_FROM_NETWORK : OBS_TO_NETWORK,
			   DIR_INGRESS, ct, ctx_ifindex(skb), 1);
	ret = lb_rev_nat(skb, p, ct->rev_nat_addr, ct->rev_nat_port);
	if (!ret && snat) /* the node's address and the client's port back to the client */
		ret = lb_dnat(skb, p, client, client_port);
	return ret ? -ret : 1;
}

#endif /* TULLE_NODEPORT_H */
