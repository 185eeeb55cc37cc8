/* redirect.h: steering L7 connections to this node's waypoint, keeping what they asked for.
 *
 *   waypoint_target(&addr, &port)     1 and the waypoint's address when one is configured
 *   l7_wanted(all, some, tuple)       whether this connection needs the waypoint: every
 *                                     client's (LB_F_L7: producer routes, Gateways), or only
 *                                     listed clients' (LB_F_L7_CLIENTS: a Service port with
 *                                     only consumer routes, for pods in those routes'
 *                                     namespaces; everyone else stays plain L4)
 *   redirect_record(tuple, identity)  remember the client's original destination (VIP:port)
 *                                     and identity; the waypoint reads l7_orig_dst_v1 with the
 *                                     client address and port of the connection it accepted
 *   waypoint_sent(skb, saddr)         0 when saddr is this node's waypoint address but the
 *                                     packet does not carry TULLE_MARK_WAYPOINT (SO_MARK, which
 *                                     needs CAP_NET_ADMIN): another local process bound it
 * The connection is DNATed to the waypoint like to any backend, so conntrack reverse-NATs its
 * replies back to the VIP: the client never sees the waypoint.
 */
#ifndef TULLE_REDIRECT_H
#define TULLE_REDIRECT_H

#include "common.h"
#include "pin.h"

struct orig_dst_key {
	__be32 client;
	__be16 client_port;
	__u8 proto;
	__u8 pad;
};

struct orig_dst {
	__be32 vip;
	__be16 vport;
	__u16 pad;
	__u32 client_identity;
	__u32 pad2;
	__u64 created_ns;
};

/* SO_MARK of the waypoint's upstream sockets. Python reads this enum from here. */
enum tulle_mark {
	TULLE_MARK_WAYPOINT = 0x7e1e0000, /* the local waypoint's own connections to backends */
};

#define LB_F_L7_CLIENTS 0x2 /* lb_service flag: only clients in l7_clients_v1 go to the waypoint */

struct l7_client_key {
	__be32 vip;
	__be32 client;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

PINNED_MAP("hash", struct l7_client_key, __u32, l7_clients_v1, 65536, 0);

PINNED_MAP("lru_hash", struct orig_dst_key, struct orig_dst, l7_orig_dst_v1, 65536, 0);

static __always_inline int waypoint_target(__be32 *addr, __be16 *port)
{
	__u64 packed = config_get(TULLE_CFG_WAYPOINT);

	if (!packed)
		return 0;
	*addr = (__be32)(packed & 0xffffffff);
	*port = (__be16)(packed >> 32);
	return 1;
}

static __always_inline int l7_wanted(__u32 all, __u32 some, const struct tuple4 *t)
{
	struct l7_client_key key = {
		.vip = t->daddr, .client = t->saddr, .port = t->dport, .proto = t->proto,
	};

	if (all)
		return 1;
	return some && l7_clients_v1.lookup(&key) != NULL;
}

/* A remote waypoint's address is trusted as the fabric is (no mark crosses the wire; pods
 * cannot send from it: anti-spoofing), until node-to-node mTLS (issue 11). */
static __always_inline int waypoint_sent(const struct __sk_buff *skb, __be32 saddr)
{
	__u64 packed = config_get(TULLE_CFG_WAYPOINT);

	if (!packed || saddr != (__be32)(packed & 0xffffffff))
		return 1;
	return skb->mark == TULLE_MARK_WAYPOINT;
}

static __always_inline void redirect_record(const struct tuple4 *t, __u32 client_identity)
{
	struct orig_dst_key key = { .client = t->saddr, .client_port = t->sport, .proto = t->proto };
	struct orig_dst val = {
		.vip = t->daddr,
		.vport = t->dport,
		.client_identity = client_identity,
		.created_ns = bpf_ktime_get_ns(),
	};

	l7_orig_dst_v1.update(&key, &val);
}

#endif /* TULLE_REDIRECT_H */
