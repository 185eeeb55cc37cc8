/* authz.h: AuthorizationPolicy's L4-only verdicts, judged on the client's node.
 *
 *   authz_judge(client_ip, dst_identity, port, &policy)
 *       0: allowed, or the destination is not under a kernel-judged policy; else the drop
 *       reason (DROP_POLICY_DENY: a DENY policy matched; DROP_POLICY_DENIED: no ALLOW
 *       matched) with *policy = POLICY_MATCHED | the id of the policies to name
 *
 * Table (compiled by agent/datapath/authz_l4.py, from the same evaluator the waypoint runs):
 *   authz_v1   (local client pod address, destination identity) -> the port space 0..65535
 *              cut into ranges, each allowed or denied and naming its policies; the key
 *              (0.0.0.0, identity) holds the answer for a client without its own entry
 *              (deny everything): a destination is judged once it has that entry.
 * `port` is the destination port in host order after service translation (the workload's).
 * Every IP protocol is judged by its port (ICMP: 0); Istio judges TCP only, so this is never
 * wider.
 */
#ifndef TULLE_AUTHZ_H
#define TULLE_AUTHZ_H

#include "common.h"
#include "drop.h"
#include "pin.h"
#include "policy.h"

#define AUTHZ_MAX_RANGES POLICY_MAX_RULES
#define AUTHZ_F_ALLOW 0x1    /* the range is allowed */
#define AUTHZ_F_BY_ALLOW 0x2 /* denied because no ALLOW policy matched (else a DENY did) */

struct authz_key {
	__be32 client_ip; /* 0: any client without its own entry */
	__u32 identity;   /* the destination's */
};

struct authz_range {
	__u16 first; /* host order, inclusive */
	__u16 last;
	__u16 policy; /* policy set to name (agent/datapath/authz_l4.py AUTHZ_NAMES); 0 none */
	__u8 flags;   /* AUTHZ_F_* */
	__u8 pad;
};

struct authz_ranges {
	__u32 count;
	__u32 pad;
	struct authz_range ranges[AUTHZ_MAX_RANGES]; /* sorted, covering 0..65535 */
};

PINNED_MAP("hash", struct authz_key, struct authz_ranges, authz_v1, 65536, MAP_NO_PREALLOC);

static __always_inline int authz_judge(__be32 client_ip, __u32 identity, __u16 port,
				       __u32 *policy)
{
	struct authz_key key = { .client_ip = client_ip, .identity = identity };
	struct authz_ranges *r = authz_v1.lookup(&key);
	__u32 n;

	if (!r) {
		key.client_ip = 0;
		r = authz_v1.lookup(&key);
		if (!r)
			return 0; /* no kernel-judged policy for this destination */
	}
	n = r->count;
#pragma unroll
	for (int i = 0; i < AUTHZ_MAX_RANGES; i++) {
		const struct authz_range *range = &r->ranges[i];

		if (i >= n)
			break;
		if (port < range->first || port > range->last)
			continue;
		if (range->flags & AUTHZ_F_ALLOW)
			return 0;
		*policy = range->policy ? POLICY_MATCHED | range->policy : 0;
		return range->flags & AUTHZ_F_BY_ALLOW ? DROP_POLICY_DENIED : DROP_POLICY_DENY;
	}
	*policy = 0;
	return DROP_POLICY_DENIED; /* a hole in the ranges: never half-enforce */
}

#endif /* TULLE_AUTHZ_H */
