/* nonip.h: frames that are not IPv4. Until dual-stack lands nothing but IPv4 and ARP may
 * reach or leave a pod, so IPv6 (NDP included: with IPv6 dropped wholesale a pod needs no
 * neighbour discovery) and every other EtherType are dropped, never passed unpoliced.
 *
 *   nonip_from_pod(skb, pkt, ep_ip)   0 to pass (a well-formed ARP whose sender is the pod's
 *                                     own address), else a drop reason; fills pkt.tuple's
 *                                     addresses with ARP's sender and target for the flow
 *   nonip_to_pod(skb, pkt)            0 to pass (ARP, from the node), else a drop reason
 *
 * ARP anti-spoofing: a pod may only speak for its own address. A request or reply (gratuitous
 * ones included) whose sender IP is another address would teach the node's neighbour table
 * that this veth owns it, so it is dropped. A probe (RFC 5227: sender 0.0.0.0) claims nothing
 * and passes.
 */
#ifndef TULLE_NONIP_H
#define TULLE_NONIP_H

#include "common.h"
#include "drop.h"
#include "parse.h"

#define ARPHRD_ETHER_BE bpf_htons(1)
#define ARP_OP_REQUEST 1
#define ARP_OP_REPLY 2

/* ARP for Ethernet and IPv4 (RFC 826). Addresses are not 4-aligned: read by copy, not cast. */
struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__be32 spa;
	__u8 tha[ETH_ALEN];
	__be32 tpa;
} __attribute__((packed));

/* 0 and the ARP body, or a drop reason for anything but well-formed Ethernet/IPv4 ARP. */
static __always_inline int arp_parse(struct __sk_buff *skb, struct pkt *p, struct arp_eth_ipv4 *arp)
{
	if (ctx_load_bytes(skb, ETH_HLEN, arp, sizeof(*arp)) < 0)
		return DROP_INVALID_PACKET_DROPPED;
	if (arp->htype != ARPHRD_ETHER_BE || arp->ptype != bpf_htons(ETH_P_IP) ||
	    arp->hlen != ETH_ALEN || arp->plen != 4)
		return DROP_INVALID_PACKET_DROPPED;
	if (arp->op != bpf_htons(ARP_OP_REQUEST) && arp->op != bpf_htons(ARP_OP_REPLY))
		return DROP_INVALID_PACKET_DROPPED;
	p->tuple.saddr = arp->spa;
	p->tuple.daddr = arp->tpa;
	return 0;
}

static __always_inline int nonip_from_pod(struct __sk_buff *skb, struct pkt *p, __be32 ep_ip)
{
	struct arp_eth_ipv4 arp;
	int ret;

	if (p->eth_proto != bpf_htons(ETH_P_ARP))
		return DROP_UNSUPPORTED_L3_PROTOCOL;
	ret = arp_parse(skb, p, &arp);
	if (ret)
		return ret;
	if (arp.spa == ep_ip)
		return 0;
	if (arp.spa == 0 && arp.op == bpf_htons(ARP_OP_REQUEST))
		return 0; /* a probe */
	return DROP_INVALID_SOURCE_IP;
}

static __always_inline int nonip_to_pod(struct __sk_buff *skb, struct pkt *p)
{
	struct arp_eth_ipv4 arp;

	if (p->eth_proto != bpf_htons(ETH_P_ARP))
		return DROP_UNSUPPORTED_L3_PROTOCOL;
	return arp_parse(skb, p, &arp);
}

#endif /* TULLE_NONIP_H */
