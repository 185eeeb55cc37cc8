/* trace_sockops.c: TCP connection tracing from sock_ops on the node's pod cgroup
 * (--pod-cgroup): the connections of the node's pods, and no other socket's.
 *
 *   TCP_CONNECT_CB                  a client's SYN: its conn_state (conn_trace.h) when the
 *                                   socket's address, or its namespace, is a local pod's;
 *                                   asks for state callbacks (a refused connect closes too)
 *   ACTIVE_ESTABLISHED_CB           a client's handshake done: connect latency, the kernel's
 *                                   first srtt; asks for RTT callbacks
 *   PASSIVE_ESTABLISHED_CB          a server socket's handshake done: its conn_state, with
 *                                   the SYN-ACK's round trip as its first srtt; asks for RTT
 *                                   and state callbacks
 *   RTT_CB                          one per RTT measurement the kernel makes (an ACK that
 *                                   acknowledges new data): the socket's srtt, into its
 *                                   conn_state for the first TRACE_RTT_FOLD samples, then
 *                                   into a summary in the socket's own storage
 *                                   (trace_rtt_v1), folded in every TRACE_RTT_FOLD samples
 *   STATE_CB                        leaving ESTABLISHED: the summary folded in and the srtt
 *                                   read once more (the last sample); TCP_CLOSE: one record
 *                                   (the kernel's retransmitted-segment total with it), and
 *                                   the conn_state forgotten
 *
 * Why sock_ops and not inet_sock_set_state: that tracepoint fires for every state change of
 * every TCP socket of the node (ten a connection; in the lab, each node's tracer sees both
 * ends, as one kernel holds every node), and each program must look the socket up to learn
 * it is not ours. sock_ops runs only for the sockets of the cgroup's processes, and the
 * kernel calls it at connect and at establishment whatever the flags; state callbacks are
 * asked for only by the sockets traced. Per L4 connection in the lab: 20 tracepoint runs
 * (4.3 us) gone, 8 sock_ops runs more (21 in all; bench/results/trace-2026-12-07-session21.md).
 * A process outside the cgroup is not traced, whatever its address or namespace.
 *
 * Why sk_storage for RTT: the RTT callback's body was an LRU hash lookup per measurement,
 * about half of the program's cost per run; sk_storage is reached from the socket (~26 ns
 * above the callback's floor against ~58: bench/results/tracecost-2026-12-06.md). Short
 * connections (fewer than TRACE_RTT_FOLD samples) never get storage.
 *
 * Compiled with trace_sock.c (-DTRACE_CONN_SOCKOPS), which then leaves out its
 * inet_sock_set_state and tcp_probe programs and keeps tcp_retransmit_skb; that and
 * trace_drop.c find the conn_state this creates by the socket's address.
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

static __always_inline void cb_flags_add(struct bpf_sock_ops *skops, __u32 flags)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | flags);
}

static __always_inline void rtt_cb_off(struct bpf_sock_ops *skops)
{
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_RTT_CB_FLAG);
}

/* skops->sk as a plain address: the conn_state's key (the struct sock the tracepoints see as
 * skaddr) and sock_netns's base. The verifier allows no arithmetic on a socket pointer, so
 * its value is copied out through the stack. */
static __always_inline __u64 sk_address(struct bpf_sock *sk)
{
	__u64 addr = 0;

	trace_read_kernel(&addr, sizeof(addr), &sk);
	return addr;
}

/* A new conn_state for a socket of a local pod (its address, or its namespace: loopback
 * sockets inside the pod), or 0. */
static __always_inline int conn_start(struct bpf_sock_ops *skops, __u64 sk, __u8 role,
				      __u64 now)
{
	struct conn_state st = {};

	if (skops->family != AF_INET)
		return 0;
	st.netns = sock_netns((const void *)sk);
	st.pod_ip = trace_pod_of(skops->local_ip4, st.netns);
	if (!st.pod_ip)
		return 0;
	st.conn_id = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
	st.start_ns = now;
	st.srtt_min_us = 0xffffffff;
	st.role = role;
	if (role == TRACE_ROLE_SERVER) {
		st.established_ns = now;
		srtt_sample(&st, skops->srtt_us >> 3); /* the SYN-ACK's round trip */
	}
	trace_conns_v1.update(&sk, &st);
	return 1;
}

