/* probe_parse.c: a tc classifier that proves the loader and the test-run harness.
 *
 * It parses Ethernet, IPv4 (options included) and TCP/UDP/ICMP with bounds checks, records what
 * it saw in probe_result_v1, copies the drop reason (0 = none) into skb->cb[0], and returns
 * TC_ACT_OK, or TC_ACT_SHOT through send_drop() for malformed IPv4. Frames that are not IPv4
 * (ARP, IPv6, ...) pass untouched: the probe has no opinion on them. Never attached to a device.
 * "site:" comments name each drop for tests/bpf, which check the line a drop records: the drop
 * is on the line after its site comment.
 */
#include "common.h"
#include "drop.h"

#define FRAG_NONE 0
#define FRAG_FIRST 1 /* carries the L4 header */
#define FRAG_LATER 2 /* payload only: no ports to read */

struct probe_result {
	struct tuple4 tuple;
	__u16 eth_proto;  /* host order */
	__u8 l4_parsed;   /* 1 when ports or ICMP type/code came from an L4 header */
	__u8 fragment;    /* FRAG_* */
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 pad;
	__u32 drop_reason; /* enum drop_reason, 0 when the packet passed */
	/* ctx fields as the program saw them, to prove ctx_in reaches the program */
	__u32 mark;
	__u32 priority;
	__u32 ifindex;
	__u32 ingress_ifindex;
	__u32 cb1;
};

BPF_ARRAY(probe_result_v1, struct probe_result, 1);

/* Note the reason for the test, then drop; a macro so send_drop() sees the caller's line. */
#define probe_drop(skb, res, reason) ((res)->drop_reason = (reason), send_drop(skb, reason))

static __always_inline int parse_l4(struct __sk_buff *skb, struct probe_result *res, __u32 off)
{
	switch (res->tuple.proto) {
	case IPPROTO_TCP: {
		struct tcphdr *th = ctx_header(skb, off, sizeof(*th));

		if (!th || th->doff < 5) /* site: tcp header */
			return probe_drop(skb, res, DROP_CT_TRUNCATED_OR_INVALID_HEADER);
		res->tuple.sport = th->source;
		res->tuple.dport = th->dest;
		break;
	}
	case IPPROTO_UDP: {
		struct udphdr *uh = ctx_header(skb, off, sizeof(*uh));

		if (!uh) /* site: udp header */
			return probe_drop(skb, res, DROP_CT_TRUNCATED_OR_INVALID_HEADER);
		res->tuple.sport = uh->source;
		res->tuple.dport = uh->dest;
		break;
	}
	case IPPROTO_ICMP: {
		struct icmphdr *ih = ctx_header(skb, off, sizeof(*ih));

		if (!ih) /* site: icmp header */
			return probe_drop(skb, res, DROP_CT_TRUNCATED_OR_INVALID_HEADER);
		res->icmp_type = ih->type;
		res->icmp_code = ih->code;
		break;
	}
	default:
		return TC_ACT_OK; /* other L4 protocols pass, unparsed */
	}
	res->l4_parsed = 1;
	return TC_ACT_OK;
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct probe_result *res)
{
	struct iphdr *ip4 = ctx_header(skb, ETH_HLEN, sizeof(*ip4));
	__u32 hdr_len, tot_len;
	int has_l4;

	if (!ip4) /* site: truncated ipv4 header */
		return probe_drop(skb, res, DROP_INVALID_PACKET_DROPPED);
	if (ip4->version != 4 || ip4->ihl < 5) /* site: version or ihl */
		return probe_drop(skb, res, DROP_INVALID_PACKET_DROPPED);
	hdr_len = ip4->ihl * 4;
	tot_len = bpf_ntohs(ip4->tot_len);
	/* tot_len must cover the header (options included) and fit in the frame; trailing
	 * Ethernet padding beyond tot_len is fine. */
	if (tot_len < hdr_len || ETH_HLEN + tot_len > skb->len) /* site: tot_len */
		return probe_drop(skb, res, DROP_INVALID_PACKET_DROPPED);

	/* Copy out everything we need: ctx_header() below may move the packet. */
	res->tuple.saddr = ip4->saddr;
	res->tuple.daddr = ip4->daddr;
	res->tuple.proto = ip4->protocol;
	has_l4 = ipv4_has_l4(ip4);
	if (ipv4_is_fragment(ip4)) {
		if (config_get(TULLE_CFG_DROP_FRAGMENTS)) /* site: fragments off */
			return probe_drop(skb, res, DROP_IP_FRAGMENTATION_NOT_SUPPORTED);
		res->fragment = has_l4 ? FRAG_FIRST : FRAG_LATER;
	}
	if (!has_l4)
		return TC_ACT_OK;
	return parse_l4(skb, res, ETH_HLEN + hdr_len);
}

int probe_parse(struct __sk_buff *skb)
{
	struct probe_result res = {};
	__u32 zero = 0;
	struct ethhdr *eth;
	int verdict = TC_ACT_OK;

	res.mark = skb->mark;
	res.priority = skb->priority;
	res.ifindex = skb->ifindex;
	res.ingress_ifindex = skb->ingress_ifindex;
	res.cb1 = skb->cb[1];

	eth = ctx_header(skb, 0, sizeof(*eth));
	if (!eth) { /* site: ethernet */
		verdict = probe_drop(skb, &res, DROP_INVALID_PACKET_DROPPED);
	} else {
		res.eth_proto = bpf_ntohs(eth->h_proto);
		if (res.eth_proto == ETH_P_IP)
			verdict = parse_ipv4(skb, &res);
	}
	skb->cb[0] = res.drop_reason;
	probe_result_v1.update(&zero, &res);
	return verdict;
}
