/* parse.h: one bounds-checked parse of Ethernet + IPv4 + L4 into a struct pkt.
 *
 *   parse_packet(skb, &pkt)    PARSE_OK, PARSE_NOT_IPV4 (pkt.eth_proto says what it is: the
 *                              caller decides, see nonip.h), or a drop reason (> 0) for a
 *                              malformed packet
 *   pkt.tuple                  5-tuple in network order; ports 0 for ICMP and for a later
 *                              fragment until frag.h fills them in
 *   pkt.l4_off                 offset of the L4 header (IP options honoured)
 *   pkt.tcp_flags              TCP flag byte (FIN 0x01 … CWR 0x80), 0 otherwise
 *   pkt.fragment               1 for any piece of a fragmented datagram
 *   pkt.later_fragment         1 for a piece after the first: payload only, no L4 header
 *   pkt.eth_proto, pkt.ip_id   EtherType; IPv4 identification (keys fragment tracking)
 *   pkt_has_l4(pkt)            the packet carries its L4 header (not a later fragment)
 *   pkt_opens_tcp(pkt)         a bare SYN: always a new connection
 */
#ifndef TULLE_PARSE_H
#define TULLE_PARSE_H

#include "common.h"
#include "drop.h"

#define PARSE_OK 0
#define PARSE_NOT_IPV4 (-1)

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

struct pkt {
	struct tuple4 tuple;
	__u32 l4_off;
	__u32 len;
	__u8 tcp_flags;
	__u8 fragment;
	__u8 icmp_type;
	__u8 later_fragment;
	__be16 eth_proto;
	__be16 ip_id;
};

static __always_inline int parse_packet(struct __sk_buff *skb, struct pkt *p)
{
	struct ethhdr *eth = ctx_header(skb, 0, sizeof(*eth));
	struct iphdr *ip4;
	__u32 ihl_len;

	__builtin_memset(p, 0, sizeof(*p));
	p->len = skb->len;
	if (!eth)
		return DROP_INVALID_PACKET_DROPPED;
	p->eth_proto = eth->h_proto;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSE_NOT_IPV4;
	ip4 = ctx_header(skb, ETH_HLEN, sizeof(*ip4));
	if (!ip4)
		return DROP_INVALID_PACKET_DROPPED;
	if (ip4->version != 4 || ip4->ihl < 5)
		return DROP_INVALID_PACKET_DROPPED;
	ihl_len = ip4->ihl * 4;
	if (bpf_ntohs(ip4->tot_len) < ihl_len || ETH_HLEN + bpf_ntohs(ip4->tot_len) > skb->len)
		return DROP_INVALID_PACKET_DROPPED;
	p->tuple.saddr = ip4->saddr;
	p->tuple.daddr = ip4->daddr;
	p->tuple.proto = ip4->protocol;
	p->fragment = ipv4_is_fragment(ip4);
	p->later_fragment = !ipv4_has_l4(ip4);
	p->ip_id = ip4->id;
	p->l4_off = ETH_HLEN + ihl_len;
	if (p->later_fragment)
		return PARSE_OK; /* payload only: never read ports from it (frag.h supplies them) */

	switch (p->tuple.proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = ctx_header(skb, p->l4_off, sizeof(*th));

		if (!th || th->doff < 5)
			return DROP_CT_TRUNCATED_OR_INVALID_HEADER;
		p->tuple.sport = th->source;
		p->tuple.dport = th->dest;
		p->tcp_flags = ((__u8 *)th)[13];
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = ctx_header(skb, p->l4_off, sizeof(*uh));

		if (!uh)
			return DROP_CT_TRUNCATED_OR_INVALID_HEADER;
		p->tuple.sport = uh->source;
		p->tuple.dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ic = ctx_header(skb, p->l4_off, sizeof(*ic));

		if (!ic)
			return DROP_CT_TRUNCATED_OR_INVALID_HEADER;
		p->icmp_type = ic->type;
		break;
	}
	default:
		break; /* other protocols: no ports; policy treats them by protocol only */
	}
	return PARSE_OK;
}

static __always_inline int pkt_has_l4(const struct pkt *p)
{
	return !p->later_fragment;
}

/* The first packet of a new TCP connection (SYN without ACK). It never continues an old
 * connection: a reused source port must not inherit a closed entry's NAT or backend. */
static __always_inline int pkt_opens_tcp(const struct pkt *p)
{
	return p->tuple.proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

#endif /* TULLE_PARSE_H */
