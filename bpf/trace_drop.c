/* trace_drop.c: packets the kernel dropped, with the kernel's own reason (skb:kfree_skb).
 *
 * The tracepoint gives the packet's address, its receiving socket (rx_sk, when there was
 * one), the protocol and enum skb_drop_reason. The IPv4 and TCP/UDP headers are read from the
 * packet at offsets of struct sk_buff taken from BTF (conn_trace.h). A drop is a local pod's
 * when it happened in that pod's network namespace (learned from the pod's sockets), when it
 * was headed for the pod's address, or, with no namespace known, came from it; its socket,
 * when it is a traced connection, gives the connection's id. Every node's tracer sees every
 * drop on a shared kernel (the lab), so the namespace decides which node reports one. Reason
 * names are not known here: the agent reads them from the kernel (tracefs format or BTF).
 *
 * Two entry points, one compiled (agent/tracing/cache.py picks): the raw tracepoint
 * (-DTRACE_DROP_RAW, its arguments read directly, the protocol from sk_buff at its BTF
 * offset) and the classic one (the fallback, attached through a perf event). Both hand the
 * same facts to drop_event.
 */
#include "inet.h" /* not <uapi/linux/in.h>: see there why */
#include <uapi/linux/ip.h>
#include "conn_trace.h"

/* BCC declares the tracepoint's reason field with the kernel's enum type, which the (older)
 * installed headers may lack; completing it here only gives it a size (4 bytes, as the
 * tracefs format says). The names are read at run time, never from here. */
enum skb_drop_reason { TULLE_SKB_DROP_REASON_OPAQUE = 0x7fffffff };

#ifndef TRACE_OFF_SKB_HEAD
#define TRACE_OFF_SKB_HEAD -1
#endif
#ifndef TRACE_OFF_SKB_NETWORK_HEADER
#define TRACE_OFF_SKB_NETWORK_HEADER -1
#endif
#ifndef TRACE_OFF_SKB_DEV /* struct sk_buff: dev */
#define TRACE_OFF_SKB_DEV -1
#endif
#ifndef TRACE_OFF_DEV_NET /* struct net_device: nd_net.net */
#define TRACE_OFF_DEV_NET -1
#endif
#ifndef TRACE_OFF_SKB_PROTOCOL /* struct sk_buff: protocol (__be16); the raw program's */
#define TRACE_OFF_SKB_PROTOCOL -1
#endif

#define TRACE_ETH_P_IP 0x0800 /* the tracepoint's protocol is in host byte order */

/* The network namespace the packet was dropped in: its device's, else its socket's. */
static __always_inline __u32 skb_netns(const char *skb, const void *rx_sk)
{
	void *dev = 0, *net = 0;
	__u32 inum = 0;

	if (TRACE_OFF_SKB_DEV < 0 || TRACE_OFF_DEV_NET < 0 || TRACE_OFF_NET_INUM < 0)
		return sock_netns(rx_sk);
	if (bpf_probe_read_kernel(&dev, sizeof(dev), skb + TRACE_OFF_SKB_DEV) || !dev)
		return sock_netns(rx_sk);
	if (bpf_probe_read_kernel(&net, sizeof(net), (const char *)dev + TRACE_OFF_DEV_NET) || !net)
		return sock_netns(rx_sk);
	if (bpf_probe_read_kernel(&inum, sizeof(inum), (const char *)net + TRACE_OFF_NET_INUM))
		return 0;
	return inum;
}

/* The packet's ports (and for TCP its data offset and flags) into l4, and the payload length:
 * the bytes after the TCP or UDP header. */
static __always_inline __u32 l4_payload(const unsigned char *head, __u16 network,
					const struct iphdr *ip, __u8 *l4, struct trace_record *rec)
{
	__u32 l4_len = bpf_ntohs(ip->tot_len) - ip->ihl * 4;

	if ((ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP) &&
	    !(ip->frag_off & bpf_htons(0x1fff)))
		bpf_probe_read_kernel(l4, 14, head + network + ip->ihl * 4);
	if (ip->protocol == IPPROTO_TCP) {
		rec->tcp_flags = l4[13];
		return l4_len > (__u32)(l4[12] >> 4) * 4 ? l4_len - (l4[12] >> 4) * 4 : 0;
	}
	if (ip->protocol == IPPROTO_UDP)
		return l4_len > 8 ? l4_len - 8 : 0;
	return 0;
}

