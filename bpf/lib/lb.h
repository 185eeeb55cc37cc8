/* lb.h: ClusterIP load balancing. Maglev backend choice, ClientIP affinity, DNAT, reverse NAT.
 *
 *   lb_lookup_service(tuple)          struct lb_service for (VIP, port, proto), or NULL
 *   lb_select_backend(svc_key, svc, tuple, &backend)
 *                                     0 and a backend; -1 when the service has none
 *   lb_dnat(skb, pkt, addr, port)     rewrite destination, fixing checksums; 0 or a drop reason
 *   lb_rev_nat(skb, pkt, addr, port)  rewrite source (replies from the VIP); 0 or a drop reason
 *
 * Tables (written by agent/datapath/lbmaps.py from agent/datapath/services.py):
 *   lb_services_v1  (VIP, port, proto) -> backend count, ClientIP affinity timeout, flags
 *                   (LB_F_L7: connections go to this node's waypoint, see redirect.h)
 *   lb_backends_v1  (VIP, port, proto, index) -> backend address and port
 *   lb_maglev_v1    (VIP, port, proto) -> LB_MAGLEV_SIZE slots of backend indices
 *   lb_affinity_v1  (VIP, port, proto, client) -> last backend and when it was used
 * Updates write new backends at fresh indices, then swap the Maglev table in one map update,
 * so a packet never sees a table pointing at missing backends.
 */
#ifndef TULLE_LB_H
#define TULLE_LB_H

#include "common.h"
#include "drop.h"
#include "parse.h"
#include "pin.h"

#define LB_MAGLEV_SIZE 1021 /* prime; must equal agent/datapath/maglev.py MAGLEV_SIZE */

