/* mtls.h: mutual-TLS enrolment in the kernel (issue 11 items 3-5; bpf/README.md, "mTLS
 * enrolment").
 *
 *   mtls_mode(addr, port)              MTLS_NONE when the pod at addr is not enrolled, else the
 *                                      mode it accepts on port (its own, target port)
 *   mtls_tunnel(skb, pkt, ct, id, wp)  send a new connection to the waypoint's tunnel listener
 *                                      (wp:MTLS_TUNNEL_PORT), like the L7 redirect: original
 *                                      destination and client identity in l7_orig_dst_v1,
 *                                      conntrack remembers it (CT_F_TUNNEL, backend_*)
 *   mtls_tunnel_continue(skb, pkt, wp) 1 after steering a later packet of such a connection
 *                                      the same way, 0 when it is not one, or a drop reason (<0)
 *   mtls_admits(src_id, saddr)         1 for the senders a STRICT port takes plaintext from: the
 *                                      node (probes) and this node's own (marked) waypoint
 *   mtls_reset(skb, pkt, addr, port)   turn the SYN into the RST|ACK the client's socket expects
 *                                      from addr:port; 0, or a drop reason
 *
 * mtls_v1: (pod address, port) -> mode. Port 0 holds the pod's own entry, there exactly when it
 * is enrolled (namespace label tulle.io/mtls=true), for pods on every node. A pod whose winning
 * PeerAuthentication sets port-level modes that differ from its own carries MTLS_F_PORTS, and
 * one more entry per such port: the second lookup happens only for those pods.
 */
#ifndef TULLE_MTLS_H
#define TULLE_MTLS_H

#include "common.h"
#include "conntrack.h"
#include "drop.h"
#include "endpoints.h"
#include "lb.h"
#include "parse.h"
#include "pin.h"
#include "redirect.h"

/* Modes as the kernel keeps them; 0 is "not enrolled". Python reads these defines. */
#define MTLS_NONE 0
#define MTLS_PERMISSIVE 1
#define MTLS_STRICT 2
#define MTLS_DISABLE 3

#define MTLS_F_PORTS 0x1 /* the pod has port entries (mtls_v1 keys with port != 0) */

/* identity/hbone.py TUNNEL_OUTBOUND_PORT (tests/unit/datapath/test_mtls_plan.py checks). */
#define MTLS_TUNNEL_PORT 15007

struct mtls_key {
	__be32 addr;
	__be16 port; /* 0: the pod's own entry */
	__u16 pad;
};

struct mtls_entry {
	__u32 mode;  /* MTLS_* */
	__u32 flags; /* MTLS_F_*, on the port 0 entry */
};

PINNED_MAP("hash", struct mtls_key, struct mtls_entry, mtls_v1, 65536, 0);

static __always_inline __u32 mtls_mode(__be32 addr, __be16 port)
{
	struct mtls_key key = { .addr = addr };
	struct mtls_entry *pod = mtls_v1.lookup(&key);
	struct mtls_entry *over;
	__u32 mode;

	if (!pod)
		return MTLS_NONE;
	mode = pod->mode;
	if (pod->flags & MTLS_F_PORTS) {
		key.port = port;
		over = mtls_v1.lookup(&key);
		if (over)
			mode = over->mode;
	}
	return mode;
}

static __always_inline int mtls_tunnel(struct __sk_buff *skb, struct pkt *p, struct ct_entry *ct,
				       __u32 client_identity, __be32 waypoint)
{
	/* The flows name the real destination (events.h), and replies come back from it, or
	 * from the VIP when a Service chose it. */
	ct->flags |= CT_F_TUNNEL;
	ct->backend_addr = p->tuple.daddr;
	ct->backend_port = p->tuple.dport;
	if (!ct->rev_nat_addr) {
		ct->rev_nat_addr = p->tuple.daddr;
		ct->rev_nat_port = p->tuple.dport;
	}
	redirect_record(&p->tuple, client_identity);
	return lb_dnat(skb, p, waypoint, bpf_htons(MTLS_TUNNEL_PORT));
}

/* A tunnelled connection's CT_EGRESS entry is keyed on the tuple after the tunnel DNAT; its
 * backend_* say which destination it stands for, so another connection from the same port
 * to somewhere else is not taken for it. */
