/* events.h: flow events to the agent through a ring buffer, with loss counted.
 *
 *   struct flow_event           one record; agent/datapath/flowevents.py turns it into a Flow
 *   emit_event(ev)              submit, waking the agent once per EVENTS_PER_WAKEUP
 *                               records; on a full ring, count it in events_lost_v1
 *   drop_flow(skb, pkt, reason, obs, dir, src_id, dst_id)
 *                               record the drop (counter + event with file and line) and
 *                               evaluate to TC_ACT_SHOT
 *   drop_flow_policy(skb, pkt, reason, obs, dir, src_id, dst_id, policy)
 *                               the same, naming the AuthorizationPolicy set that denied
 *                               (authz.h) in the record's `policy`
 *   open_connection(skb, pkt, ct_dir, entry, verdict, obs, dir, policy)
 *                               conntrack entry + first packet counted + NEW event (with
 *                               policy_allows()'s match, 0 when no policy decided); 0, or
 *                               DROP_CT_MAP_INSERTION_FAILED for the caller to drop_flow()
 *   trace_flow(pkt, type, verdict, obs, dir, ct, ifindex, is_reply)
 *                               a NEW or CLOSE event carrying the conntrack entry's counters,
 *                               always oriented as the connection was opened
 *   EVENT_*                     what happened: a new connection, a drop, a close
 *   OBS_*                       where: Hubble's observation points
 */
#ifndef TULLE_EVENTS_H
#define TULLE_EVENTS_H

#include "common.h"
#include "conntrack.h"
#include "drop.h"
#include "parse.h"
#include "pin.h"

