/* trace_sock.c: TCP connection tracing from tracepoints (no kprobes, no fentry on this kernel).
 *
 *   inet_sock_set_state        SYN_SENT / SYN_RECV start a connection's state; ESTABLISHED
 *                              stamps connect latency; CLOSE sends one record and forgets it.
 *                              A raw tracepoint (TRACE_STATE_RAW) when BTF gave the offsets:
 *                              it fires for every state change of every TCP socket on the
 *                              node (ten a connection; in the lab, each node's tracer sees
 *                              both ends), and the classic one fills a record first (two
 *                              sockaddr_in6 copies, family, protocol, ports, states) that
 *                              most changes never read. The raw one gets (sk, oldstate,
 *                              newstate) and reads from the socket only where used: the
 *                              head of sock_common (addresses, peer port, family: one read)
 *                              at a start, at an establishment still to attribute and at a
 *                              close; sk_protocol at a start (after a client's pod check);
 *                              inet_sport at a close (skc_num is 0 by then). Changes with
 *                              nothing to record read nothing, later ones find a conn_state
 *                              only for the TCP IPv4 socket a start created. 0.3-0.6 us
 *                              less CPU a loopback connection than the classic one, traced
 *                              or not (bench/trace/state_cost.py; the BPF run-time stats
 *                              never see the record fill, and time the raw program 5-11%
 *                              longer: bench/results/trace-2026-12-07-session20-raw.md).
 *                              Classic (sock:inet_sock_set_state) without those offsets
 *   tcp_probe                  a random 1 in 16 of the segments received on established
 *                              sockets (conn_trace.h: TRACE_PROBE_SAMPLE_MASK): srtt
 *                              min / sum / max / last (the kernel's own smoothed RTT); more
 *                              samples are read from the socket when it becomes ESTABLISHED
 *                              and when it leaves it, and the kernel's retransmitted-segment
 *                              total when it closes.
 *                              A raw tracepoint (TRACE_PROBE_RAW) when BTF gave the srtt
 *                              offset: the classic tracepoint fills a 136-byte record per
 *                              segment (two sockaddr copies, ten fields, the socket cookie)
 *                              for every TCP socket on the node, ours or not, before the
 *                              program runs; the raw one hands over the socket pointer and
 *                              the program reads srtt_us only for sockets it traces
 *   tcp:tcp_retransmit_skb     retransmissions that left the stack (err == 0 where the
 *                              tracepoint has err, as tcpi_total_retrans counts them). One per
 *                              skb: a TSO skb holding several segments counts once, where
 *                              tcpi_total_retrans (ss "retrans:x/TOTAL") counts its segments
 *
 * With the node's pod cgroup (-DTRACE_CONN_SOCKOPS), trace_sockops.c's callbacks there take
 * the place of inet_sock_set_state and tcp_probe: only tcp_retransmit_skb is compiled here.
 *
 * All three key the state by the socket's address (skaddr), which the kernel gives each of
 * them. A socket is traced only when it belongs to a pod of this node (conn_trace.h). A
 * server-side socket learns its addresses after SYN_RECV fires, so it is attributed when it
 * becomes ESTABLISHED; one in a namespace already known to hold none of this node's pods
 * (conn_trace.h: trace_foreign) ends at SYN_RECV.
 */
#include "inet.h" /* not <uapi/linux/in.h>: see there why */
#include "conn_trace.h"

/* Offsets for the raw inet_sock_set_state (agent/tracing/btf.py; absent: the classic
 * tracepoint is compiled). The loader passes TRACE_STATE_RAW only when BTF shows struct
 * sock_common's head laid out as struct sk_head below (agent/tracing/tracer.py, SK_HEAD), as it
 * has been since 2.6: then one read gives what a record needs. */
#ifndef TRACE_OFF_SK_DADDR /* struct sock: __sk_common.skc_daddr, where struct sk_head starts */
#define TRACE_OFF_SK_DADDR -1
#endif
#ifndef TRACE_OFF_SK_PROTOCOL /* struct sock: sk_protocol (a u16 since 5.6) */
#define TRACE_OFF_SK_PROTOCOL -1
#endif
#ifndef TRACE_OFF_INET_SPORT /* struct inet_sock (which starts with its sock): inet_sport */
#define TRACE_OFF_INET_SPORT -1
#endif

