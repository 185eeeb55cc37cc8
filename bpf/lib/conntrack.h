/* conntrack.h: per-node connection tracking, one entry per connection and direction.
 *
 *   CT_EGRESS   created where a local pod opened the connection (from-pod, after DNAT)
 *   CT_INGRESS  created where a local pod accepted it (to-pod)
 *   CT_SERVICE  client -> VIP tuple, remembering the chosen backend
 *
 *   ct_lookup(tuple, dir)               entry or NULL
 *   ct_continues(entry, pkt)            the entry carries this packet's connection (not a
 *                                       closed one whose tuple a new SYN is reusing)
 *   ct_reverse(tuple, &out)             swap addresses and ports (the reply's key)
 *   ct_create(tuple, dir, &entry)       0, or -1 when the map refused the insert
 *   ct_translated(entry)                a Service translated this egress connection (its
 *                                       rev_nat is a VIP)
 *   ct_account(entry, pkt, is_reply)    counters, TCP flags, last-seen; returns 1 exactly once,
 *                                       when this packet closed the connection (RST, or FINs
 *                                       both ways)
 * The agent's CT garbage collector removes idle and closed entries and reports UDP flows.
 */
#ifndef TULLE_CONNTRACK_H
#define TULLE_CONNTRACK_H

#include "common.h"
#include "parse.h"
#include "pin.h"

#define CT_EGRESS 1
#define CT_INGRESS 2
#define CT_SERVICE 3
/* nodeport.h: a connection from outside through a NodePort or LoadBalancer address, keyed on
 * the tuple as it leaves for the backend; rev_nat_* hold the address the client dialled. */
#define CT_NODEPORT 4

#define CT_F_FIN_FWD 0x1
#define CT_F_FIN_REV 0x2
#define CT_F_CLOSED 0x4
/* CT_EGRESS of a connection sent to the waypoint's tunnel (mtls.h): backend_* hold its real
 * destination, which the flows name. */
#define CT_F_TUNNEL 0x8
/* CT_NODEPORT whose source was rewritten to the node's address (externalTrafficPolicy Cluster,
 * remote backend): backend_* hold the client's address and port. */
#define CT_F_SNAT 0x10

struct ct_key {
	struct tuple4 tuple;
	__u8 dir;
	__u8 pad[3];
};

struct ct_entry {
	__u64 created_ns;
	__u64 last_seen_ns;
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__be32 rev_nat_addr; /* the VIP the client asked for; 0 when not translated */
	__be16 rev_nat_port;
	__be16 snat_port; /* CT_SERVICE from outside (nodeport.h): the node-side port the client's
			   * connection is SNATed to; 0 when not SNATed */
	__be32 backend_addr; /* CT_SERVICE: the backend chosen for this client tuple;
			      * CT_EGRESS with CT_F_TUNNEL: the real destination */
	__be16 backend_port;
	__u8 tcp_flags_fwd;
	__u8 tcp_flags_rev;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 ifindex;
	__u32 flags; /* CT_F_* */
};

#define CT_MAX_ENTRIES 262144

PINNED_MAP("lru_hash", struct ct_key, struct ct_entry, ct_v1, CT_MAX_ENTRIES, 0);

static __always_inline struct ct_entry *ct_lookup(const struct tuple4 *tuple, __u8 dir)
{
	struct ct_key key = { .tuple = *tuple, .dir = dir };

	return ct_v1.lookup(&key);
}

static __always_inline int ct_continues(const struct ct_entry *e, const struct pkt *p)
{
	return e && !((e->flags & CT_F_CLOSED) && pkt_opens_tcp(p));
}

static __always_inline void ct_reverse(const struct tuple4 *in, struct tuple4 *out)
{
	out->saddr = in->daddr;
	out->daddr = in->saddr;
	out->sport = in->dport;
	out->dport = in->sport;
	out->proto = in->proto;
	out->pad[0] = out->pad[1] = out->pad[2] = 0;
}

/* Whether a Service translated this egress connection: rev_nat holds the VIP then. A tunnelled
 * one (CT_F_TUNNEL) reverse-NATs even without a Service, from the waypoint to the destination
 * itself, which is no translation the client asked for. */
static __always_inline int ct_translated(const struct ct_entry *e)
{
	if (!(e->flags & CT_F_TUNNEL))
		return e->rev_nat_addr != 0;
	return e->rev_nat_addr != e->backend_addr || e->rev_nat_port != e->backend_port;
}

static __always_inline int ct_create(const struct tuple4 *tuple, __u8 dir, struct ct_entry *entry)
{
	struct ct_key key = { .tuple = *tuple, .dir = dir };

	entry->created_ns = entry->last_seen_ns = bpf_ktime_get_ns();
	return ct_v1.update(&key, entry) == 0 ? 0 : -1;
}

static __always_inline int ct_account(struct ct_entry *e, const struct pkt *p, int is_reply)
{
	__u32 fin = is_reply ? CT_F_FIN_REV : CT_F_FIN_FWD;
	__u32 flags = e->flags;

	e->last_seen_ns = bpf_ktime_get_ns();
	if (is_reply) {
		__sync_fetch_and_add(&e->packets_rev, 1);
		__sync_fetch_and_add(&e->bytes_rev, p->len);
		e->tcp_flags_rev |= p->tcp_flags;
	} else {
		__sync_fetch_and_add(&e->packets_fwd, 1);
		__sync_fetch_and_add(&e->bytes_fwd, p->len);
		e->tcp_flags_fwd |= p->tcp_flags;
	}
	if (p->tuple.proto != IPPROTO_TCP || (flags & CT_F_CLOSED))
		return 0;
	if (p->tcp_flags & TCP_FLAG_FIN)
		flags |= fin;
	if ((p->tcp_flags & TCP_FLAG_RST) || (flags & (CT_F_FIN_FWD | CT_F_FIN_REV)) ==
						    (CT_F_FIN_FWD | CT_F_FIN_REV)) {
		e->flags = flags | CT_F_CLOSED;
		return 1;
	}
	e->flags = flags;
	return 0;
}

#endif /* TULLE_CONNTRACK_H */
