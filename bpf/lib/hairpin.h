/* hairpin.h: a pod reaching itself through its own Service.
 *
 * DNAT alone would hand the pod a packet from its own address, which its stack drops as a
 * martian. So, like Cilium's loopback address, the hairpinned packet also gets its source
 * rewritten to HAIRPIN_ADDR (169.254.42.1, link-local: never a pod, node or service):
 *
 *   from-pod   pod:s -> VIP:80  DNAT -> pod:s -> pod:8080  conntrack (CT_EGRESS, reverse NAT
 *              to the VIP as for any client)  then hairpin_snat -> H:s -> pod:8080
 *   to-pod     H:s -> pod:8080 is a new ingress connection; hairpin_peer() makes policy judge
 *              it as the pod itself (the real client), and only while the pod's CT_EGRESS
 *              entry pod:s -> pod:8080 exists, so nobody else can borrow the address
 *   from-pod   the reply pod:8080 -> H:s is a reply of that ingress connection;
 *              hairpin_reply -> pod:8080 -> pod:s
 *   to-pod     a reply of the pod's egress connection: reverse NAT -> VIP:80 -> pod:s
 *
 *   hairpin_snat(skb, pkt)                  source -> HAIRPIN_ADDR; 0 or a drop reason
 *   hairpin_reply(skb, pkt, ep_ip)          destination HAIRPIN_ADDR -> ep_ip; 0 or a drop reason
 *   hairpin_peer(pkt, ep_ip)                1 when pkt is the pod's own hairpinned connection
 */
#ifndef TULLE_HAIRPIN_H
#define TULLE_HAIRPIN_H

#include "common.h"
#include "conntrack.h"
#include "lb.h"
#include "parse.h"

#define HAIRPIN_ADDR bpf_htonl(0xa9fe2a01) /* 169.254.42.1 */

static __always_inline int hairpin_snat(struct __sk_buff *skb, struct pkt *p)
{
	int err = lb_rewrite(skb, p, 0, p->tuple.saddr, HAIRPIN_ADDR, p->tuple.sport,
			     p->tuple.sport);

	if (!err)
		p->tuple.saddr = HAIRPIN_ADDR;
	return err;
}

static __always_inline int hairpin_reply(struct __sk_buff *skb, struct pkt *p, __be32 ep_ip)
{
	int err = lb_rewrite(skb, p, 1, HAIRPIN_ADDR, ep_ip, p->tuple.dport, p->tuple.dport);

	if (!err)
		p->tuple.daddr = ep_ip;
	return err;
}

static __always_inline int hairpin_peer(const struct pkt *p, __be32 ep_ip)
{
	struct tuple4 own = p->tuple;

	if (p->tuple.saddr != HAIRPIN_ADDR)
		return 0;
	own.saddr = ep_ip;
	return ct_lookup(&own, CT_EGRESS) != NULL;
}

#endif /* TULLE_HAIRPIN_H */
