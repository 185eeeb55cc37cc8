/* conn_trace.h: per-connection TCP state for the tracer, and the records it sends at close.
 *
 *   struct conn_state        what the kernel aggregates for one socket while it lives
 *   struct trace_record      one ring-buffer record: a connection's close, or a kernel drop
 *   trace_conns_v1           socket address -> conn_state (LRU: a socket we never see close
 *                            ages out instead of filling the map)
 *   trace_local_v1           local pod IPv4 addresses (written by the agent): what to trace
 *   trace_netns_v1           network namespace inode -> that pod's address, learned from its
 *                            sockets, so loopback sockets inside a pod are still the pod's
 *   trace_foreign_v1         network namespace inode -> trace_gen_v1 when it was learned to
 *                            hold no pod of this node (a server socket there established
 *                            with an address neither local nor loopback); valid while that
 *                            generation lasts: the agent bumps it after adding pod addresses
 *   trace_gen_v1             [0]: that generation (written by the agent)
 *   trace_foreign(ns)        whether ns is known (this generation) to hold none of our pods
 *   trace_mark_foreign(ns, gen, addr)   learn it, from a socket of address addr that
 *                            trace_pod_of did not attribute, gen read before that lookup
 *   trace_events_v1          the ring buffer; trace_lost_v1 counts records it had no room for
 *   sock_netns(sk)           a socket's network namespace inode, or 0 when BTF gave no offset
 *   trace_read_kernel        bpf_probe_read_kernel by number (BCC may rename the name)
 *   probe_sampled()          whether tcp_probe takes this segment (1 in TRACE_PROBE_SAMPLE_MASK+1)
 *   trace_pod_of(addr, ns)   the local pod a socket belongs to (its address), or 0
 *   trace_emit(rec)          send a record, counting it as lost when the ring is full
 *   trace_emit_close(st, ...)   send a connection's close record: its conn_state and the
 *                            socket's addresses and ports as the caller read them
 *
 * Kernel structs are read with bpf_probe_read_kernel at offsets the loader takes from the
 * running kernel's BTF (-DTRACE_OFF_*; agent/tracing/btf.py): the installed headers are older
 * than the kernel, so BCC's view of struct sock would be wrong. Everything else comes from
 * tracepoint arguments, whose layout BCC reads from tracefs at compile time.
 *
 * No map here is pinned: they live as long as the tracer's programs (pinned by the agent's
 * compile cache, agent/tracing/cache.py). trace_conns_v1 is written by trace_sock.c's
 * tracepoints and, for RTT samples, by tcp_probe there or trace_sockops.c's RTT_CB: all key
 * it by the same struct sock address.
 */
#ifndef TULLE_CONN_TRACE_H
#define TULLE_CONN_TRACE_H

#include <uapi/linux/bpf.h>
#include "inet.h" /* IPPROTO_TCP */

#define TRACE_KIND_CLOSE 1
#define TRACE_KIND_DROP 2
#define TRACE_ROLE_CLIENT 1
#define TRACE_ROLE_SERVER 2

/* include/net/tcp_states.h: kernel ABI, also in the tracepoints' print formats. */
#define TRACE_TCP_ESTABLISHED 1
#define TRACE_TCP_SYN_SENT 2
#define TRACE_TCP_SYN_RECV 3
#define TRACE_TCP_CLOSE 7

#ifndef TRACE_OFF_SK_NET /* struct sock: __sk_common.skc_net (a struct net *) */
#define TRACE_OFF_SK_NET -1
#endif
#ifndef TRACE_OFF_NET_INUM /* struct net: ns.inum */
#define TRACE_OFF_NET_INUM -1
#endif
#ifndef TRACE_OFF_TCP_SRTT /* struct tcp_sock: srtt_us (8 times the smoothed RTT) */
#define TRACE_OFF_TCP_SRTT -1
#endif
#ifndef TRACE_OFF_TCP_TOTAL_RETRANS /* struct tcp_sock: total_retrans (segments) */
#define TRACE_OFF_TCP_TOTAL_RETRANS -1
#endif
/* tcp_probe takes a random 1 in (TRACE_PROBE_SAMPLE_MASK + 1) of the segments it sees (a
 * power of two): it fires for every segment every TCP socket of the node receives, and the
 * map lookup that finds a traced socket costs ~90 ns, most of it for sockets not traced
 * (bench/results/tracecost-2026-12-05.md). The srtt is also read from the socket when it
 * becomes ESTABLISHED and when it leaves it, so a connection's first and last values are
 * exact whatever the draw. Random, not every Nth: sockets whose segments alternate on a CPU
 * (a client and its server in one kernel) would alias with a counter. Without the srtt
 * offset nothing else reads srtt, so then every segment is taken. */
