/* common.h: what every Tulle BPF program includes first.
 *
 *   ctx_data(skb), ctx_data_end(skb)    packet pointers, cast the way BCC and the verifier want
 *   ctx_header(skb, off, len)           pointer to len bytes at off, or NULL; pulls non-linear
 *                                       data when needed. len must be a compile-time constant.
 *   ctx_load_bytes(skb, off, dst, len)  copy bytes out of the packet: 0, or negative on error
 *   ctx_ifindex(skb)                    skb->ifindex (see there why not skb->ifindex)
 *   csum_l3_replace, csum_l4_replace,   incremental checksum fixes after rewriting a field
 *   csum_l4_replace_port, csum_fold,
 *   l4_csum_offset(proto)
 *   ipv4_is_fragment, ipv4_has_l4      fragment tests on an IPv4 header
 *   struct tuple4                       IPv4 5-tuple: the key shape conntrack, LB and policy share
 *   enum traffic_direction              Hubble's numbering (INGRESS = 1, EGRESS = 2)
 *   config_get(key)                     runtime switches: tulle_config_v1[enum tulle_config]
 *
 * Revalidation: a pointer from ctx_header() dies when a helper may move packet data
 * (bpf_skb_store_bytes, csum replace, adjust_room, pull_data, and ctx_header() itself).
 * Copy out what you need first, then call ctx_header() again for a fresh pointer.
 *
 * Maps and BCC: the loader inlines these headers into BCC's main file, so map calls written
 * here (m.lookup()) are rewritten like the ones in .c files.
 */
#ifndef TULLE_COMMON_H
#define TULLE_COMMON_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/pkt_cls.h>
#include "inet.h" /* not uapi in.h, tcp.h, icmp.h: see there why */

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif
#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif

/* BPF runs in host order; x86-64 and arm64 hosts are little-endian. */
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_htons(x) ((__be16)__builtin_bswap16(x))
#define bpf_ntohs(x) ((__u16)__builtin_bswap16(x))
#define bpf_htonl(x) ((__be32)__builtin_bswap32(x))
#define bpf_ntohl(x) ((__u32)__builtin_bswap32(x))
#else
#define bpf_htons(x) ((__be16)(x))
#define bpf_ntohs(x) ((__u16)(x))
#define bpf_htonl(x) ((__be32)(x))
#define bpf_ntohl(x) ((__u32)(x))
#endif

/* Bounds for ctx_header(): the verifier needs both to be provably small. */
#define CTX_MAX_HDR_OFF 512
#define CTX_MAX_HDR_LEN 128

/* skb->data and skb->data_end, loaded straight from the ctx register for the reason
 * ctx_ifindex() gives below: with enough inlined code clang keeps &skb->data_end in a register
 * (or spills it) and loads through it later, which the verifier refuses (measured in from_pod
 * once the AuthorizationPolicy check joined it). */
static __always_inline void *ctx_data(struct __sk_buff *skb)
{
	unsigned long data; /* 64-bit: no zero-extension the verifier would see as pointer arithmetic */

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(data)
		     : "r"(skb), "i"(offsetof(struct __sk_buff, data)));
	return (void *)(long)data;
}

static __always_inline void *ctx_data_end(struct __sk_buff *skb)
{
	unsigned long data_end;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(data_end)
		     : "r"(skb), "i"(offsetof(struct __sk_buff, data_end)));
	return (void *)(long)data_end;
}

static __always_inline void *ctx_header(struct __sk_buff *skb, __u32 off, __u32 len)
{
	void *data, *data_end;

	if (off > CTX_MAX_HDR_OFF || len > CTX_MAX_HDR_LEN)
		return NULL;
	data = ctx_data(skb);
	data_end = ctx_data_end(skb);
	if (likely(data + off + len <= data_end))
		return data + off;
	/* Past the linear part but inside the packet: make it linear, then look again. */
	if (off + len > skb->len || bpf_skb_pull_data(skb, off + len) < 0)
		return NULL;
	data = ctx_data(skb);
	data_end = ctx_data_end(skb);
	if (data + off + len > data_end)
		return NULL;
	return data + off;
}

/* skb->ifindex, loaded straight from the ctx register. With many inlined readers clang may keep
 * &skb->ifindex in a register and load through it later, which the verifier refuses (a ctx
 * pointer with an offset); an asm load cannot be rewritten that way. */
static __always_inline __u32 ctx_ifindex(const struct __sk_buff *skb)
{
	__u32 ifindex;

	asm volatile("%0 = *(u32 *)(%1 + %2)"
		     : "=r"(ifindex)
		     : "r"(skb), "i"(offsetof(struct __sk_buff, ifindex)));
	return ifindex;
}

static __always_inline int ctx_load_bytes(struct __sk_buff *skb, __u32 off, void *dst, __u32 len)
{
	return bpf_skb_load_bytes(skb, off, dst, len);
}

/* ---- checksums ---------------------------------------------------------------------------- */

