/* drop.h: why a packet was dropped, in numbers users already know from Hubble.
 *
 *   enum drop_reason          stable codes: Hubble's DropReason numbers, named DROP_<HUBBLE_NAME>;
 *                             the comment after each code is its description. Python reads this
 *                             enum (agent/datapath/drop_reasons.py): codes are defined here only.
 *                             Never renumber; add new codes, Tulle-only ones from 230 up.
 *   send_drop(skb, reason)    count the drop in tulle_drops_v1 with the file and line that
 *                             dropped, and evaluate to TC_ACT_SHOT:
 *                                 return send_drop(skb, DROP_POLICY_DENIED);
 *   tulle_drops_v1            per-CPU array indexed by reason: packets, bytes, last file/line
 *   TULLE_SOURCE_FILES        file ids for drop records: add a line for every new .c file
 */
#ifndef TULLE_DROP_H
#define TULLE_DROP_H

#include "common.h"

enum drop_reason {
	DROP_REASON_UNKNOWN = 0,                   /* Unknown drop reason */
	DROP_INVALID_SOURCE_MAC = 130,             /* Invalid source mac */
	DROP_INVALID_DESTINATION_MAC = 131,        /* Invalid destination mac */
	DROP_INVALID_SOURCE_IP = 132,              /* Invalid source ip (spoofed source address) */
	DROP_POLICY_DENIED = 133,                  /* Policy denied */
	DROP_INVALID_PACKET_DROPPED = 134,         /* Invalid packet (truncated or malformed header) */
	DROP_CT_TRUNCATED_OR_INVALID_HEADER = 135, /* CT: Truncated or invalid header */
	DROP_CT_MISSING_TCP_ACK_FLAG = 136,        /* CT: Missing TCP ACK flag */
	DROP_CT_UNKNOWN_L4_PROTOCOL = 137,         /* CT: Unknown L4 protocol */
	DROP_UNSUPPORTED_L3_PROTOCOL = 139,        /* Unsupported L3 protocol */
	DROP_MISSED_TAIL_CALL = 140,               /* Missed tail call */
	DROP_ERROR_WRITING_TO_PACKET = 141,        /* Error writing to packet */
	DROP_UNKNOWN_L4_PROTOCOL = 142,            /* Unknown L4 protocol */
	DROP_UNKNOWN_ICMPV4_CODE = 143,            /* Unknown ICMPv4 code */
	DROP_UNKNOWN_ICMPV4_TYPE = 144,            /* Unknown ICMPv4 type */
	DROP_STALE_OR_UNROUTABLE_IP = 151,         /* Stale or unroutable IP */
	DROP_ERROR_WHILE_CORRECTING_L3_CHECKSUM = 153, /* Error while correcting L3 checksum */
	DROP_ERROR_WHILE_CORRECTING_L4_CHECKSUM = 154, /* Error while correcting L4 checksum */
	DROP_CT_MAP_INSERTION_FAILED = 155,        /* CT: Map insertion failed */
	DROP_IP_FRAGMENTATION_NOT_SUPPORTED = 157, /* Fragmented packet (IP fragmentation not supported) */
	DROP_SERVICE_BACKEND_NOT_FOUND = 158,      /* Service backend not found (service has no endpoints) */
	DROP_NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION = 165, /* No configuration available to perform policy decision */
	DROP_UNSUPPORTED_L2_PROTOCOL = 166,        /* Unsupported L2 protocol */
	DROP_FIB_LOOKUP_FAILED = 169,              /* FIB lookup failed */
	DROP_INVALID_IDENTITY = 171,               /* Invalid identity */
	DROP_UNKNOWN_SENDER = 172,                 /* Unknown sender */
	DROP_POLICY_DENY = 181,                    /* Policy denied by denylist */
	DROP_AUTH_REQUIRED = 189,                  /* Authentication required (plaintext TCP to a STRICT mTLS workload) */
	DROP_TTL_EXCEEDED = 196,                   /* TTL exceeded */
	/* Tulle-only codes (Hubble has no name for them): */
	DROP_FRAG_NOT_FOUND = 230,                 /* Fragment without its first fragment (ports unknown) */
	DROP_CT_ENDPOINT_QUOTA_EXCEEDED = 240,     /* CT: endpoint connection quota exceeded */
	DROP_POLICY_MAP_OVERFLOW = 241,            /* Policy: the endpoint's policy did not fit the policy maps */
	DROP_TUNNEL_DESTINATION_NOT_LOCAL = 242,   /* mTLS tunnel: the CONNECT target is not a pod on this node */
	DROP_TUNNEL_NO_CERTIFICATE = 243,          /* mTLS tunnel: no certificate held yet for the client's identity */
	DROP_TUNNEL_UPSTREAM_FAILED = 244,         /* mTLS tunnel: the peer waypoint or the destination could not be reached */
	DROP_WAYPOINT_NOT_REDIRECTED = 250,        /* Waypoint dialled directly (only the datapath's L7 redirect may reach a waypoint) */
	DROP_MTLS_UNKNOWN_CA = 251,                /* mTLS: the peer's certificate is not signed by a trusted root */
	DROP_MTLS_CERT_EXPIRED = 252,              /* mTLS: the peer's certificate has expired or is not yet valid */
	DROP_MTLS_WRONG_IDENTITY = 253,            /* mTLS: the peer's certificate names another identity */
	DROP_MTLS_HANDSHAKE_FAILED = 254,          /* mTLS: handshake failed (no or malformed certificate, protocol) */
	DROP_REASON_MAX = 256,                     /* not a reason: size of tulle_drops_v1 */
};