static __always_inline int mtls_tunnel_continue(struct __sk_buff *skb, struct pkt *p,
						__be32 waypoint)
{
	struct tuple4 t = p->tuple;
	struct ct_entry *ct;
	int err;

	t.daddr = waypoint;
	t.dport = bpf_htons(MTLS_TUNNEL_PORT);
	ct = ct_lookup(&t, CT_EGRESS);
	if (!ct_continues(ct, p) || !(ct->flags & CT_F_TUNNEL) ||
	    ct->backend_addr != p->tuple.daddr || ct->backend_port != p->tuple.dport)
		return 0;
	err = lb_dnat(skb, p, waypoint, bpf_htons(MTLS_TUNNEL_PORT));
	return err ? -err : 1;
}

static __always_inline int mtls_admits(__u32 src_id, __be32 saddr)
{
	__u64 packed = config_get(TULLE_CFG_WAYPOINT);

	if (src_id == IDENTITY_HOST)
		return 1;
	/* to_pod already took a local waypoint address without TULLE_MARK_WAYPOINT for WORLD
	 * (waypoint_sent); another node's waypoint delivers only to its own node's pods. */
	return src_id == IDENTITY_WAYPOINT && packed && saddr == (__be32)(packed & 0xffffffff);
}

struct mtls_pseudo {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

#define MTLS_RST_LEN (ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr))

/* RFC 9293 3.10.7.1: a SYN without ACK is answered by <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
 * (SEG.LEN counts the SYN and any data). The answer is written over the SYN: a fresh 20-byte
 * IPv4 header (no options) and a 20-byte TCP header (no options), both checksums in full. */
static __always_inline int mtls_reset(struct __sk_buff *skb, const struct pkt *p, __be32 from,
				      __be16 from_port)
{
	struct ethhdr eth;
	struct iphdr ip = {};
	struct tcphdr tcp = {};
	struct mtls_pseudo pseudo = {};
	struct iphdr *old_ip;
	struct tcphdr *old_tcp;
	__u8 mac[ETH_ALEN];
	__u32 seq, seg_len, hdrs;
	__s64 sum;

	if (ctx_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return DROP_INVALID_PACKET_DROPPED;
	old_ip = ctx_header(skb, ETH_HLEN, sizeof(*old_ip));
	if (!old_ip)
		return DROP_INVALID_PACKET_DROPPED;
	seg_len = bpf_ntohs(old_ip->tot_len);
	hdrs = old_ip->ihl * 4;
	old_tcp = ctx_header(skb, p->l4_off, sizeof(*old_tcp));
	if (!old_tcp)
		return DROP_CT_TRUNCATED_OR_INVALID_HEADER;
	seq = bpf_ntohl(old_tcp->seq);
	hdrs += old_tcp->doff * 4;
	seg_len = seg_len > hdrs ? seg_len - hdrs : 0;

	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);

	ip.version = 4;
	ip.ihl = 5;
	ip.tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr));
	ip.frag_off = bpf_htons(0x4000); /* DF */
	ip.ttl = 64;
	ip.protocol = IPPROTO_TCP;
	ip.saddr = from;
	ip.daddr = p->tuple.saddr;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&ip, sizeof(ip), 0);
	if (sum < 0)
		return DROP_ERROR_WHILE_CORRECTING_L3_CHECKSUM;
	ip.check = csum_fold((__u32)sum);

	tcp.source = from_port;
	tcp.dest = p->tuple.sport;
	tcp.seq = 0;
	tcp.ack_seq = bpf_htonl(seq + 1 + seg_len);
	tcp.doff = 5;
	tcp.rst = 1;
	tcp.ack = 1;
	pseudo.saddr = from;
	pseudo.daddr = p->tuple.saddr;
	pseudo.proto = IPPROTO_TCP;
	pseudo.len = bpf_htons(sizeof(struct tcphdr));
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	if (sum >= 0)
		sum = bpf_csum_diff(NULL, 0, (__be32 *)&tcp, sizeof(tcp), (__u32)sum);
	if (sum < 0)
		return DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM;
	tcp.check = csum_fold((__u32)sum);

	if (bpf_skb_change_tail(skb, MTLS_RST_LEN, 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, &ip, sizeof(ip), 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(ip), &tcp, sizeof(tcp), 0) < 0)
		return DROP_ERROR_WRITING_TO_PACKET;
	return 0;
}

#endif /* TULLE_MTLS_H */
