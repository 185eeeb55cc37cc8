/* trace_sock.c: TCP connection tracing from tracepoints (no kprobes, no fentry on this kernel).
 *
 *   sock:inet_sock_set_state   SYN_SENT / SYN_RECV start a connection's state; ESTABLISHED
 *                              stamps connect latency; CLOSE sends one record and forgets it
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
 *                              Not compiled with TRACE_RTT_SOCKOPS: trace_sockops.c's
 *                              RTT_CB on the node's pod cgroup takes the samples then
 *   tcp:tcp_retransmit_skb     retransmissions that left the stack (err == 0 where the
 *                              tracepoint has err, as tcpi_total_retrans counts them). One per
 *                              skb: a TSO skb holding several segments counts once, where
 *                              tcpi_total_retrans (ss "retrans:x/TOTAL") counts its segments
 *
 * All three key the state by the socket's address (skaddr), which the kernel gives each of
 * them. A socket is traced only when it belongs to a pod of this node (conn_trace.h). A
 * server-side socket learns its addresses after SYN_RECV fires, so it is attributed when it
 * becomes ESTABLISHED.
 */
#include "inet.h" /* not <uapi/linux/in.h>: see there why */
#include "conn_trace.h"

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
	__u64 sk = (__u64)args->skaddr;
	int newstate = args->newstate;
	__be32 saddr;

	/* The clock is read only by an event that records a time (a start, an
	 * establishment, a close): not by those that end before (not ours, no change to
	 * record), about half of a connection's state changes, and every node's tracer
	 * sees every socket of a shared kernel. */
	if (args->protocol != IPPROTO_TCP || args->family != AF_INET)
		return 0;
	__builtin_memcpy(&saddr, args->saddr, sizeof(saddr));
	if (newstate == TRACE_TCP_SYN_SENT || newstate == TRACE_TCP_SYN_RECV) {
		struct conn_state st = {};

		st.netns = sock_netns(args->skaddr);
		if (newstate == TRACE_TCP_SYN_SENT) {
			st.pod_ip = trace_pod_of(saddr, st.netns);
			if (!st.pod_ip)
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
	    args->oldstate != TRACE_TCP_ESTABLISHED)
		return 0;
	st = trace_conns_v1.lookup(&sk);
	if (!st)
		return 0;
	if (newstate == TRACE_TCP_ESTABLISHED && !st->established_ns) {
		st->established_ns = bpf_ktime_get_ns();
		if (!st->pod_ip)
			st->pod_ip = trace_pod_of(saddr, st->netns);
		if (!st->pod_ip)
			trace_conns_v1.delete(&sk); /* not a pod of this node */
		else
			srtt_read(st, args->skaddr); /* the handshake's: srtt_first_us */
		return 0;
	}
	if (args->oldstate == TRACE_TCP_ESTABLISHED)
		srtt_read(st, args->skaddr);
	if (newstate != TRACE_TCP_CLOSE)
		return 0;
	retrans_at_close(st, args->skaddr);
	if (st->pod_ip) {
		struct trace_record rec = {};

		rec.time_ns = bpf_ktime_get_ns();
		rec.conn_id = st->conn_id;
		rec.start_ns = st->start_ns;
		rec.established_ns = st->established_ns;
		rec.srtt_sum_us = st->srtt_sum_us;
		rec.srtt_min_us = st->srtt_samples ? st->srtt_min_us : 0;
		rec.srtt_max_us = st->srtt_max_us;
		rec.srtt_last_us = st->srtt_last_us;
		rec.srtt_first_us = st->srtt_first_us;
		rec.srtt_samples = st->srtt_samples;
		rec.retransmits = st->retransmits;
		rec.netns = st->netns;
		rec.pod_ip = st->pod_ip;
		rec.saddr = saddr;
		__builtin_memcpy(&rec.daddr, args->daddr, sizeof(rec.daddr));
		rec.sport = args->sport;
		rec.dport = args->dport;
		rec.kind = TRACE_KIND_CLOSE;
		rec.role = st->role;
		rec.last_state = args->oldstate;
		rec.protocol = IPPROTO_TCP;
		rec.retrans_segments = st->retrans_segments;
		trace_emit(&rec);
	}
	trace_conns_v1.delete(&sk);
	return 0;
}

#if defined(TRACE_RTT_SOCKOPS)
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