/* The samples since the last fold into the socket's conn_state, as srtt_sample would have
 * put them there one by one. */
static __always_inline void rtt_fold(struct rtt_acc *acc, struct conn_state *st)
{
	if (acc->n) {
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

static __always_inline void rtt_cb(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	__u32 srtt = skops->srtt_us >> 3; /* srtt_us holds 8 times the smoothed RTT */
	struct rtt_acc *acc = trace_rtt_v1.sk_storage_get(sk, 0, 0);
	struct conn_state *st;
	__u64 key = (__u64)sk;

	if (!acc) {
		/* A connection's first TRACE_RTT_FOLD samples go straight into its conn_state: a
		 * short one never needs storage. */
		st = trace_conns_v1.lookup(&key);
		if (!st) { /* aged out of the LRU, or forgotten */
			rtt_cb_off(skops);
			return;
		}
		srtt_sample(st, srtt);
#ifdef TRACE_RTT_SAMPLE_CAP
		if (st->srtt_samples >= TRACE_RTT_SAMPLE_CAP) {
			rtt_cb_off(skops);
			return;
		}
#endif
		if (st->srtt_samples < TRACE_RTT_FOLD)
			return;
		/* A long-lived one: from here on, in its storage. */
		acc = trace_rtt_v1.sk_storage_get(sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (acc) {
			acc->min_us = 0xffffffff;
			acc->total = st->srtt_samples;
		}
		return;
	}
	if (!srtt)
		return;
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
	if (acc->total >= TRACE_RTT_SAMPLE_CAP)
		rtt_cb_off(skops); /* what is not folded yet is, when it leaves ESTABLISHED */
#endif
	if (acc->n & (TRACE_RTT_FOLD - 1))
		return;
	st = trace_conns_v1.lookup(&key);
	if (st)
		rtt_fold(acc, st);
}

/* A traced socket's state change (the flag is set only on those). */
static __always_inline void state_cb(struct bpf_sock_ops *skops, struct bpf_sock *sk)
{
	int oldstate = skops->args[0], newstate = skops->args[1];
	struct conn_state *st;
	struct rtt_acc *acc;
	__u64 key = (__u64)sk;

	/* FIN_WAIT1 -> FIN_WAIT2, CLOSE_WAIT -> LAST_ACK, SYN_SENT -> ESTABLISHED (the
	 * established callback follows): nothing to record. */
	if (newstate != TRACE_TCP_CLOSE && oldstate != TRACE_TCP_ESTABLISHED)
		return;
	st = trace_conns_v1.lookup(&key);
	if (!st)
		return;
	if (oldstate == TRACE_TCP_ESTABLISHED) {
		acc = trace_rtt_v1.sk_storage_get(sk, 0, 0);
		if (acc)
			rtt_fold(acc, st);
		srtt_sample(st, skops->srtt_us >> 3); /* what ss -ti shows now: the last sample */
	}
	if (newstate != TRACE_TCP_CLOSE)
		return;
	/* tcp_set_state calls back before TCP_CLOSE releases the port: local_port (host byte
	 * order) still holds it (the tracepoint, after, must read inet_sport); remote_port is
	 * in network order, in the upper 16 bits. */
	trace_emit_close(st, skops->local_ip4, skops->remote_ip4, skops->local_port,
			 bpf_ntohl(skops->remote_port), oldstate, skops->total_retrans);
	trace_conns_v1.delete(&key);
}

int trace_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct conn_state *st;
	__u64 key;

	if (!sk)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (conn_start(skops, sk_address(sk), TRACE_ROLE_CLIENT, bpf_ktime_get_ns()))
			cb_flags_add(skops, BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		key = (__u64)sk;
		st = trace_conns_v1.lookup(&key);
		if (!st)
			return 1;
		st->established_ns = bpf_ktime_get_ns();
		srtt_sample(st, skops->srtt_us >> 3); /* the SYN's round trip */
		cb_flags_add(skops, BPF_SOCK_OPS_RTT_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		if (conn_start(skops, sk_address(sk), TRACE_ROLE_SERVER, bpf_ktime_get_ns()))
			cb_flags_add(skops, BPF_SOCK_OPS_RTT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_RTT_CB:
		rtt_cb(skops, sk);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		state_cb(skops, sk);
		return 1;
	}
	return 1;
}