struct lb_key {
	__be32 vip;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

#define LB_F_L7 0x1 /* an HTTPRoute or Gateway listener: redirect to the local waypoint */
/* nodeport.h: a node address : nodePort or a LoadBalancer address : port, served on the uplink;
 * LB_F_LOCAL: externalTrafficPolicy Local (only this node's backends are listed). */
#define LB_F_EXTERNAL 0x4
#define LB_F_LOCAL 0x8

struct lb_service {
	__u32 backend_count;
	__u32 affinity_timeout; /* seconds; 0 = no ClientIP affinity */
	__u32 flags;            /* LB_F_* */
	__u32 pad;
};

struct lb_backend_key {
	struct lb_key svc;
	__u32 index;
};

struct lb_backend {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

struct lb_maglev {
	__u32 slots[LB_MAGLEV_SIZE];
};

struct lb_affinity_key {
	struct lb_key svc;
	__be32 client;
};

struct lb_affinity {
	__u64 last_used_ns;
	__u32 index;
	struct lb_backend backend;
};

PINNED_MAP("hash", struct lb_key, struct lb_service, lb_services_v1, 65536, 0);
PINNED_MAP("hash", struct lb_backend_key, struct lb_backend, lb_backends_v1, 262144, 0);
PINNED_MAP("hash", struct lb_key, struct lb_maglev, lb_maglev_v1, 65536, MAP_NO_PREALLOC);
PINNED_MAP("lru_hash", struct lb_affinity_key, struct lb_affinity, lb_affinity_v1, 65536, 0);

static __always_inline struct lb_service *lb_lookup_service(const struct tuple4 *t,
							    struct lb_key *key)
{
	key->vip = t->daddr;
	key->port = t->dport;
	key->proto = t->proto;
	key->pad = 0;
	return lb_services_v1.lookup(key);
}

/* murmur3's finaliser over the client half of the tuple: sequential source ports spread. */
static __always_inline __u32 lb_flow_hash(const struct tuple4 *t)
{
	__u32 h = t->saddr ^ ((__u32)t->sport << 16) ^ ((__u32)t->proto << 8);

	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline int lb_backend_at(const struct lb_key *svc, __u32 index,
					 struct lb_backend *out)
{
	struct lb_backend_key key = { .svc = *svc, .index = index };
	struct lb_backend *backend = lb_backends_v1.lookup(&key);

	if (!backend)
		return -1;
	*out = *backend;
	return 0;
}

static __always_inline int lb_select_backend(struct lb_key *svc_key,
					     const struct lb_service *svc,
					     const struct tuple4 *t, struct lb_backend *out)
{
	struct lb_affinity_key akey = { .svc = *svc_key, .client = t->saddr };
	struct lb_affinity *aff = NULL;
	struct lb_maglev *table;
	__u64 now = bpf_ktime_get_ns();
	__u32 index, slot;

	if (svc->backend_count == 0)
		return -1;
	if (svc->affinity_timeout) {
		aff = lb_affinity_v1.lookup(&akey);
		if (aff && now - aff->last_used_ns < (__u64)svc->affinity_timeout * 1000000000ULL &&
		    lb_backend_at(svc_key, aff->index, out) == 0 &&
		    out->addr == aff->backend.addr && out->port == aff->backend.port) {
			aff->last_used_ns = now;
			return 0;
		}
	}
	table = lb_maglev_v1.lookup(svc_key);
	if (!table)
		return -1;
	slot = lb_flow_hash(t) % LB_MAGLEV_SIZE;
	/* Hide the modulo from clang so it keeps the check the verifier needs to see. */
	asm volatile("" : "+r"(slot));
	if (slot >= LB_MAGLEV_SIZE)
		return -1;
	index = table->slots[slot];
	if (lb_backend_at(svc_key, index, out) != 0)
		return -1;
	if (svc->affinity_timeout) {
		struct lb_affinity fresh = { .last_used_ns = now, .index = index, .backend = *out };

		lb_affinity_v1.update(&akey, &fresh);
	}
	return 0;
}

#define IP_DADDR_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))
#define IP_SADDR_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))

/* Rewrite one address and the port next to it (source or destination) with checksums. */
static __always_inline int lb_rewrite(struct __sk_buff *skb, const struct pkt *p, int dest,
				      __be32 from_addr, __be32 to_addr, __be16 from_port,
				      __be16 to_port)
{
	__u32 addr_off = dest ? IP_DADDR_OFF : IP_SADDR_OFF;
	__u32 port_off = p->l4_off + (dest ? offsetof(struct tcphdr, dest)
					    : offsetof(struct tcphdr, source));
	int csum_rel = l4_csum_offset(p->tuple.proto);
	__u64 mangled = p->tuple.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__u32 csum_off;

	if (!pkt_has_l4(p)) /* a later fragment: the first one's L4 checksum covered it all */
		goto l3;
	if (csum_rel < 0 || p->tuple.proto == IPPROTO_ICMP)
		return DROP_UNKNOWN_L4_PROTOCOL;
	csum_off = p->l4_off + csum_rel;
	if (csum_l4_replace(skb, csum_off, from_addr, to_addr, BPF_F_PSEUDO_HDR | mangled) < 0)
		return DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM;
	if (from_port != to_port &&
	    csum_l4_replace_port(skb, csum_off, from_port, to_port, mangled) < 0)
		return DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM;
	if (from_port != to_port &&
	    bpf_skb_store_bytes(skb, port_off, &to_port, sizeof(to_port), 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
l3:
	if (csum_l3_replace(skb, IPV4_CSUM_OFF, from_addr, to_addr) < 0)
		return DROP_ERROR_WHILE_CORRECTING_L3_CHECKSUM;
	if (bpf_skb_store_bytes(skb, addr_off, &to_addr, sizeof(to_addr), 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	return 0;
}

static __always_inline int lb_dnat(struct __sk_buff *skb, struct pkt *p, __be32 addr,
				   __be16 port)
{
	int err = lb_rewrite(skb, p, 1, p->tuple.daddr, addr, p->tuple.dport, port);

	if (!err) {
		p->tuple.daddr = addr;
		p->tuple.dport = port;
	}
	return err;
}

static __always_inline int lb_rev_nat(struct __sk_buff *skb, struct pkt *p, __be32 addr,
				      __be16 port)
{
	int err = lb_rewrite(skb, p, 0, p->tuple.saddr, addr, p->tuple.sport, port);

	if (!err) {
		p->tuple.saddr = addr;
		p->tuple.sport = port;
	}
	return err;
}

#endif /* TULLE_LB_H */
