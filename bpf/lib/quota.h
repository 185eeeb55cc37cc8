/* quota.h: per-endpoint conntrack fairness, so one pod cannot fill ct_v1 for the whole node.
 *
 *   ct_quota_admit(ep_ip)    0 when the endpoint may open another connection, else
 *                            DROP_CT_ENDPOINT_QUOTA_EXCEEDED (the caller drops with a flow)
 *   ct_quota_charge(ep_ip)   count a connection the endpoint just opened (its CT_EGRESS entry)
 *   ct_quota_release(ep_ip)  give one back: the packet that closed (FINs both ways, or RST)
 *                            one of its CT_EGRESS entries
 *   ct_quota_v1              endpoint IP -> open (not closed) CT_EGRESS entries it opened. BPF
 *                            counts opens and closes; the agent's CT GC rewrites every count
 *                            from the table itself, so LRU evictions, idle expiry and re-used
 *                            tuples never leak quota, and drops the counts of endpoints with no
 *                            entries left.
 *   TULLE_CFG_CT_ENDPOINT_QUOTA   the quota (tulle_config_v1); 0 means CT_QUOTA_DEFAULT
 *
 * Check-then-add is not atomic: opens racing on several CPUs may overshoot the quota by at
 * most one per CPU, which fairness tolerates.
 *
 * Closes must give quota back at once (issue 16): when only the GC's census (every 10 s)
 * lowered the count, the quota capped a pod's new connections per GC interval, not its live
 * ones: a client closing each connection after one request (32 at a time, 8k/s) hit 32768
 * within seconds and its SYNs were dropped until the next census. A count the census wrote
 * while a close raced it can dip below zero: compared signed, that only admits, and the next
 * census sets it right.
 */
#ifndef TULLE_QUOTA_H
#define TULLE_QUOTA_H

#include "common.h"
#include "conntrack.h"
#include "drop.h"
#include "pin.h"

/* One connection a pod opens holds up to three entries (its CT_SERVICE and CT_EGRESS, and the
 * CT_INGRESS of a backend on this node): an eighth keeps one pod under half of ct_v1. */
#define CT_QUOTA_DEFAULT (CT_MAX_ENTRIES / 8)

/* Twice endpoints_v1: counts of removed endpoints linger until the next GC pass. */
PINNED_MAP("hash", __be32, __u64, ct_quota_v1, 8192, 0);

static __always_inline int ct_quota_admit(__be32 ep_ip)
{
	__u64 quota = config_get(TULLE_CFG_CT_ENDPOINT_QUOTA);
	__u64 *live = ct_quota_v1.lookup(&ep_ip);

	if (!quota)
		quota = CT_QUOTA_DEFAULT;
	return live && (__s64)*live >= (__s64)quota ? DROP_CT_ENDPOINT_QUOTA_EXCEEDED : 0;
}

static __always_inline void ct_quota_charge(__be32 ep_ip)
{
	__u64 *live = ct_quota_v1.lookup(&ep_ip);
	__u64 one = 1;

	if (live)
		__sync_fetch_and_add(live, 1);
	else /* full map: uncounted, so never refused (the GC frees slots) */
		ct_quota_v1.insert(&ep_ip, &one);
}

static __always_inline void ct_quota_release(__be32 ep_ip)
{
	__u64 *live = ct_quota_v1.lookup(&ep_ip);

	if (live && (__s64)*live > 0)
		__sync_fetch_and_add(live, -1);
}

#endif /* TULLE_QUOTA_H */