struct sk_head {
	__be32 daddr;     /* skc_daddr */
	__be32 rcv_saddr; /* skc_rcv_saddr: inet_saddr once bound, connected or accepted */
	__u32 hash;       /* skc_hash */
	__be16 dport;     /* skc_dport */
	__u16 num;        /* skc_num: 0 by TCP_CLOSE (inet_put_port): not read, see sk_read_sport */
	__u16 family;     /* skc_family */
};

/* The socket's fields the state logic uses: the classic tracepoint's record holds them all;
 * the raw one reads them from the socket only where the logic needs them (sk_read_*). */
struct sk_fields {
	__be32 saddr;
	__be32 daddr;
	__u16 sport; /* host byte order, as the classic record has them */
	__u16 dport;
	__u16 family;
	__u16 protocol;
};

#if defined(TRACE_STATE_RAW) && TRACE_OFF_SK_DADDR >= 0 && TRACE_OFF_SK_PROTOCOL >= 0 &&        \
	TRACE_OFF_INET_SPORT >= 0
#define STATE_RAW 1
#else
#define STATE_RAW 0
#endif

/* What the classic record's fast-assign takes (include/trace/events/sock.h), read from the
 * socket: addresses, the peer's port and the family in one read of its head (a start, an
 * establishment still to attribute, a close). Unused without STATE_RAW. */
static __always_inline void sk_read_head(const char *sk, struct sk_fields *f)
{
	struct sk_head h = {};

	bpf_probe_read_kernel(&h, sizeof(h), sk + TRACE_OFF_SK_DADDR);
	f->saddr = h.rcv_saddr;
	f->daddr = h.daddr;
	f->dport = bpf_ntohs(h.dport);
	f->family = h.family;
}

/* The local port, for a close record: inet_sport, as the classic record has it (skc_num is
 * zeroed when TCP_CLOSE releases the port, before the tracepoint fires). */
static __always_inline void sk_read_sport(const char *sk, struct sk_fields *f)
{
	__be16 sport = 0;

	bpf_probe_read_kernel(&sport, sizeof(sport), sk + TRACE_OFF_INET_SPORT);
	f->sport = bpf_ntohs(sport);
}

/* Only TCP over IPv4 is traced: checked where a conn_state is created (a start). */
static __always_inline void sk_read_protocol(const char *sk, struct sk_fields *f)
{
	bpf_probe_read_kernel(&f->protocol, sizeof(f->protocol), sk + TRACE_OFF_SK_PROTOCOL);
}

/* One state change of socket `skp`. `raw` (a constant: each probe below inlines its own copy):
 * `f` is empty and the socket's fields are read as needed; else `f` holds the classic record's.
 *
 * The clock is read only by an event that records a time (a start, an establishment, a
 * close): not by those that end before (not ours, no change to record), about half of a
 * connection's state changes, and every node's tracer sees every socket of a shared kernel.
 * The raw probe reads nothing from the socket for those either: family and protocol are
 * checked where a conn_state is created (a start); later changes find one only for a TCP
 * IPv4 socket, by its address. */
static __always_inline int state_change(const void *skp, int oldstate, int newstate,
					struct sk_fields *f, const int raw)
{
	__u64 sk = (__u64)skp;

	if (!raw && (f->protocol != IPPROTO_TCP || f->family != AF_INET))
		return 0;
	if (newstate == TRACE_TCP_SYN_SENT || newstate == TRACE_TCP_SYN_RECV) {
		struct conn_state st = {};

		if (raw) {
			sk_read_head(skp, f);
			if (f->family != AF_INET)
				return 0;
		}
		st.netns = sock_netns(skp);
		if (newstate == TRACE_TCP_SYN_RECV && trace_foreign(st.netns))
			return 0; /* another node's pod, or the host's */
		if (newstate == TRACE_TCP_SYN_SENT) {
			st.pod_ip = trace_pod_of(f->saddr, st.netns);
			if (!st.pod_ip)
				return 0;
		}
		if (raw) { /* after the pod check: a client not ours never needs it */
			sk_read_protocol(skp, f);
			if (f->protocol != IPPROTO_TCP)
				return 0;
		}
		st.conn_id = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
		st.start_ns = bpf_ktime_get_ns();
		st.srtt_min_us = 0xffffffff;
		st.role = newstate == TRACE_TCP_SYN_SENT ? TRACE_ROLE_CLIENT : TRACE_ROLE_SERVER;
		trace_conns_v1.update(&sk, &st);
		return 0;
	}

	struct conn_state *st;

