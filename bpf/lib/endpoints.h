/* endpoints.h: who is who. Local pods by their host-side veth, every address by identity.
 *
 *   endpoint_by_ifindex(ifindex)   struct endpoint_info of the local pod on that veth, or NULL
 *   identity_of(addr)              numeric identity of any address: pods cluster-wide, nodes,
 *                                  else IDENTITY_WORLD
 *   IDENTITY_*                     reserved identities (pods use 256 .. 2^24-1)
 */
#ifndef TULLE_ENDPOINTS_H
#define TULLE_ENDPOINTS_H

#include "common.h"
#include "pin.h"

#define IDENTITY_WILDCARD 0 /* policy keys only: any peer */
#define IDENTITY_HOST 1
#define IDENTITY_WORLD 2
#define IDENTITY_REMOTE_NODE 6
#define IDENTITY_WAYPOINT 8 /* the per-node L7 waypoint: admitted like the node itself */
#define IDENTITY_MIN_POD 256 /* pod identities start here (agent/datapath/identity.py) */

#define EP_F_INGRESS_ENFORCED 0x1 /* selected by an Ingress policy: default deny */
#define EP_F_EGRESS_ENFORCED 0x2  /* selected by an Egress policy: default deny */
#define EP_F_MTLS 0x4 /* enrolled in mTLS (mtls.h): its TCP to enrolled pods is tunnelled */
/* Under an AuthorizationPolicy the kernel judges (authz.h) on each client's node: new
 * connections are taken only from pods (judged there), the node and the waypoints. */
#define EP_F_AUTHZ_KERNEL 0x8
/* Its policy in that direction did not fit the policy maps (agent/datapath/fit.py): new
 * connections that way are dropped with DROP_POLICY_MAP_OVERFLOW, never half-enforced. */
#define EP_F_INGRESS_OVERFLOW 0x40
#define EP_F_EGRESS_OVERFLOW 0x80

struct endpoint_info {
	__be32 ip;
	__u32 identity;
	__u32 flags;
	__u32 pad;
};

struct ipcache_entry {
	__u32 identity;
	__u32 pad;
};

PINNED_MAP("hash", __u32, struct endpoint_info, endpoints_v1, 4096, 0);
PINNED_MAP("hash", __be32, struct ipcache_entry, ipcache_v1, 65536, 0);

static __always_inline struct endpoint_info *endpoint_by_ifindex(__u32 ifindex)
{
	return endpoints_v1.lookup(&ifindex);
}

static __always_inline __u32 identity_of(__be32 addr)
{
	struct ipcache_entry *entry = ipcache_v1.lookup(&addr);

	return entry ? entry->identity : IDENTITY_WORLD;
}

#endif /* TULLE_ENDPOINTS_H */
