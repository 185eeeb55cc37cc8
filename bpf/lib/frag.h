/* frag.h: IPv4 fragments, the way Cilium handles them. Only the first fragment carries the
 * L4 header, so it records its ports under (source, destination, protocol, IP id); later
 * fragments take their ports from there and so meet the same service translation,
 * conntrack entry and policy verdict as the first (their rewrite is L3 only: lb.h).
 *
 *   frag_track(pkt)   0 (pkt.tuple has its ports, also for a later fragment), or a drop
 *                     reason: DROP_FRAG_NOT_SUPPORTED when TULLE_CFG_DROP_FRAGMENTS is set,
 *                     DROP_FRAG_NOT_FOUND (230) for a later fragment whose first was never seen
 *                     (out of order, or a crafted fragment hoping to slip past policy)
 *
 * Call it before the packet's tuple is used and before any NAT: the key is the datagram's
 * addresses as they arrive at this hook, and each hook (from-pod, to-pod) tracks its own.
 * Entries are not removed: the LRU evicts them, and an IP id is reused only after 65536
 * datagrams between the same pair.
 */
#ifndef TULLE_FRAG_H
#define TULLE_FRAG_H

#include "common.h"
#include "drop.h"
#include "parse.h"
#include "pin.h"

struct frag_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 proto;
	__u8 pad;
};

struct frag_ports {
	__be16 sport;
	__be16 dport;
};

PINNED_MAP("lru_hash", struct frag_key, struct frag_ports, frag_v1, 8192, 0);

static __always_inline int frag_track(struct pkt *p)
{
	struct frag_key key = {};
	struct frag_ports *known;

	if (!p->fragment)
		return 0;
	if (config_get(TULLE_CFG_DROP_FRAGMENTS))
		return DROP_FRAG_NOT_SUPPORTED;
	key.saddr = p->tuple.saddr;
	key.daddr = p->tuple.daddr;
	key.id = p->ip_id;
	key.proto = p->tuple.proto;
	if (pkt_has_l4(p)) {
		struct frag_ports ports = { .sport = p->tuple.sport, .dport = p->tuple.dport };

		return frag_v1.update(&key, &ports) == 0 ? 0 : DROP_CT_MAP_INSERTION_FAILED;
	}
	known = frag_v1.lookup(&key);
	if (!known)
		return DROP_FRAG_NOT_FOUND;
	p->tuple.sport = known->sport;
	p->tuple.dport = known->dport;
	return 0;
}

#endif /* TULLE_FRAG_H */