#define IPV4_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))

/* IPv4 header checksum at csum_off after a 4-byte field (an address) went from `from` to `to`. */
static __always_inline int csum_l3_replace(struct __sk_buff *skb, __u32 csum_off,
					   __be32 from, __be32 to)
{
	return bpf_l3_csum_replace(skb, csum_off, from, to, sizeof(__be32));
}

/* TCP/UDP checksum after a 4-byte field changed. Pass BPF_F_PSEUDO_HDR when it was an address
 * (addresses are in the pseudo header); add BPF_F_MARK_MANGLED_0 for UDP, where 0 means "none". */
static __always_inline int csum_l4_replace(struct __sk_buff *skb, __u32 csum_off,
					   __be32 from, __be32 to, __u64 flags)
{
	return bpf_l4_csum_replace(skb, csum_off, from, to, flags | sizeof(__be32));
}

/* Same, for a 2-byte field (a port). */
static __always_inline int csum_l4_replace_port(struct __sk_buff *skb, __u32 csum_off,
						__be16 from, __be16 to, __u64 flags)
{
	return bpf_l4_csum_replace(skb, csum_off, from, to, flags | sizeof(__be16));
}

/* Fold a 32-bit one's-complement sum (e.g. from bpf_csum_diff) into a 16-bit checksum. */
static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)~csum;
}

/* Offset of the checksum inside the L4 header, or -1 for protocols without one we maintain. */
static __always_inline int l4_csum_offset(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return offsetof(struct tcphdr, check);
	case IPPROTO_UDP:
		return offsetof(struct udphdr, check);
	case IPPROTO_ICMP:
		return offsetof(struct icmphdr, checksum);
	default:
		return -1;
	}
}

/* ---- IPv4 ---------------------------------------------------------------------------------- */

#define IPV4_MF 0x2000     /* more fragments follow */
#define IPV4_OFFSET 0x1fff /* fragment offset, in 8-byte units */

/* Part of a fragmented datagram (first, middle or last piece). */
static __always_inline int ipv4_is_fragment(const struct iphdr *ip4)
{
	return (bpf_ntohs(ip4->frag_off) & (IPV4_MF | IPV4_OFFSET)) != 0;
}

/* Only an unfragmented packet or a first fragment starts with the L4 header; reading "ports"
 * from a later fragment would read payload. */
static __always_inline int ipv4_has_l4(const struct iphdr *ip4)
{
	return (bpf_ntohs(ip4->frag_off) & IPV4_OFFSET) == 0;
}

/* IPv4 5-tuple in network byte order; sized and padded for use as a hash key. */
struct tuple4 {
	__be32 saddr;
	__be32 daddr;
	__be16 sport; /* 0 when the packet carries no ports (ICMP, later fragments) */
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* Hubble's TrafficDirection numbers, so flow records need no translation. */
enum traffic_direction {
	DIR_UNKNOWN = 0,
	DIR_INGRESS = 1, /* towards the pod */
	DIR_EGRESS = 2,  /* leaving the pod */
};

/* ---- runtime configuration ------------------------------------------------------------------ */

/* Switches the agent flips at run time (STYLE.md: a map, not #ifdef permutations).
 * Index into tulle_config_v1; 0 is every switch's default. Python reads this enum from here. */
enum tulle_config {
	TULLE_CFG_DROP_FRAGMENTS = 0, /* 1: drop IPv4 fragments (IP_FRAGMENTATION_NOT_SUPPORTED) */
	TULLE_CFG_FLOW_EVENTS_OFF = 1, /* 1: emit no flow events (drops are still counted) */
	TULLE_CFG_WAYPOINT = 2,        /* waypoint addr (be32) | port (be16) << 32; 0: L7 acts as L4 */
	/* nodeport.h: this node's uplink address (be32; the SNAT source for externalTrafficPolicy
	 * Cluster) and pod CIDR (addr be32 | prefix length << 32: which backends are local). */
	TULLE_CFG_NODE_ADDR = 20,
	TULLE_CFG_POD_CIDR = 21,
	TULLE_CFG_CT_ENDPOINT_QUOTA = 24, /* live connections one pod may open (quota.h); 0: 1/8 of ct_v1 */
	TULLE_CFG_MAX = 32,
};

#ifdef TULLE_PIN_DIR
/* Pinned with the node's maps, so switches survive agent restarts and operators (and the
 * benchmarks) can flip them with bpftool. */
BPF_TABLE_PINNED("array", __u32, __u64, tulle_config_v1, TULLE_CFG_MAX,
		 TULLE_PIN_DIR "/tulle_config_v1");
#else
BPF_ARRAY(tulle_config_v1, __u64, TULLE_CFG_MAX);
#endif

static __always_inline __u64 config_get(__u32 key)
{
	__u64 *value = tulle_config_v1.lookup(&key);

	return value ? *value : 0;
}

#endif /* TULLE_COMMON_H */
