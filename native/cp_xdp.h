/* SPDX-License-Identifier: MIT */
/*
 * The ABI between CookieProxy's XDP programs and the host: map keys and values. The C# side mirrors each
 * struct (src/CookieProxy.Platform/Bpf/XdpMaps.cs) and checks its size against the map's key and value
 * sizes in the loaded object (BTF), so a change here that is not made there fails at load, not silently.
 *
 * Nothing in here is a table or a constant of the cookie: the MSS and window-scale tables, the bit layout
 * of the ISN and TSval, the key and the time slot all come from the host in the config map
 * (SynCookieCodec and CookieTables stay their one definition).
 */
#ifndef CP_XDP_H
#define CP_XDP_H

#include <linux/types.h>

/* A protected endpoint (both programs): the address IPv4-mapped for IPv4 (::ffff:a.b.c.d, as IpAddr holds
 * it), all zero bytes but the ::ffff: prefix for 0.0.0.0 and all zero for ::; the port in network order. */
struct cp_endpoint_key {
	__u8 addr[16];
	__be16 port;
	__u16 pad;
};

/* A live flow (SYN program): the client's address and port, then ours, as in the SYN. */
struct cp_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
};

/* A source prefix for the per-source SYN budget: the source address (IPv4-mapped) with the bits past
 * --source-prefix4/6 cleared, as SourceLimiter masks it. */
struct cp_prefix_key {
	__u8 addr[16];
};

/* The GCRA state of one prefix (SourceLimiter's Bucket): the theoretical arrival time, ns of
 * bpf_ktime_get_ns(). TAT <= now means a full bucket. */
struct cp_budget {
	__u64 tat_ns;
};

/* One signing state: the SipHash-2-4 key and the cookie time slot. */
struct cp_syn_key {
	__u64 k0;
	__u64 k1;
	__u32 slot;
	__u32 pad;
};

#define CP_SYN_F_RATE_LIMIT 1u   /* enforce the per-source SYN budget */
#define CP_SYN_F_PASS_SYNS 2u    /* answer nothing: pass every SYN up (user space answers while the rate is low) */

/*
 * The SYN program's configuration (one ARRAY element, written by the host). The host flips `active` only
 * after it has written the other key set completely, so the program never signs with half a new key.
 */
struct cp_syn_config {
	struct cp_syn_key keys[2];
	__u32 active;             /* index into keys; only bit 0 is read */
	__u32 flags;              /* CP_SYN_F_* */

	/* Our SYN+ACK (SynResponder: ResponderConfig's MSS and window, our shift). */
	__u16 mss_v4;
	__u16 mss_v6;
	__u16 window;             /* unscaled: RFC 7323 2.2 */
	__u8 window_scale;        /* our shift, sent when the client sent one */
	__u8 pad0;

	/* CookieTables: index i of the ISN's 3-bit fields means this value. Ascending. */
	__u16 mss_table[8];
	__s8 ws_table[8];         /* entry 0 = "no window-scale option" */

	/* SynCookieCodec's layout: ISN = MAC[mac_bits-1:0] << (32 - mac_bits) | opts << 1 | slot parity, where
	 * opts = WSI << (wsi_shift - 1) | MSI << (msi_shift - 1) | SACK << (sack_shift - 1), XORed with the
	 * next MAC bits; TSval = MAC[32 + mac_bits - 1 : 32] << (32 - mac_bits) | ECN bit | exact shift. */
	__u8 mac_bits;
	__u8 wsi_shift;
	__u8 msi_shift;
	__u8 sack_shift;
	__u8 ts_ecn_bit;
	__u8 ts_ws_none;
	__u8 prefix_v4;           /* --source-prefix4 */
	__u8 prefix_v6;           /* --source-prefix6 */

	/* --syn-rate-per-source as SourceLimiter's bucket: emission interval and tolerance, in ns. */
	__u64 syn_interval_ns;
	__u64 syn_tolerance_ns;
};

/* Per-CPU counters of the SYN program (one PERCPU_ARRAY element). */
enum cp_syn_counter {
	CP_SYN_ANSWERED = 0,      /* SYN+ACKs sent with XDP_TX */
	CP_SYN_PASSED,            /* SYNs to a protected endpoint left to user space (all reasons) */
	CP_SYN_LIVE_FLOW,         /* ... of which: the 4-tuple has a live flow (RFC 5961 4 challenge ACK) */
	CP_SYN_OVER_BUDGET,       /* SYNs dropped: their source prefix was over --syn-rate-per-source */
	CP_SYN_INTERNAL_ERROR,    /* a lookup that cannot fail did, or a committed frame failed a check */
	CP_SYN_COUNTERS = 8,
};

struct cp_syn_counters {
	__u64 value[CP_SYN_COUNTERS];
};

#endif