#ifndef TRACE_PROBE_SAMPLE_MASK /* the loader may choose another (Tracer.load's probe_sample) */
#define TRACE_PROBE_SAMPLE_MASK 15
#endif
#if TRACE_OFF_TCP_SRTT < 0
#undef TRACE_PROBE_SAMPLE_MASK
#define TRACE_PROBE_SAMPLE_MASK 0
#endif

struct conn_state {
	__u64 conn_id;
	__u64 start_ns;       /* SYN sent (client) or the handshake's final ACK (server) */
	__u64 established_ns; /* 0 until established */
	__u64 srtt_sum_us;
	__u32 srtt_min_us;
	__u32 srtt_max_us;
	__u32 srtt_last_us;
	__u32 srtt_first_us; /* the handshake's round trip, as the kernel measured it */
	__u32 srtt_samples;
	__u32 retransmits;
	__u32 netns;
	__be32 pod_ip; /* 0: not (yet) attributed to a local pod */
	__u8 role;
	__u8 pad[3];
	__u32 retrans_segments; /* the kernel's tcpi_total_retrans, read at close */
};

struct trace_record {
	__u64 time_ns; /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) at close or drop */
	__u64 conn_id;
	__u64 start_ns;
	__u64 established_ns;
	__u64 srtt_sum_us;
	__u64 location; /* drop: kernel text address that freed the packet */
	__u32 srtt_min_us;
	__u32 srtt_max_us;
	__u32 srtt_last_us;
	__u32 srtt_first_us;
	__u32 srtt_samples;
	__u32 retransmits;
	__u32 netns;
	__be32 pod_ip; /* the local pod this record is about */
	__be32 saddr;  /* close: the socket's local address; drop: the packet's source */
	__be32 daddr;
	__u16 sport; /* host byte order */
	__u16 dport;
	__u32 drop_reason; /* enum skb_drop_reason: names are read from the kernel at run time */
	__u8 kind;
	__u8 role;
	__u8 last_state; /* close: the state the socket left for TCP_CLOSE */
	__u8 protocol;
	__u32 retrans_segments;
	__u32 payload_len; /* drop: bytes after the TCP/UDP header */
	__u8 tcp_flags;    /* drop: the TCP header's flags */
	__u8 pad[3];
};

BPF_TABLE("lru_hash", __u64, struct conn_state, trace_conns_v1, 65536);
BPF_HASH(trace_local_v1, __be32, __u32, 4096);
BPF_TABLE("lru_hash", __u32, __be32, trace_netns_v1, 4096);
BPF_TABLE("lru_hash", __u32, __u32, trace_foreign_v1, 4096);
BPF_ARRAY(trace_gen_v1, __u32, 1);
BPF_RINGBUF_OUTPUT(trace_events_v1, 128); /* 512 KiB: 4,096 records of 128 bytes, drained every
					    * 200 ms: ~20,000 closes a second before loss */
BPF_PERCPU_ARRAY(trace_lost_v1, __u64, 1);
/* Never written: its Leaf gives Python struct trace_record, as BCC's ctypes. */
BPF_ARRAY(trace_record_layout, struct trace_record, 1);

/* bpf_probe_read_kernel, called by its number: BCC #defines that name to bpf_probe_read when
 * its own check for the helper fails, as it does with only the DaemonSet's capabilities
 * (tests/netns/test_agent_capabilities.py), and a sock_ops program may not call
 * bpf_probe_read (trace_sockops.c reads through this). */
static long (*trace_read_kernel)(void *dst, __u32 size, const void *src) =
	(void *)BPF_FUNC_probe_read_kernel;

static __always_inline __u32 sock_netns(const void *sk)
{
	void *net = 0;
	__u32 inum = 0;

	if (TRACE_OFF_SK_NET < 0 || TRACE_OFF_NET_INUM < 0 || !sk)
		return 0;
	if (trace_read_kernel(&net, sizeof(net), (const char *)sk + TRACE_OFF_SK_NET) || !net)
		return 0;
	if (trace_read_kernel(&inum, sizeof(inum), (const char *)net + TRACE_OFF_NET_INUM))
		return 0;
	return inum;
}

/* A socket is a local pod's when its address is a local pod's address (and then its network
 * namespace is learned as that pod's), or when its namespace was learned before (loopback
 * sockets inside the pod). An address alone would misattribute a host socket that shares it;
 * the namespace alone is unknown until the pod's first socket. */
