/* trace_drop.c: packets the kernel dropped, with the kernel's own reason (skb:kfree_skb).
 *
 * The tracepoint gives the packet's address, its receiving socket (rx_sk, when there was
 * one), the protocol and enum skb_drop_reason. The IPv4 and TCP/UDP headers are read from the
 * packet at offsets of struct sk_buff taken from BTF (conn_trace.h). A drop is reported when
 * either address is a local pod's, or when its socket is a traced connection (then it carries
 * that connection's id). Reason names are not known here: the agent reads them from the
 * kernel (tracefs format or BTF).
 */
#include <uapi/linux/in.h>
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

#define TRACE_ETH_P_IP 0x0800 /* the tracepoint's protocol is in host byte order */

TRACEPOINT_PROBE(skb, kfree_skb)
{
	const char *skb = (const char *)args->skbaddr;
	struct trace_record rec = {};
	unsigned char *head = 0;
	__u16 network = 0;
	struct iphdr ip = {};
	__u16 ports[2] = {};
	__u64 sk = (__u64)args->rx_sk;
	struct conn_state *st = 0;

	if (TRACE_OFF_SKB_HEAD < 0 || TRACE_OFF_SKB_NETWORK_HEADER < 0)
		return 0;
	if (args->protocol != TRACE_ETH_P_IP)
		return 0;
	if (bpf_probe_read_kernel(&head, sizeof(head), skb + TRACE_OFF_SKB_HEAD) || !head)
		return 0;
	if (bpf_probe_read_kernel(&network, sizeof(network), skb + TRACE_OFF_SKB_NETWORK_HEADER) ||
	    network == 0xffff)
		return 0;
	if (bpf_probe_read_kernel(&ip, sizeof(ip), head + network) || ip.version != 4)
		return 0;
	if (sk)
		st = trace_conns_v1.lookup(&sk);
	if (st && st->pod_ip) {
		rec.conn_id = st->conn_id;
		rec.pod_ip = st->pod_ip;
		rec.netns = st->netns;
		rec.role = st->role;
	} else if (trace_local_v1.lookup(&ip.daddr)) {
		rec.pod_ip = ip.daddr;
	} else if (trace_local_v1.lookup(&ip.saddr)) {
		rec.pod_ip = ip.saddr;
	} else {
		return 0;
	}
	if ((ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) &&
	    !(ip.frag_off & bpf_htons(0x1fff)))
		bpf_probe_read_kernel(ports, sizeof(ports), head + network + ip.ihl * 4);
	rec.time_ns = bpf_ktime_get_ns();
	rec.location = (__u64)args->location;
	rec.saddr = ip.saddr;
	rec.daddr = ip.daddr;
	rec.sport = bpf_ntohs(ports[0]);
	rec.dport = bpf_ntohs(ports[1]);
	rec.drop_reason = args->reason;
	rec.kind = TRACE_KIND_DROP;
	rec.protocol = ip.protocol;
	trace_emit(&rec);
	return 0;
}
