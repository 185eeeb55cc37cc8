/* inet.h: the IPv4 protocol numbers and the TCP and ICMP headers, as on the wire.
 *
 *   IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP       IP protocol numbers (uapi/linux/in.h)
 *   AF_INET                                      the IPv4 address family (linux/socket.h)
 *   ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED,       ICMP error types (uapi/linux/icmp.h)
 *   ICMP_PARAMETERPROB
 *   struct tcphdr, struct icmphdr                as uapi/linux/tcp.h and icmp.h declare them
 *
 * Why not the kernel's headers: under BCC's include path, <uapi/linux/in.h>, icmp.h and tcp.h
 * include the kernel-internal <linux/socket.h>, which drags in ~580 headers (uio.h, kernel.h,
 * x86 processor and paging headers). clang parses them on each of BCC's three passes: 0.27 s
 * of CPU per compile, a quarter of the datapath's (bench/results/fresh-compile-2026-12-05.md).
 * These are wire formats and kernel ABI: they do not change between kernels. The cheap uapi
 * headers (bpf.h, if_ether.h, ip.h, udp.h, pkt_cls.h) stay ordinary includes.
 */
#ifndef TULLE_INET_H
#define TULLE_INET_H

#include <linux/types.h>
#include <asm/byteorder.h> /* __LITTLE_ENDIAN_BITFIELD or __BIG_ENDIAN_BITFIELD */

#ifndef IPPROTO_TCP /* the kernel's in.h declares them as an enum plus same-named macros */
enum {
	IPPROTO_ICMP = 1,
	IPPROTO_TCP = 6,
	IPPROTO_UDP = 17,
};
#define IPPROTO_ICMP IPPROTO_ICMP
#define IPPROTO_TCP IPPROTO_TCP
#define IPPROTO_UDP IPPROTO_UDP
#endif

#ifndef AF_INET
#define AF_INET 2
#endif

#ifndef ICMP_DEST_UNREACH
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#endif

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
#if defined(__LITTLE_ENDIAN_BITFIELD)
	__u16 res1 : 4, doff : 4, fin : 1, syn : 1, rst : 1, psh : 1, ack : 1, urg : 1, ece : 1,
		cwr : 1;
#elif defined(__BIG_ENDIAN_BITFIELD)
	__u16 doff : 4, res1 : 4, cwr : 1, ece : 1, urg : 1, ack : 1, psh : 1, rst : 1, syn : 1,
		fin : 1;
#else
#error "inet.h: <asm/byteorder.h> set no bitfield order"
#endif
	__be16 window;
	__sum16 check;
	__be16 urg_ptr;
};

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		__be32 gateway;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
		__u8 reserved[4];
	} un;
};

#endif /* TULLE_INET_H */