/* Names the issue and Cilium's C code use for the same codes. */
#define DROP_SPOOFED_SOURCE DROP_INVALID_SOURCE_IP
#define DROP_NO_SERVICE DROP_SERVICE_BACKEND_NOT_FOUND
#define DROP_FRAG_NOT_SUPPORTED DROP_IP_FRAGMENTATION_NOT_SUPPORTED

/* id -> file name (as __FILE_NAME__ spells it) for drop records; ids are stable, 0 = unknown. */
#define TULLE_SOURCE_FILES(X) \
	X(1, "probe_parse.c") \
	X(2, "test_shim.c") \
	X(3, "from_pod.c") \
	X(4, "to_pod.c") \
	X(5, "parse.h") \
	X(6, "lb.h") \
	X(7, "waypoint_maps.c") \
	X(8, "from_netdev.c") \
	X(9, "to_netdev.c") \
	X(10, "nodeport.h")

/* Folds to a constant: clang evaluates __builtin_strcmp on two literals at compile time. */
static __always_inline __u16 source_file_id(const char *name)
{
#define __TULLE_FILE_CASE(id, file)              \
	if (__builtin_strcmp(name, file) == 0) \
		return id;
	TULLE_SOURCE_FILES(__TULLE_FILE_CASE)
#undef __TULLE_FILE_CASE
	return 0;
}

struct drop_stat {
	__u64 packets;
	__u64 bytes;
	__u16 file; /* source_file_id() of the latest drop with this reason */
	__u16 line; /* and its line */
	__u32 pad;
};

BPF_PERCPU_ARRAY(tulle_drops_v1, struct drop_stat, DROP_REASON_MAX);

static __always_inline int __send_drop(struct __sk_buff *skb, __u32 reason, __u16 file,
				       __u16 line)
{
	__u32 key = reason < DROP_REASON_MAX ? reason : DROP_REASON_UNKNOWN;
	struct drop_stat *stat = tulle_drops_v1.lookup(&key);

	if (stat) { /* per-CPU slot: no atomics needed */
		stat->packets++;
		stat->bytes += skb->len;
		stat->file = file;
		stat->line = line;
	}
	return TC_ACT_SHOT;
}

/* A macro so __FILE_NAME__ and __LINE__ are the dropping site's. */
#define send_drop(skb, reason) \
	__send_drop((skb), (reason), source_file_id(__FILE_NAME__), __LINE__)

#endif /* TULLE_DROP_H */
