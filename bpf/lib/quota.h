/* quota.h: per-endpoint conntrack fairness, so one pod cannot fill ct_v1 for the whole node.
 *
 *   ct_quota_admit(ep_ip)    0 when the endpoint may open another connection, else
 *                            DROP_CT_ENDPOINT_QUOTA_EXCEEDED (the caller drops with a flow)
 *   ct_quota_charge(ep_ip)   count a connection the endpoint just opened (its CT_EGRESS entry)
 *   ct_quota_v1              endpoint IP -> live CT_EGRESS entries it opened. BPF only counts up;
 *                            the agent's CT GC rewrites every count from the table itself, so
 *                            LRU evictions and re-used tuples never leak quota, and drops the
 *                            counts of endpoints with no entries left.
 *   TULLE_CFG_CT_ENDPOINT_QUOTA   the quota (tulle_config_v1); 0 means CT_QUOTA_DEFAULT
 *
 * Check-then-add is not atomic: opens racing on several CPUs may overshoot the quota by at
 * most one per CPU, which fairness tolerates.
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
	return live && *live >= quota ? DROP_CT_ENDPOINT_QUOTA_EXCEEDED : 0;
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

#endif /* TULLE_QUOTA_H */
