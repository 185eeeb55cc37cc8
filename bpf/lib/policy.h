/* policy.h: Kubernetes NetworkPolicy verdicts for a new connection.
 *
 *   policy_allows(ep_ip, dir, peer_ip, peer_identity, proto, port)
 *       0: deny; else POLICY_MATCHED | the matched rule's policy set id (low 16 bits), which
 *       the NEW flow event carries so the agent can name the policies that allowed it
 *
 * Tables (compiled by agent/datapath/policy.py):
 *   policy_v1       (endpoint, peer identity or IDENTITY_WILDCARD, direction) -> port rules
 *   policy_cidr_v1  LPM on (endpoint, direction, peer address) -> port rules or deny, so the
 *                   most specific ipBlock prefix (including `except`) decides
 * `port` is the destination port in host order: the pod's own for ingress, the peer's for
 * egress. Only called for endpoints whose flags enforce that direction.
 */
#ifndef TULLE_POLICY_H
#define TULLE_POLICY_H

#include "common.h"
#include "endpoints.h"
#include "pin.h"

#define POLICY_MAX_RULES 16
#define POLICY_MATCHED 0x10000u
#define POLICY_SET_MASK 0xffffu

struct port_rule {
	__u8 proto; /* 0: any protocol */
	__u8 pad;
	__u16 first; /* host order; 0..65535 is any port */
	__u16 last;
	__u16 policy; /* policy set that granted it (agent/datapath/policy_names.py); 0 unknown */
};

struct port_rules {
	__u32 count;
	__u32 deny; /* cidr table only: an `except` block */
	struct port_rule rules[POLICY_MAX_RULES];
};

struct policy_key {
	__be32 ep_ip;
	__u32 identity;
	__u8 dir;
	__u8 pad[3];
};

struct policy_cidr_key {
	__u32 prefixlen; /* 64 + CIDR length: ep_ip and dir+pad are always matched in full */
	__be32 ep_ip;
	__u8 dir;
	__u8 pad[3];
	__be32 addr;
};

PINNED_MAP("hash", struct policy_key, struct port_rules, policy_v1, 65536, MAP_NO_PREALLOC);
PINNED_MAP("lpm_trie", struct policy_cidr_key, struct port_rules, policy_cidr_v1, 16384,
	   MAP_NO_PREALLOC);

static __always_inline __u32 port_rules_match(const struct port_rules *r, __u8 proto, __u16 port)
{
	__u32 n = r->count;

#pragma unroll
	for (int i = 0; i < POLICY_MAX_RULES; i++) {
		const struct port_rule *rule = &r->rules[i];

		if (i >= n)
			break;
		if ((rule->proto == 0 || rule->proto == proto) && port >= rule->first &&
		    port <= rule->last)
			return POLICY_MATCHED | rule->policy;
	}
	return 0;
}

static __always_inline __u32 policy_identity_allows(__be32 ep_ip, __u32 identity, __u8 dir,
						    __u8 proto, __u16 port)
{
	struct policy_key key = { .ep_ip = ep_ip, .identity = identity, .dir = dir };
	struct port_rules *rules = policy_v1.lookup(&key);

	return rules ? port_rules_match(rules, proto, port) : 0;
}

static __always_inline __u32 policy_allows(__be32 ep_ip, __u8 dir, __be32 peer_ip,
					 __u32 peer_identity, __u8 proto, __u16 port)
{
	struct policy_cidr_key ckey = {
		.prefixlen = 64 + 32, .ep_ip = ep_ip, .dir = dir, .addr = peer_ip,
	};
	struct port_rules *rules;
	__u32 match;

	match = policy_identity_allows(ep_ip, peer_identity, dir, proto, port);
	if (match)
		return match;
	match = policy_identity_allows(ep_ip, IDENTITY_WILDCARD, dir, proto, port);
	if (match)
		return match;
	rules = policy_cidr_v1.lookup(&ckey);
	return rules && !rules->deny ? port_rules_match(rules, proto, port) : 0;
}

#endif /* TULLE_POLICY_H */