static __always_inline __be32 trace_pod_of(__be32 addr, __u32 netns)
{
	if (addr && trace_local_v1.lookup(&addr)) {
		/* Written only when new or changed: an LRU update allocates a node and swaps it
		 * in, several times a lookup's cost, and this runs for every traced socket (at
		 * its start or establishment; bench/trace/state_cost.py). */
		if (netns) {
			__be32 *known = trace_netns_v1.lookup(&netns);

			if (!known || *known != addr)
				trace_netns_v1.update(&netns, &addr);
		}
		return addr;
	}
	if (netns) {
		__be32 *pod = trace_netns_v1.lookup(&netns);

		if (pod)
			return *pod;
	}
	return 0;
}

static __always_inline __u32 trace_gen(void)
{
	__u32 zero = 0;
	__u32 *gen = trace_gen_v1.lookup(&zero);

	return gen ? *gen : 0;
}

/* The namespaces of another node's pods (the lab: one kernel, every tracer sees every socket)
 * or of the host: a server socket there costs a conn_state created at SYN_RECV and deleted at
 * ESTABLISHED, ~0.4 us a connection (bench/results/trace-2026-12-07-session20-raw.md); known
 * foreign, SYN_RECV ends at once. Learned only from a socket with an address neither ours nor
 * loopback (a pod's loopback sockets say nothing of its address), and only for the generation
 * read before trace_pod_of looked the address up: the agent bumps it after adding addresses,
 * so a pod whose address came late is not kept out. */
static __always_inline int trace_foreign(__u32 netns)
{
	__u32 *gen;

	if (!netns)
		return 0;
	gen = trace_foreign_v1.lookup(&netns);
	return gen && *gen == trace_gen();
}

static __always_inline void trace_mark_foreign(__u32 netns, __u32 gen, __be32 addr)
{
	if (!netns || !addr || (bpf_ntohl(addr) >> 24) == 127)
		return;
	trace_foreign_v1.update(&netns, &gen);
}

static __always_inline int probe_sampled(void)
{
#if TRACE_PROBE_SAMPLE_MASK
	return !(bpf_get_prandom_u32() & TRACE_PROBE_SAMPLE_MASK);
#else
	return 1;
#endif
}

static __always_inline void srtt_sample(struct conn_state *st, __u32 srtt)
{
	if (!srtt)
		return;
	if (!st->srtt_samples)
		st->srtt_first_us = srtt;
	st->srtt_samples += 1;
	st->srtt_sum_us += srtt;
	st->srtt_last_us = srtt;
	if (srtt < st->srtt_min_us)
		st->srtt_min_us = srtt;
	if (srtt > st->srtt_max_us)
		st->srtt_max_us = srtt;
}

/* The socket's srtt as the kernel holds it now (what ss -ti would show). Read when it becomes
 * ESTABLISHED (the handshake's round trip: the kernel measured it just before) and when it
 * leaves ESTABLISHED: tcp_probe fires before a segment's ACK is processed, so its samples lag
 * one update, and it samples only some segments. */
static __always_inline void srtt_read(struct conn_state *st, const void *sk)
{
	__u32 srtt8 = 0;

	if (TRACE_OFF_TCP_SRTT < 0 || !sk)
		return;
	if (!bpf_probe_read_kernel(&srtt8, sizeof(srtt8), (const char *)sk + TRACE_OFF_TCP_SRTT))
		srtt_sample(st, srtt8 >> 3);
}

static __always_inline void retrans_at_close(struct conn_state *st, const void *sk)
{
	__u32 total = 0;

	if (TRACE_OFF_TCP_TOTAL_RETRANS < 0 || !sk)
		return;
	if (!bpf_probe_read_kernel(&total, sizeof(total),
				   (const char *)sk + TRACE_OFF_TCP_TOTAL_RETRANS))
		st->retrans_segments = total;
}

static __always_inline void trace_emit(struct trace_record *rec)
{
	/* No wake-up: the agent drains on a timer, so a close costs no context switch. */
	if (trace_events_v1.ringbuf_output(rec, sizeof(*rec), BPF_RB_NO_WAKEUP) != 0) {
		__u32 zero = 0;
		__u64 *lost = trace_lost_v1.lookup(&zero);

		if (lost)
			*lost += 1;
	}
}

/* The close record of the connection `st` (trace_sock.c's state tracepoint, trace_sockops.c's
 * STATE_CB): ports in host byte order, `last_state` the state it left for TCP_CLOSE. */
static __always_inline void trace_emit_close(const struct conn_state *st, __be32 saddr,
					     __be32 daddr, __u16 sport, __u16 dport,
					     __u8 last_state, __u32 retrans_segments)
{
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
	rec.daddr = daddr;
	rec.sport = sport;
	rec.dport = dport;
	rec.kind = TRACE_KIND_CLOSE;
	rec.role = st->role;
	rec.last_state = last_state;
	rec.protocol = IPPROTO_TCP;
	rec.retrans_segments = retrans_segments;
	trace_emit(&rec);
}

#endif /* TULLE_CONN_TRACE_H */