/* One dropped packet: a record when it is a local pod's (see the top of this file). */
static __always_inline int drop_event(const char *skb, const void *rx_sk, __u16 protocol,
				      __u64 location, __u32 reason)
{
	struct trace_record rec = {};
	unsigned char *head = 0;
	__u16 network = 0;
	struct iphdr ip = {};
	__u8 l4[14] = {}; /* ports, and for TCP the data offset and flags (bytes 12, 13) */
	int have_l4 = 0;
	__u64 sk = (__u64)rx_sk;
	struct conn_state *st = 0;
	__be32 *pod = 0;

	if (TRACE_OFF_SKB_HEAD < 0 || TRACE_OFF_SKB_NETWORK_HEADER < 0)
		return 0;
	if (protocol != TRACE_ETH_P_IP)
		return 0;
	if (bpf_probe_read_kernel(&head, sizeof(head), skb + TRACE_OFF_SKB_HEAD) || !head)
		return 0;
	if (bpf_probe_read_kernel(&network, sizeof(network), skb + TRACE_OFF_SKB_NETWORK_HEADER) ||
	    network == 0xffff)
		return 0;
	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + network) || ip.version != 4)
		return 0;
#ifdef TRACE_REASON_QUEUE_PURGE /* its code on this kernel, read from tracefs by the loader */
	/* The FIN every close purges (no payload): no loss, and one per connection of the node,
	 * so it ends here, before any attribution (a lookup and three reads). */
	if (reason == TRACE_REASON_QUEUE_PURGE) {
		rec.payload_len = l4_payload(head, network, &ip, l4, &rec);
		if (!rec.payload_len)
			return 0;
		have_l4 = 1;
	}
#endif
	if (sk)
		st = trace_conns_v1.lookup(&sk);
	rec.netns = skb_netns(skb, rx_sk);
	if (st && st->pod_ip) {
		rec.conn_id = st->conn_id;
		rec.pod_ip = st->pod_ip;
		rec.role = st->role;
	} else if (rec.netns && (pod = trace_netns_v1.lookup(&rec.netns))) {
		rec.pod_ip = *pod;
	} else if (trace_local_v1.lookup(&ip.daddr)) {
		rec.pod_ip = ip.daddr;
	} else if (!rec.netns && trace_local_v1.lookup(&ip.saddr)) {
		rec.pod_ip = ip.saddr;
	} else {
		return 0;
	}
	if (!have_l4)
		rec.payload_len = l4_payload(head, network, &ip, l4, &rec);
	rec.time_ns = bpf_ktime_get_ns();
	rec.location = location;
	rec.saddr = ip.saddr;
	rec.daddr = ip.daddr;
	rec.sport = ((__u16)l4[0] << 8) | l4[1];
	rec.dport = ((__u16)l4[2] << 8) | l4[3];
	rec.drop_reason = reason;
	rec.kind = TRACE_KIND_DROP;
	rec.protocol = ip.protocol;
	trace_emit(&rec);
	return 0;
}

#if defined(TRACE_DROP_RAW) && TRACE_OFF_SKB_PROTOCOL >= 0
RAW_TRACEPOINT_PROBE(kfree_skb)
{
	/* TP_PROTO(struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	 *          struct sock *rx_sk); the classic record's protocol is ntohs(skb->protocol) */
	const char *skb = (const char *)ctx->args[0];
	__be16 protocol = 0;

	if (bpf_probe_read_kernel(&protocol, sizeof(protocol), skb + TRACE_OFF_SKB_PROTOCOL))
		return 0;
	return drop_event(skb, (const void *)ctx->args[3], bpf_ntohs(protocol), ctx->args[1],
			  (__u32)ctx->args[2]);
}
#else
TRACEPOINT_PROBE(skb, kfree_skb)
{
	return drop_event((const char *)args->skbaddr, args->rx_sk, args->protocol,
			  (__u64)args->location, args->reason);
}
#endif
