/* trace_sockops.c: RTT samples from sock_ops callbacks, on the node's pod cgroup only.
 *
 *   ACTIVE/PASSIVE_ESTABLISHED_CB   ask the kernel for RTT callbacks on this socket
 *                                   (BPF_SOCK_OPS_RTT_CB_FLAG); every socket the cgroup
 *                                   holds, as the passive callback runs before the
 *                                   ESTABLISHED tracepoint attributes the socket
 *   RTT_CB                          one per RTT measurement the kernel makes (an ACK that
 *                                   acknowledges new data): the socket's srtt, into its
 *                                   conn_state (conn_trace.h) for the first TRACE_RTT_FOLD
 *                                   samples, then into a summary in the socket's own
 *                                   storage (trace_rtt_v1), and state callbacks asked for
 *   STATE_CB                        (long-lived sockets only) the summary folded into the
 *                                   socket's conn_state
 *                                   (conn_trace.h), under the key the tracepoints use, the
 *                                   socket's address: tcp_set_state runs this callback
 *                                   before inet_sock_set_state fires, so the tracepoint's
 *                                   exact srtt read leaving ESTABLISHED stays the last
 *                                   sample and the close record has every sample
 *
 * Why sk_storage: the callback's body was an LRU hash lookup per RTT measurement, about half
 * of the program's cost per run; sk_storage is reached from the socket (~26 ns above the
 * callback's floor against ~58: bench/results/tracecost-2026-12-06.md). The conn_state is
 * looked up for a socket's first TRACE_RTT_FOLD samples (none: not traced, the flag is
 * cleared, so it costs nothing more), then at every TRACE_RTT_FOLD-th sample (so a live
 * conn_state is at most TRACE_RTT_FOLD - 1 samples behind) and at state changes. Short
 * connections never get storage nor state callbacks: those would cost a new connection
 * more (an allocation, ~7 more sock_ops runs) than its few samples save.
 *
 * The agent loads this instead of tcp_probe (bpf/trace_sock.c) when it is given the cgroup
 * its pods live in (--pod-cgroup): tcp_probe runs for every segment every TCP socket of the
 * node receives, RTT_CB only for the node's pods' sockets, once per measurement (bench/
 * results/sockops-rtt-2026-12-05.md: 3-4x cheaper per keep-alive request). Compiled with
 * trace_sock.c, which creates and closes the conn_state this updates.
 *
 * With -DTRACE_RTT_SAMPLE_CAP=N the RTT flag is cleared once the connection has N samples
 * (the handshake's read included; the summary then covers the connection's first N, plus
 * the srtt read when it leaves ESTABLISHED).
 */
#include "inet.h" /* not <uapi/linux/in.h>: see there why */
#include "conn_trace.h"

#ifndef TRACE_RTT_FOLD /* a power of two */
#define TRACE_RTT_FOLD 16
#endif

/* Samples since the last fold (n of them), and every sample the connection had (total). */
struct rtt_acc {
	__u64 sum_us;
	__u32 n;
	__u32 min_us;
	__u32 max_us;
	__u32 first_us;
	__u32 last_us;
	__u32 total;
};

BPF_SK_STORAGE(trace_rtt_v1, struct rtt_acc);

static __always_inline void rtt_cb_off(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
					 ~(BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG));
}

/* The samples since the last fold into the socket's conn_state, as srtt_sample would have
 * put them there one by one. */
static __always_inline void rtt_fold(struct rtt_acc *acc, __u64 sk)
{
	struct conn_state *st = trace_conns_v1.lookup(&sk);

	if (st && acc->n) {
		if (!st->srtt_samples)
			st->srtt_first_us = acc->first_us;
		st->srtt_samples += acc->n;
		st->srtt_sum_us += acc->sum_us;
		st->srtt_last_us = acc->last_us;
		if (acc->min_us < st->srtt_min_us)
			st->srtt_min_us = acc->min_us;
		if (acc->max_us > st->srtt_max_us)
			st->srtt_max_us = acc->max_us;
	}
	acc->n = 0;
	acc->sum_us = 0;
	acc->min_us = 0xffffffff;
	acc->max_us = 0;
}

int trace_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk;
	struct conn_state *st;
	struct rtt_acc *acc;
	__u32 srtt;
	__u64 key;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (skops->family == AF_INET)
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_RTT_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_RTT_CB:
		sk = skops->sk;
		if (!sk)
			return 1;
		/* The address the tracepoints see as skaddr: the same struct sock. */
		key = (__u64)sk;
		srtt = skops->srtt_us >> 3; /* srtt_us holds 8 times the smoothed RTT */
		acc = trace_rtt_v1.sk_storage_get(sk, 0, 0);
		if (!acc) {
			/* A connection's first TRACE_RTT_FOLD samples go straight into its
			 * conn_state: a short one needs neither storage nor STATE_CB (13 sock_ops
			 * runs per new connection, not 20: tracecost-2026-12-06.md). */
			st = trace_conns_v1.lookup(&key);
			if (!st) {
				rtt_cb_off(skops);
				return 1;
			}
			srtt_sample(st, srtt);
#ifdef TRACE_RTT_SAMPLE_CAP
			if (st->srtt_samples >= TRACE_RTT_SAMPLE_CAP) {
				rtt_cb_off(skops);
				return 1;
			}
#endif
			if (st->srtt_samples < TRACE_RTT_FOLD)
				return 1;
			/* A long-lived one: from here on, in its storage. */
			acc = trace_rtt_v1.sk_storage_get(sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
			if (acc) {
				acc->min_us = 0xffffffff;
				acc->total = st->srtt_samples;
				bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
								 BPF_SOCK_OPS_STATE_CB_FLAG);
			}
			return 1;
		}
		if (!srtt)
			return 1;
		if (!acc->n)
			acc->first_us = srtt;
		acc->n += 1;
		acc->total += 1;
		acc->sum_us += srtt;
		acc->last_us = srtt;
		if (srtt < acc->min_us)
			acc->min_us = srtt;
		if (srtt > acc->max_us)
			acc->max_us = srtt;
#ifdef TRACE_RTT_SAMPLE_CAP
		if (acc->total >= TRACE_RTT_SAMPLE_CAP) {
			rtt_fold(acc, key); /* nothing left for STATE_CB either */
			rtt_cb_off(skops);
			return 1;
		}
#endif
		if (!(acc->n & (TRACE_RTT_FOLD - 1)))
			rtt_fold(acc, key);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		sk = skops->sk;
		if (!sk)
			return 1;
		acc = trace_rtt_v1.sk_storage_get(sk, 0, 0);
		if (acc && acc->n)
			rtt_fold(acc, (__u64)sk);
		return 1;
	}
	return 1;
}