#define EVENT_NEW 1   /* first packet of a connection, after policy */
#define EVENT_DROP 2  /* a dropped packet, with its reason */
#define EVENT_CLOSE 3 /* a connection closed, with its counters */
#define EVENT_REPLY 4 /* the first reply of a translated connection, reverse-NATed to the VIP:
		       * oriented as the connection was opened (the agent flips it, and names
		       * the VIP as the reply's IP.source_xlated) */

/* flow_event.flags. Python reads these defines. */
#define EVENT_F_TUNNEL 0x1 /* the connection goes through the waypoint's mTLS tunnel (mtls.h):
			    * the flow's IP.encrypted */

#define VERDICT_FORWARDED 1
#define VERDICT_DROPPED 2
#define VERDICT_TRANSLATED 6

#define OBS_FROM_ENDPOINT 3 /* leaving a pod (tc ingress on its host-side veth) */
#define OBS_TO_ENDPOINT 0   /* entering a pod (tc egress on its host-side veth) */
#define OBS_FROM_NETWORK 10 /* arriving on the node's uplink (nodeport.h) */
#define OBS_TO_NETWORK 11   /* leaving by the node's uplink */

/* Field order is for the agent: it keys its enrichment cache on the contiguous "who" bytes
 * (addresses and the service port) and its metrics on the "what" bytes (protocol, type,
 * verdict, direction, observation point, TCP flags, drop reason), each one byte slice of the
 * raw record, so ingesting a record costs a few dict lookups and no decoding. */
struct flow_event {
	__u64 ts_ns;
	/* who */
	__be32 saddr;
	__be32 daddr;
	__be32 orig_daddr; /* service VIP and port when translated, else 0 */
	__be16 dport;
	__be16 orig_dport;
	/* what */
	__u8 proto;
	__u8 type;
	__u8 verdict;
	__u8 dir;
	__u8 obs_point;
	__u8 tcp_flags;
	__u16 drop_reason;
	/* the rest */
	__be16 sport;
	__u8 is_reply;
	__u8 flags; /* EVENT_F_* */
	__u16 drop_file;
	__u16 drop_line;
	__u32 ifindex;
	__u32 src_identity;
	__u32 dst_identity;
	__u32 policy; /* NEW: policy_allows() (policy.h): POLICY_MATCHED | policy set id, or 0;
		       * DROP: authz_judge() (authz.h): the AuthorizationPolicies that denied */
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u64 duration_ns;
};

/* 2 MiB: about 20,000 records, room for several wake-up batches from every CPU. */
BPF_RINGBUF_OUTPUT(flow_events_v1, 512);
/* Never written: its Leaf is struct flow_event as BCC's ctypes, so Python decodes ring records
 * with the layout defined here, once. */
BPF_ARRAY(flow_event_layout, struct flow_event, 1);
PINNED_MAP("percpu_array", __u32, __u64, events_lost_v1, 1, 0);

/* Wake the agent once per EVENTS_PER_WAKEUP records, never per record: a wake-up per record
 * costs a context switch per packet event, which at thousands of new connections a second is
 * most of the price of flow events. The count is one for the whole node, not per CPU, so at
 * most EVENTS_PER_WAKEUP - 1 records (about 100 KiB of the 2 MiB ring) wait unannounced,
 * however many CPUs produce; the shared atomic costs no more than the ring's own reservation
 * lock, which every producer already takes. Between wake-ups the agent drains the ring on
 * its own timer (agent/datapath/eventreader.py), so a quiet node's flows are at most that
 * late. */
#define EVENTS_PER_WAKEUP 1024 /* a power of two */
BPF_ARRAY(events_unwoken, __u64, 1);

static __always_inline __u64 wakeup_flag(void)
{
	__u32 zero = 0;
	__u64 *n = events_unwoken.lookup(&zero);

	if (!n)
		return 0; /* adaptive: the kernel decides */
	if ((__sync_fetch_and_add(n, 1) + 1) & (EVENTS_PER_WAKEUP - 1))
		return BPF_RB_NO_WAKEUP;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline void emit_event(struct flow_event *ev)
{
	if (config_get(TULLE_CFG_FLOW_EVENTS_OFF))
		return;
	if (flow_events_v1.ringbuf_output(ev, sizeof(*ev), wakeup_flag()) != 0) {
		__u32 zero = 0;
		__u64 *lost = events_lost_v1.lookup(&zero);

		if (lost)
			*lost += 1;
	}
}

static __always_inline void event_set_tuple(struct flow_event *ev, const struct tuple4 *t)
{
	ev->saddr = t->saddr;
	ev->daddr = t->daddr;
	ev->sport = t->sport;
	ev->dport = t->dport;
	ev->proto = t->proto;
}

static __always_inline void event_from_pkt(struct flow_event *ev, const struct pkt *p, __u8 type,
					   __u8 verdict, __u8 obs, __u8 dir)
{
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->ts_ns = bpf_ktime_get_ns();
	event_set_tuple(ev, &p->tuple);
	ev->type = type;
	ev->verdict = verdict;
	ev->obs_point = obs;
	ev->dir = dir;
	ev->tcp_flags = p->tcp_flags;
}

static __always_inline int __drop_flow(struct __sk_buff *skb, const struct pkt *p, __u32 reason,
				       __u8 obs, __u8 dir, __u32 src_id, __u32 dst_id,
				       __u32 policy, __u16 file, __u16 line)
{
	struct flow_event ev;

	event_from_pkt(&ev, p, EVENT_DROP, VERDICT_DROPPED, obs, dir);
	ev.drop_reason = reason;
	ev.drop_file = file;
	ev.drop_line = line;
	ev.ifindex = ctx_ifindex(skb);
	ev.src_identity = src_id;
	ev.dst_identity = dst_id;
	ev.policy = policy;
	emit_event(&ev);
	return __send_drop(skb, reason, file, line);
}

#define drop_flow(skb, p, reason, obs, dir, src_id, dst_id)                       \
	__drop_flow((skb), (p), (reason), (obs), (dir), (src_id), (dst_id), 0,    \
		    source_file_id(__FILE_NAME__), __LINE__)
#define drop_flow_policy(skb, p, reason, obs, dir, src_id, dst_id, policy)        \
	__drop_flow((skb), (p), (reason), (obs), (dir), (src_id), (dst_id), (policy), \
		    source_file_id(__FILE_NAME__), __LINE__)

static __always_inline void __trace_flow(const struct pkt *p, __u8 type, __u8 verdict, __u8 obs,
					 __u8 dir, const struct ct_entry *ct, __u32 ifindex,
					 int is_reply, __u32 policy)
{
	struct flow_event ev;

	event_from_pkt(&ev, p, type, verdict, obs, dir);
	/* Describe the connection as it was opened (client -> server), whichever packet closed
	 * it, so the tuple matches the identities and counters taken from the entry. */
	if (is_reply) {
		struct tuple4 opened;

		ct_reverse(&p->tuple, &opened);
		event_set_tuple(&ev, &opened);
	}
	ev.is_reply = 0;
	ev.ifindex = ifindex;
	ev.orig_daddr = ct->rev_nat_addr;
	ev.orig_dport = ct->rev_nat_port;
	if (ct->flags & CT_F_TUNNEL) {
		/* Sent to the waypoint's tunnel (mtls.h): the flow names where the connection
		 * really goes, and a VIP only when a Service chose that destination. */
		ev.flags = EVENT_F_TUNNEL;
		ev.daddr = ct->backend_addr;
		ev.dport = ct->backend_port;
		if (!ct_translated(ct))
			ev.orig_daddr = ev.orig_dport = 0;
	}
	ev.src_identity = ct->src_identity;
	ev.dst_identity = ct->dst_identity;
	ev.packets_fwd = ct->packets_fwd;
	ev.bytes_fwd = ct->bytes_fwd;
	ev.packets_rev = ct->packets_rev;
	ev.bytes_rev = ct->bytes_rev;
	ev.duration_ns = ev.ts_ns - ct->created_ns;
	ev.policy = policy;
	emit_event(&ev);
}

#define trace_flow(p, type, verdict, obs, dir, ct, ifindex, is_reply)                  \
	__trace_flow((p), (type), (verdict), (obs), (dir), (ct), (ifindex), (is_reply), 0)

static __always_inline int open_connection(struct __sk_buff *skb, const struct pkt *p, __u8 ct_dir,
					   struct ct_entry *entry, __u8 verdict, __u8 obs, __u8 dir,
					   __u32 policy)
{
	struct ct_entry *ct;

	entry->ifindex = ctx_ifindex(skb);
	if (ct_create(&p->tuple, ct_dir, entry) != 0)
		return DROP_CT_MAP_INSERTION_FAILED;
	ct = ct_lookup(&p->tuple, ct_dir);
	if (ct) {
		ct_account(ct, p, 0);
		__trace_flow(p, EVENT_NEW, verdict, obs, dir, ct, ctx_ifindex(skb), 0, policy);
	}
	return 0;
}

#endif /* TULLE_EVENTS_H */
