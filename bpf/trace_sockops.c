/* trace_sockops.c: RTT samples from sock_ops callbacks, on the node's pod cgroup only.
 *
 *   ACTIVE/PASSIVE_ESTABLISHED_CB   ask the kernel for RTT callbacks on this socket
 *                                   (BPF_SOCK_OPS_RTT_CB_FLAG); every socket the cgroup
 *                                   holds, as the passive callback runs before the
 *                                   ESTABLISHED tracepoint attributes the socket
 *   RTT_CB                          one per RTT measurement the kernel makes (an ACK that
 *                                   acknowledges new data): the socket's srtt, folded into
 *                                   its conn_state (conn_trace.h: srtt_sample) under the
 *                                   same key the tracepoints use, the socket's address
 *
 * The agent loads this instead of tcp_probe (bpf/trace_sock.c) when it is given the cgroup
 * its pods live in (--pod-cgroup): tcp_probe runs for every segment every TCP socket of the
 * node receives, RTT_CB only for the node's pods' sockets, once per measurement (bench/
 * results/sockops-rtt-2026-12-05.md: 3-4x cheaper per keep-alive request). Compiled with
 * trace_sock.c, which creates and closes the conn_state this updates.
 *
 * A socket this tracer does not trace (no conn_state: not a pod address, or aged out of the
 * LRU) gets its flag cleared on its first callback, so it costs nothing more. With
 * -DTRACE_RTT_SAMPLE_CAP=N the flag is also cleared after N samples (the summary then covers
 * the connection's first N, plus the srtt read when it leaves ESTABLISHED).
 */
#include "inet.h" /* not <uapi/linux/in.h>: see there why */
#include "conn_trace.h"

static __always_inline void rtt_cb_off(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
}

int trace_sockops(struct bpf_sock_ops *skops)
{
	struct conn_state *st;
	__u64 sk;

	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (skops->family == AF_INET)
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_RTT_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_RTT_CB:
		/* The address the tracepoints see as skaddr: the same struct sock. */
		sk = (__u64)skops->sk;
		st = sk ? trace_conns_v1.lookup(&sk) : 0;
		if (!st) {
			rtt_cb_off(skops);
			return 1;
		}
		srtt_sample(st, skops->srtt_us >> 3); /* srtt_us holds 8 times the smoothed RTT */
#ifdef TRACE_RTT_SAMPLE_CAP
		if (st->srtt_samples >= TRACE_RTT_SAMPLE_CAP)
			rtt_cb_off(skops);
#endif
		return 1;
	}
	return 1;
}
