/* icmp.h: ICMP errors belong to the connection whose packet they quote, so path MTU discovery
 * ("fragmentation needed"), unreachables and time-exceeded reach the pod under policy, and an
 * error that quotes no connection of the pod meets policy like any other packet.
 *
 *   icmp_error_quote(skb, pkt, &quote)   1 when pkt is an ICMP error (destination unreachable,
 *                                        time exceeded, parameter problem) whose quoted IPv4
 *                                        header (+ ports for TCP/UDP) could be read, else 0
 *   icmp_xlate(skb, pkt, quote, dest, from, to, from_port, to_port)
 *                                        rewrite the quoted destination (dest=1) or source
 *                                        (dest=0) address and port, and the outer source
 *                                        (resp. destination) when it is the same address, so
 *                                        the error matches the translated connection as the
 *                                        pod knows it (Cilium does the same). 0 or a drop reason.
 *
 * Checksums: the quoted IP header's and the ICMP checksum are kept right; a quoted UDP checksum
 * is left stale, as receivers never verify a quote's L4 checksum (the quote is usually cut).
 */
#ifndef TULLE_ICMP_H
#define TULLE_ICMP_H

#include "common.h"
#include "drop.h"
#include "parse.h"

#ifndef ICMP_PARAMETERPROB
#define ICMP_PARAMETERPROB 12
#endif

#define ICMP_ERROR_HLEN 8 /* type, code, checksum, 4 bytes (unused / next-hop MTU / pointer) */

struct icmp_quote {
	struct tuple4 tuple; /* the quoted packet's, as it was sent */
	__u32 ip_off;        /* offset of the quoted IPv4 header */
	__u32 l4_off;        /* offset of the quoted L4 header */
};

static __always_inline int icmp_error_quote(struct __sk_buff *skb, const struct pkt *p,
					    struct icmp_quote *q)
{
	struct iphdr *ip4;
	__be16 *ports;

	if (p->tuple.proto != IPPROTO_ICMP || !pkt_has_l4(p))
		return 0;
	if (p->icmp_type != ICMP_DEST_UNREACH && p->icmp_type != ICMP_TIME_EXCEEDED &&
	    p->icmp_type != ICMP_PARAMETERPROB)
		return 0;
	__builtin_memset(q, 0, sizeof(*q));
	q->ip_off = p->l4_off + ICMP_ERROR_HLEN;
	ip4 = ctx_header(skb, q->ip_off, sizeof(*ip4));
	if (!ip4 || ip4->version != 4 || ip4->ihl < 5)
		return 0;
	q->tuple.saddr = ip4->saddr;
	q->tuple.daddr = ip4->daddr;
	q->tuple.proto = ip4->protocol;
	q->l4_off = q->ip_off + ip4->ihl * 4;
	if (q->tuple.proto != IPPROTO_TCP && q->tuple.proto != IPPROTO_UDP)
		return 1; /* ICMP (an echo) and the rest: no ports, as conntrack keys them */
	ports = ctx_header(skb, q->l4_off, 2 * sizeof(__be16));
	if (!ports)
		return 0;
	q->tuple.sport = ports[0];
	q->tuple.dport = ports[1];
	return 1;
}

static __always_inline int icmp_xlate(struct __sk_buff *skb, const struct pkt *p,
				      const struct icmp_quote *q, int dest, __be32 from, __be32 to,
				      __be16 from_port, __be16 to_port)
{
	__u32 icmp_csum = p->l4_off + offsetof(struct icmphdr, checksum);
	__u32 quote_csum = q->ip_off + offsetof(struct iphdr, check);
	__u32 quote_addr = q->ip_off + (dest ? offsetof(struct iphdr, daddr)
					     : offsetof(struct iphdr, saddr));
	__u32 outer_addr = ETH_HLEN + (dest ? offsetof(struct iphdr, saddr)
					    : offsetof(struct iphdr, daddr));
	__be32 outer = dest ? p->tuple.saddr : p->tuple.daddr;
	__be16 old_sum, new_sum;

	/* The quoted header's checksum first; the ICMP checksum then covers that change too. */
	if (ctx_load_bytes(skb, quote_csum, &old_sum, sizeof(old_sum)) < 0 ||
	    csum_l3_replace(skb, quote_csum, from, to) < 0 ||
	    ctx_load_bytes(skb, quote_csum, &new_sum, sizeof(new_sum)) < 0)
		return DROP_ERROR_WHILE_CORRECTING_L3_CHECKSUM;
	if (bpf_skb_store_bytes(skb, quote_addr, &to, sizeof(to), 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	if (csum_l4_replace(skb, icmp_csum, from, to, 0) < 0 ||
	    csum_l4_replace_port(skb, icmp_csum, old_sum, new_sum, 0) < 0)
		return DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM;
	if (from_port != to_port &&
	    (q->tuple.proto == IPPROTO_TCP || q->tuple.proto == IPPROTO_UDP)) {
		__u32 port_off = q->l4_off + (dest ? 2 : 0);

		if (bpf_skb_store_bytes(skb, port_off, &to_port, sizeof(to_port), 0) < 0)
			return DROP_ERROR_WRITING_TO_PACKET;
		if (csum_l4_replace_port(skb, icmp_csum, from_port, to_port, 0) < 0)
			return DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM;
	}
	/* The router that sent it keeps its address; the translated peer itself does not. ICMP
	 * has no pseudo header, so only the outer IP checksum changes. */
	if (outer == from) {
		if (csum_l3_replace(skb, IPV4_CSUM_OFF, from, to) < 0)
			return DROP_ERROR_WHILE_CORRECTING_L3_CHECKSUM;
		if (bpf_skb_store_bytes(skb, outer_addr, &to, sizeof(to), 0) < 0)
			return DROP_ERROR_WRITING_TO_PACKET;
	}
	return 0;
}

#endif /* TULLE_ICMP_H */