	/* FIN_WAIT1 -> FIN_WAIT2, CLOSE_WAIT -> LAST_ACK, LISTEN...: nothing to record, so no
	 * lookup (2 of a connection's ~10 state changes on each side). */
	if (newstate != TRACE_TCP_ESTABLISHED && newstate != TRACE_TCP_CLOSE &&
	    oldstate != TRACE_TCP_ESTABLISHED)
		return 0;
	st = trace_conns_v1.lookup(&sk);
	if (!st)
		return 0;
	if (newstate == TRACE_TCP_ESTABLISHED && !st->established_ns) {
		st->established_ns = bpf_ktime_get_ns();
		if (!st->pod_ip) {
			__u32 gen = trace_gen(); /* before the address lookup: see trace_foreign */

			if (raw)
				sk_read_head(skp, f);
			st->pod_ip = trace_pod_of(f->saddr, st->netns);
			if (!st->pod_ip)
				trace_mark_foreign(st->netns, gen, f->saddr);
		}
		if (!st->pod_ip)
			trace_conns_v1.delete(&sk); /* not a pod of this node */
		else
			srtt_read(st, skp); /* the handshake's: srtt_first_us */
		return 0;
	}
	if (oldstate == TRACE_TCP_ESTABLISHED)
		srtt_read(st, skp);
	if (newstate != TRACE_TCP_CLOSE)
		return 0;
	retrans_at_close(st, skp);
	if (st->pod_ip) {
		if (raw) {
			sk_read_head(skp, f);
			sk_read_sport(skp, f);
		}
		trace_emit_close(st, f->saddr, f->daddr, f->sport, f->dport, oldstate,
				 st->retrans_segments);
	}
	trace_conns_v1.delete(&sk);
	return 0;
}

#if defined(TRACE_CONN_SOCKOPS)
/* Connections start, establish and close in trace_sockops.c's callbacks on the pod cgroup. */
#elif STATE_RAW
RAW_TRACEPOINT_PROBE(inet_sock_set_state)
{
	/* TP_PROTO(const struct sock *sk, const int oldstate, const int newstate) */
	struct sk_fields f = {};

	return state_change((const void *)ctx->args[0], (int)ctx->args[1], (int)ctx->args[2], &f,
			    1);
}
#else
TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
	struct sk_fields f = {};

	f.family = args->family;
	f.protocol = args->protocol;
	__builtin_memcpy(&f.saddr, args->saddr, sizeof(f.saddr));
	__builtin_memcpy(&f.daddr, args->daddr, sizeof(f.daddr));
	f.sport = args->sport;
	f.dport = args->dport;
	return state_change(args->skaddr, args->oldstate, args->newstate, &f, 0);
}
#endif

#if defined(TRACE_CONN_SOCKOPS)
/* RTT samples come from trace_sockops.c's RTT_CB on the pod cgroup: no tcp_probe. */
#elif defined(TRACE_PROBE_RAW) && TRACE_OFF_TCP_SRTT >= 0
RAW_TRACEPOINT_PROBE(tcp_probe)
{
	/* TP_PROTO(struct sock *sk, const struct sk_buff *skb) */
	const void *skp = (const void *)ctx->args[0];
	__u64 sk = (__u64)skp;
	struct conn_state *st;
	__u32 srtt8 = 0;

	if (!probe_sampled())
		return 0; /* before the lookup: most segments end here */
	st = trace_conns_v1.lookup(&sk);
	/* The same value the classic tracepoint reports: tp->srtt_us >> 3, in microseconds. */
	if (st && !bpf_probe_read_kernel(&srtt8, sizeof(srtt8), (const char *)skp + TRACE_OFF_TCP_SRTT))
		srtt_sample(st, srtt8 >> 3);
	return 0;
}
#else
TRACEPOINT_PROBE(tcp, tcp_probe)
{
	__u64 sk = (__u64)args->skaddr;
	struct conn_state *st;
	__u32 srtt = args->srtt; /* microseconds: the tracepoint unscales tp->srtt_us */

	if (!probe_sampled())
		return 0;
	st = trace_conns_v1.lookup(&sk);
	if (st)
		srtt_sample(st, srtt);
	return 0;
}
#endif

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb)
{
	__u64 sk = (__u64)args->skaddr;
	struct conn_state *st = trace_conns_v1.lookup(&sk);

#ifdef TRACE_RETRANSMIT_HAS_ERR
	if (args->err)
		return 0; /* refused below TCP (a full qdisc): it will be tried again */
#endif
	if (st)
		__sync_fetch_and_add(&st->retransmits, 1);
	return 0;
}
