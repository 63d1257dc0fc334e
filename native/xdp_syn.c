// SPDX-License-Identifier: MIT
/*
 * cp_xdp_syn: SendClientSynAck in the kernel. A SYN to a protected endpoint, in the common shape, is
 * answered here with the cookie SYN+ACK that user space (SynResponder) would send for it, byte for byte,
 * and sent back out of the interface with XDP_TX. Everything else goes up untouched (XDP_PASS) to the
 * capture ring, where the user-space path handles it exactly as without this program.
 *
 *   rx ──▶ cp_xdp_syn ─┬─ SYN, common shape, no live flow, within budget ─▶ SYN+ACK over the SYN, XDP_TX
 *                      ├─ SYN over its prefix's --syn-rate-per-source budget ──▶ XDP_DROP (counted)
 *                      └─ anything else ───────────────────────────────────────▶ XDP_PASS (user space)
 *
 * "Common shape" (docs/xdp-syn.md lists what goes up and why): Ethernet with at most one VLAN tag; IPv4
 * without options or fragmentation, or IPv6 without extension headers; valid IPv4 header and TCP
 * checksums; no payload; source port not 0; a source the parser accepts; only NOP, EOL, MSS, WS,
 * SACK-permitted and timestamp options, well formed; a SYN whose 4-tuple has no live flow (that one is
 * the flow's: RFC 5961 4, the challenge ACK); room to grow the frame for our options.
 *
 * The cookie's tables, bit layout, key and time slot are not in this file: the host writes them into
 * cp_syn_config from SynCookieCodec and CookieTables (see cp_xdp.h), so there is one definition of each.
 *
 * RFCs: 9293 (TCP: 3.1 header and checksum, 3.5 the SYN+ACK), 7323 (window scale and timestamps),
 * 2018 (SACK-permitted), 3168 6.1.1 (ECN setup SYN), 5961 4 (SYN on a live connection), 791 / 8200 (IP),
 * 1071 (the checksum), 6864 4.1 (IPv4 id 0 with DF).
 *
 * Verifier notes. The option walk is the part that can explode: each path through it carries its own
 * option values and its own proven packet range, and the verifier prunes a path only when an earlier
 * one reached the same point in an equivalent state. So:
 *  - the walk visits the 40 option offsets as constants (every packet access has a constant offset);
 *  - what it finds goes to per-CPU map memory (cp_syn_scratch), which the verifier does not track, and
 *    is read back with volatile loads: to the verifier the options are unknown values on every path, so
 *    the thousands of option sequences leave the walk as a handful of states, not one state each (kept
 *    in registers or on the stack, a WS of 14 here and of 7 there are different constants, and a
 *    constant that decides a branch becomes "precise" and keeps its state apart for the rest of the
 *    program);
 *  - packet pointers are re-derived from ctx between the phases (cp_data), so the length each path
 *    happened to prove does not travel with it either.
 * The rewrite writes our options from a small stack array at constant offsets for the same reason.
 * BPF_LOG_STATS of the loaded program is checked by XdpSynProgramTests (a budget far below 1M).
 */
#include "cp_packet.h"

#define CP_MAX_OPTIONS 40   /* 60-byte TCP header - 20 */
#define CP_WS_MAX 14        /* RFC 7323 2.3: a shift above 14 is used as 14 */
#define CP_WS_NONE 0xff     /* internal: the SYN had no window-scale option */

#define TCPOPT_EOL 0
#define TCPOPT_NOP 1
#define TCPOPT_MSS 2
#define TCPOPT_WINDOW 3
#define TCPOPT_SACK_PERM 4
#define TCPOPT_TIMESTAMP 8

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_ECE 0x40
#define TCP_FLAG_CWR 0x80

#define CP_TTL 64           /* L2L3Template.DefaultTtl */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cp_syn_config);
} cp_syn_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cp_syn_counters);
} cp_syn_counters SEC(".maps");

/* The protected endpoints; the host sets max_entries to their number before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct cp_endpoint_key);
	__type(value, __u32);
} cp_endpoints SEC(".maps");

/* 4-tuples with a live flow in user space: the capture threads insert on flow creation and delete on
 * removal. LRU, so a missed delete ages out instead of filling the map. Sized by the host. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct cp_flow_key);
	__type(value, __u32);
} cp_live_flows SEC(".maps");

/* Per-CPU GCRA buckets per source prefix (--syn-rate-per-source). Sized by the host. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct cp_prefix_key);
	__type(value, struct cp_budget);
} cp_syn_budget SEC(".maps");

/* What the option walk found (TcpOptionsReader's view of a SYN). */
struct cp_syn_options {
	__u32 mss;        /* 0 = none */
	__u32 ws;         /* 0..14, or CP_WS_NONE */
	__u32 sack;       /* 0 or 1 */
	__u32 ts;         /* 0 or 1 */
	__u32 tsval;      /* the client's TSval as it is in the packet: our TSecr */
};

/* The option walk's record, per CPU (an XDP program runs to completion on its CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cp_syn_options);
} cp_syn_scratch SEC(".maps");

static __always_inline void cp_count(struct cp_syn_counters *c, int which)
{
	c->value[which & (CP_SYN_COUNTERS - 1)]++;
}

/* ---- SipHash-2-4 (Aumasson and Bernstein), the fixed-length form SipHash.Hash3 / Hash6 compute. */

static __always_inline __u64 cp_rotl(__u64 x, int b)
{
	return (x << b) | (x >> (64 - b));
}

#define CP_SIPROUND(v0, v1, v2, v3)                                                  \
	do {                                                                         \
		v0 += v1; v1 = cp_rotl(v1, 13); v1 ^= v0; v0 = cp_rotl(v0, 32);      \
		v2 += v3; v3 = cp_rotl(v3, 16); v3 ^= v2;                            \
		v0 += v3; v3 = cp_rotl(v3, 21); v3 ^= v0;                            \
		v2 += v1; v1 = cp_rotl(v1, 17); v1 ^= v2; v2 = cp_rotl(v2, 32);      \
	} while (0)

/* The MAC of `words` 64-bit message words (a multiple of 8 bytes, so the last block is the length only). */
static __always_inline __u64 cp_siphash(__u64 k0, __u64 k1, const __u64 *m, int words)
{
	__u64 v0 = k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = k1 ^ 0x7465646279746573ULL;
	__u64 b = (__u64)(words * 8) << 56;

#pragma clang loop unroll(full)
	for (int i = 0; i < 6; i++) {
		if (i < words) {
			v3 ^= m[i];
			CP_SIPROUND(v0, v1, v2, v3);
			CP_SIPROUND(v0, v1, v2, v3);
			v0 ^= m[i];
		}
	}
	v3 ^= b;
	CP_SIPROUND(v0, v1, v2, v3);
	CP_SIPROUND(v0, v1, v2, v3);
	v0 ^= b;
	v2 ^= 0xff;
	CP_SIPROUND(v0, v1, v2, v3);
	CP_SIPROUND(v0, v1, v2, v3);
	CP_SIPROUND(v0, v1, v2, v3);
	CP_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the SYN's shape */

/*
 * ctx->data and data_end, loaded again. The verifier's proof of how far a packet pointer may be read is
 * part of every state; checks made on one path but not another (each exit of a checksum loop proves a
 * different length) would keep states apart for the rest of the program. A fresh pointer has proven
 * nothing on every path alike. `volatile`, or the compiler would reuse the first load.
 */
static __always_inline void *cp_data(struct xdp_md *ctx)
{
	return (void *)(long)*(volatile __u32 *)&ctx->data;
}

static __always_inline void *cp_data_end(struct xdp_md *ctx)
{
	return (void *)(long)*(volatile __u32 *)&ctx->data_end;
}

/*
 * The TCP checksum over the pseudo-header and the `len`-byte header (no payload here: the caller checked),
 * summed as loaded; with the checksum field as it stands the fold is 0xffff when it is right. `len` is a
 * multiple of 4, 20..60. Returns -1 when a word lies past data_end.
 */
static __always_inline int cp_tcp_sum(struct tcphdr *tcp, void *data_end, __u64 pseudo, __u32 len)
{
	__u64 sum = pseudo;

#pragma clang loop unroll(full)
	for (int i = 0; i < 15; i++) {
		__u32 *w = (__u32 *)tcp + i;

		if ((__u32)i * 4 >= len)
			break;
		if ((void *)(w + 1) > data_end)
			return -1;
		sum += *w;
	}
	return (int)cp_fold(sum);
}

/*
 * The options as TcpOptionsReader reads them (later duplicates win, a shift above 14 counts as 14, EOL
 * ends the list) into `o`, which is per-CPU map memory (see the verifier notes at the top). Any other
 * kind, or a malformed length, returns -1: the full parser decides those. Offsets are constants (k); the
 * only state carried between them is the offset of the next option.
 */
static __always_inline int cp_parse_options(__u8 *opt, void *data_end, __u32 len, struct cp_syn_options *o)
{
	__u32 next = 0;

	o->mss = 0;
	o->ws = CP_WS_NONE;
	o->sack = 0;
	o->ts = 0;
	o->tsval = 0;

#pragma clang loop unroll(full)
	for (int k = 0; k < CP_MAX_OPTIONS; k++) {
		__u8 kind;
		__u32 left;

		if ((__u32)k < next)
			continue;             /* inside the option that started before k */
		if ((__u32)k >= len)
			break;
		if ((void *)(opt + k + 1) > data_end)
			return -1;
		kind = opt[k];
		if (kind == TCPOPT_EOL)
			break;
		if (kind == TCPOPT_NOP) {
			next = k + 1;
			continue;
		}
		left = len - k;
		if (kind == TCPOPT_MSS) {
			if (k + 4 > CP_MAX_OPTIONS || left < 4 || (void *)(opt + k + 4) > data_end || opt[k + 1] != 4)
				return -1;
			o->mss = (__u32)opt[k + 2] << 8 | opt[k + 3];
			next = k + 4;
		} else if (kind == TCPOPT_WINDOW) {
			__u32 shift;

			if (k + 3 > CP_MAX_OPTIONS || left < 3 || (void *)(opt + k + 3) > data_end || opt[k + 1] != 3)
				return -1;
			shift = opt[k + 2];
			o->ws = shift > CP_WS_MAX ? CP_WS_MAX : shift;
			next = k + 3;
		} else if (kind == TCPOPT_SACK_PERM) {
			if (k + 2 > CP_MAX_OPTIONS || left < 2 || (void *)(opt + k + 2) > data_end || opt[k + 1] != 2)
				return -1;
			o->sack = 1;
			next = k + 2;
		} else if (kind == TCPOPT_TIMESTAMP) {
			if (k + 10 > CP_MAX_OPTIONS || left < 10 || (void *)(opt + k + 10) > data_end || opt[k + 1] != 10)
				return -1;
			o->tsval = *(__u32 *)(opt + k + 2);
			o->ts = 1;
			next = k + 10;
		} else {
			return -1;    /* SACK blocks, TFO, MPTCP, MD5, ... */
		}
	}
	return 0;
}

/* CookieTables.EncodeMss: the index of the largest table MSS not above the client's, else 0. */
static __always_inline __u32 cp_encode_mss(const struct cp_syn_config *cfg, __u32 mss)
{
	__u32 index = 0;

#pragma clang loop unroll(full)
	for (int i = 1; i < 8; i++)
		if (mss >= cfg->mss_table[i])
			index = i;
	return index;
}

/* CookieTables.EncodeWindowScale: 0 for none, else the largest entry not above the shift, at least 1. */
static __always_inline __u32 cp_encode_ws(const struct cp_syn_config *cfg, __u32 ws)
{
	__u32 index = 1;

	if (ws == CP_WS_NONE)
		return 0;
#pragma clang loop unroll(full)
	for (int i = 2; i < 8; i++)
		if ((__s32)ws >= cfg->ws_table[i])
			index = i;
	return index;
}

/*
 * The per-source SYN budget (SourceLimiter.TryAcceptSyn's GCRA): a packet at t conforms iff
 * max(TAT, t) - t <= tolerance, and then TAT = max(TAT, t) + interval. A prefix seen for the first time
 * has a full bucket. Per CPU: no atomics, and a source's SYNs on one CPU share one bucket.
 */
static __always_inline int cp_within_budget(const struct cp_syn_config *cfg, struct cp_prefix_key *key)
{
	__u64 now = bpf_ktime_get_ns();
	struct cp_budget *b = bpf_map_lookup_elem(&cp_syn_budget, key);
	__u64 start;

	if (!b) {
		struct cp_budget fresh = { .tat_ns = now + cfg->syn_interval_ns };

		bpf_map_update_elem(&cp_syn_budget, key, &fresh, BPF_ANY);
		return 1;
	}
	start = b->tat_ns > now ? b->tat_ns : now;
	if (start - now > cfg->syn_tolerance_ns)
		return 0;
	b->tat_ns = start + cfg->syn_interval_ns;
	return 1;
}

/* The source prefix key: the IPv4-mapped or IPv6 source with the bits past the prefix length cleared. */
static __always_inline void cp_prefix_of(const struct cp_syn_config *cfg, const __u8 src[16], int v6,
					 struct cp_prefix_key *key)
{
	__u32 *w = (__u32 *)key->addr;

	cp_copy16(key->addr, src);
	if (!v6) {
		__u32 bits = cfg->prefix_v4 & 63;
		__u32 mask = bits == 0 ? 0 : bits >= 32 ? 0xffffffffu : ~((1u << (32 - bits)) - 1);

		w[3] = bpf_htonl(bpf_ntohl(w[3]) & mask);
		return;
	}
	__u32 bits = cfg->prefix_v6 & 255;
#pragma clang loop unroll(full)
	for (int i = 0; i < 4; i++) {
		__u32 mask;

		if (bits >= (__u32)(32 * (i + 1)))
			mask = 0xffffffffu;
		else if (bits <= (__u32)(32 * i))
			mask = 0;
		else
			mask = ~((1u << (32 * (i + 1) - bits)) - 1);
		w[i] = bpf_htonl(bpf_ntohl(w[i]) & mask);
	}
}

/* ip4 / ip6 and tcp over fresh pointers (cp_data); false when the headers do not fit. */
#define CP_FRESH_HEADERS(fail)                                                              \
	do {                                                                                \
		data = cp_data(ctx);                                                        \
		data_end = cp_data_end(ctx);                                                \
		if (data + l2 + l3_len + sizeof(struct tcphdr) > data_end)                  \
			goto fail;                                                          \
		if (v6) {                                                                   \
			ip6 = data + l2;                                                    \
			tcp = (void *)(ip6 + 1);                                            \
		} else {                                                                    \
			ip4 = data + l2;                                                    \
			tcp = (void *)(ip4 + 1);                                            \
		}                                                                           \
	} while (0)

/*
 * One address family. `v6` is a constant after inlining, so each family is its own straight-line code.
 * Returns the XDP action.
 */
static __always_inline int cp_syn(struct xdp_md *ctx, __u32 l2, const int v6)
{
	const __u32 l3_len = v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	void *data, *data_end;
	struct cp_endpoint_key endpoint = {};
	struct cp_flow_key flow = {};
	struct cp_syn_options *o, opt;
	struct cp_syn_counters *counters;
	struct cp_syn_config *cfg;
	struct cp_syn_key *key;
	struct tcphdr *tcp;
	struct iphdr *ip4 = 0;
	struct ipv6hdr *ip6 = 0;
	__u32 zero = 0, tcp_len, ours, slot, seq, i;
	__u64 pseudo, words[6], mac;
	__u32 opts[5], n_opts;
	__u32 isn, tsval = 0;
	int sum, nwords;
	__u8 flags;

	CP_FRESH_HEADERS(out);
	if (v6) {
		/* RFC 8200: TCP right after the fixed header, no extension headers. */
		if ((*(__u8 *)ip6 & 0xf0) != 0x60 || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
	} else {
		/* RFC 791: version 4, IHL 5 (no options), TCP, not a fragment. */
		if (*(__u8 *)ip4 != 0x45 || ip4->protocol != IPPROTO_TCP || (ip4->frag_off & bpf_htons(0x3fff)))
			return XDP_PASS;
	}

	/* A SYN: not ACK, RST or FIN (SynResponder's test, and PacketParser refuses SYN+FIN and SYN+RST). */
	flags = ((__u8 *)tcp)[13];
	if ((flags & (TCP_FLAG_FIN | TCP_FLAG_SYN | TCP_FLAG_RST | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return XDP_PASS;

	/* To a protected endpoint? */
	if (v6) {
		cp_copy16(flow.saddr, &ip6->saddr);
		cp_copy16(flow.daddr, &ip6->daddr);
	} else {
		cp_v4_mapped(flow.saddr, ip4->saddr);
		cp_v4_mapped(flow.daddr, ip4->daddr);
	}
	flow.sport = tcp->source;
	flow.dport = tcp->dest;
	seq = bpf_ntohl(tcp->seq);
	cp_copy16(endpoint.addr, flow.daddr);
	endpoint.port = flow.dport;
	if (!cp_is_protected(&cp_endpoints, &endpoint, v6, 0))
		return XDP_PASS;

	counters = bpf_map_lookup_elem(&cp_syn_counters, &zero);
	if (!counters)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&cp_syn_config, &zero);
	o = bpf_map_lookup_elem(&cp_syn_scratch, &zero);
	if (!cfg || !o) {
		cp_count(counters, CP_SYN_INTERNAL_ERROR);
		goto pass;
	}

	/* The host may want every SYN itself for a while (a SYN cache while the rate is low). */
	if (cfg->flags & CP_SYN_F_PASS_SYNS)
		goto pass;

	/* A SYN on a 4-tuple with a live flow is the flow's (RFC 5961 4: it answers with a challenge ACK). */
	if (bpf_map_lookup_elem(&cp_live_flows, &flow)) {
		cp_count(counters, CP_SYN_LIVE_FLOW);
		goto pass;
	}

	/* Sources the parser refuses (Ipv4Packet / Ipv6Packet.IsBadSource, IsBadDestination) are its business. */
	if (v6) {
		__u32 *s = (__u32 *)flow.saddr, *d = (__u32 *)flow.daddr;

		if (flow.saddr[0] == 0xff || (s[0] | s[1] | s[2] | s[3]) == 0)
			goto pass;
		if ((s[0] | s[1]) == 0 && s[2] == bpf_htonl(0x0000ffff))
			goto pass;
		if ((d[0] | d[1]) == 0 && d[2] == bpf_htonl(0x0000ffff))
			goto pass;
	} else {
		__u32 src = bpf_ntohl(((__u32 *)flow.saddr)[3]);

		if ((src >> 24) == 0 || (src >> 28) == 0xe || src == 0xffffffff)
			goto pass;
	}
	if (flow.sport == 0)
		goto pass;

	/* TCP: a data offset of at least 5, no payload (RFC 9293 3.1). Then the IPv4 header checksum and the
	 * TCP checksum must hold. A frame a local sender left to checksum offload fails here and goes up,
	 * where the capture's status tells the parser not to check. */
	CP_FRESH_HEADERS(pass);
	tcp_len = tcp->doff * 4;
	if (tcp_len < sizeof(struct tcphdr))
		goto pass;
	if (v6) {
		__u32 *a = (__u32 *)&ip6->saddr;

		if (bpf_ntohs(ip6->payload_len) != tcp_len)
			goto pass;
		pseudo = 0x0600 + bpf_htons(tcp_len);
#pragma clang loop unroll(full)
		for (i = 0; i < 8; i++)
			pseudo += a[i];
	} else {
		__u32 *h = (__u32 *)ip4;
		__u64 ipsum = 0;

		if (bpf_ntohs(ip4->tot_len) != sizeof(struct iphdr) + tcp_len)
			goto pass;
#pragma clang loop unroll(full)
		for (i = 0; i < 5; i++)
			ipsum += h[i];
		if (cp_fold(ipsum) != 0xffff)
			goto pass;
		pseudo = 0x0600 + bpf_htons(tcp_len) + (__u64)ip4->saddr + ip4->daddr;
	}
	sum = cp_tcp_sum(tcp, data_end, pseudo, tcp_len);
	if (sum != 0xffff)
		goto pass;

	/* The options, over fresh pointers and a freshly read header length (the checksum loop's exits
	 * each know a different one). */
	CP_FRESH_HEADERS(pass);
	tcp_len = (*(volatile __u8 *)((__u8 *)tcp + 12) >> 4) * 4;
	if (cp_parse_options((__u8 *)(tcp + 1), data_end, (tcp_len - sizeof(struct tcphdr)) & 63, o) < 0)
		goto pass;
	opt.mss = *(volatile __u32 *)&o->mss;
	opt.ws = *(volatile __u32 *)&o->ws;
	opt.sack = *(volatile __u32 *)&o->sack;
	opt.ts = *(volatile __u32 *)&o->ts;
	opt.tsval = *(volatile __u32 *)&o->tsval;

	/* --syn-rate-per-source: over budget is dropped here, as user space would (DropReason.RateLimited). */
	if (cfg->flags & CP_SYN_F_RATE_LIMIT) {
		struct cp_prefix_key prefix;

		cp_prefix_of(cfg, flow.saddr, v6, &prefix);
		if (!cp_within_budget(cfg, &prefix)) {
			cp_count(counters, CP_SYN_OVER_BUDGET);
			return XDP_DROP;
		}
	}

	/* SynCookieCodec.WriteMessage's words: addresses, ports | slot << 32, client ISN. */
	key = &cfg->keys[cfg->active & 1];
	slot = key->slot;
	if (v6) {
		__u64 *s = (__u64 *)flow.saddr, *d = (__u64 *)flow.daddr;

		words[0] = bpf_be64_to_cpu(s[0]);
		words[1] = bpf_be64_to_cpu(s[1]);
		words[2] = bpf_be64_to_cpu(d[0]);
		words[3] = bpf_be64_to_cpu(d[1]);
		nwords = 6;
	} else {
		words[0] = bpf_ntohl(((__u32 *)flow.saddr)[3]) | (__u64)bpf_ntohl(((__u32 *)flow.daddr)[3]) << 32;
		nwords = 3;
	}
	words[nwords - 2] = bpf_ntohs(flow.sport) | (__u64)bpf_ntohs(flow.dport) << 16 | (__u64)slot << 32;
	words[nwords - 1] = seq;
	mac = cp_siphash(key->k0, key->k1, words, nwords);

	/* SynCookieCodec.ComposeIsn and ComposeTsVal, with the layout from the config. */
	{
		__u32 mac_bits = cfg->mac_bits & 31;
		__u32 mac_mask = (1u << mac_bits) - 1;
		__u32 opt_mask = (1u << (31 - mac_bits)) - 1;
		__u32 msi = cp_encode_mss(cfg, opt.mss);
		__u32 wsi = cp_encode_ws(cfg, opt.ws);
		__u32 bits;

		bits = wsi << ((cfg->wsi_shift - 1) & 31) | msi << ((cfg->msi_shift - 1) & 31)
		     | (opt.sack ? 1u << ((cfg->sack_shift - 1) & 31) : 0);
		bits ^= (__u32)(mac >> mac_bits) & opt_mask;
		isn = ((__u32)mac & mac_mask) << (32 - mac_bits) | bits << 1 | (slot & 1);
		if (opt.ts) {
			/* RFC 3168 6.1.1: ECE and CWR together ask for ECN. */
			__u32 ecn = (flags & (TCP_FLAG_ECE | TCP_FLAG_CWR)) == (TCP_FLAG_ECE | TCP_FLAG_CWR) ? cfg->ts_ecn_bit : 0;

			tsval = ((__u32)(mac >> 32) & mac_mask) << (32 - mac_bits) | ecn
			      | (opt.ws == CP_WS_NONE ? cfg->ts_ws_none : opt.ws);
		}
	}

	/* Our options (TcpOptionsWriter for a SYN): MSS; then TS (SACK-permitted in its leading NOPs) or
	 * SACK-permitted; then WS. Offered only what the client offered (RFC 7323 2.2, RFC 2018). */
	opts[0] = bpf_htonl(0x02040000u | (v6 ? cfg->mss_v6 : cfg->mss_v4));
	n_opts = 1;
	if (opt.ts) {
		opts[1] = bpf_htonl(opt.sack ? 0x0402080au : 0x0101080au);
		opts[2] = bpf_htonl(tsval);
		opts[3] = opt.tsval;
		n_opts = 4;
	} else if (opt.sack) {
		opts[1] = bpf_htonl(0x01010402u);
		n_opts = 2;
	}
	if (opt.ws != CP_WS_NONE) {
		__u32 ws = bpf_htonl(0x01030300u | cfg->window_scale);

		if (n_opts == 1)
			opts[1] = ws;
		else if (n_opts == 2)
			opts[2] = ws;
		else
			opts[4] = ws;
		n_opts++;
	}
	ours = sizeof(struct tcphdr) + 4 * n_opts;

	/* Resize the frame to exactly Ethernet + IP + our TCP header (padding and the client's longer options
	 * go). No room to grow: untouched, user space answers. */
	{
		int delta;

		data = cp_data(ctx);
		data_end = cp_data_end(ctx);
		delta = (int)(l2 + l3_len + ours) - (int)(data_end - data);
		if (delta != 0 && bpf_xdp_adjust_tail(ctx, delta))
			goto pass;
	}

	/* From here the frame is committed: a failed check is a bug, dropped and counted. */
	CP_FRESH_HEADERS(broken);

	/* Ethernet: swap the MACs; a VLAN tag stays where it is. */
	{
		__u16 *m = data, t0 = m[0], t1 = m[1], t2 = m[2];

		m[0] = m[3];
		m[1] = m[4];
		m[2] = m[5];
		m[3] = t0;
		m[4] = t1;
		m[5] = t2;
	}

	/* IP (TcpFrameBuilder.WriteIpHeader): addresses swapped, TTL / hop limit 64. */
	if (v6) {
		__u32 *a = (__u32 *)&ip6->saddr;

		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(ours);
		ip6->nexthdr = IPPROTO_TCP;
		ip6->hop_limit = CP_TTL;
		cp_copy16((__u8 *)&ip6->saddr, flow.daddr);
		cp_copy16((__u8 *)&ip6->daddr, flow.saddr);
		pseudo = 0x0600 + bpf_htons(ours);
#pragma clang loop unroll(full)
		for (i = 0; i < 8; i++)
			pseudo += a[i];
	} else {
		__u32 *h = (__u32 *)ip4;
		__u64 ipsum = 0;

		ip4->tos = 0;
		ip4->tot_len = bpf_htons(sizeof(struct iphdr) + ours);
		ip4->id = 0;
		ip4->frag_off = bpf_htons(0x4000);    /* DF, and id 0 (RFC 6864 4.1) */
		ip4->ttl = CP_TTL;
		ip4->protocol = IPPROTO_TCP;
		ip4->check = 0;
		ip4->saddr = ((__u32 *)flow.daddr)[3];
		ip4->daddr = ((__u32 *)flow.saddr)[3];
#pragma clang loop unroll(full)
		for (i = 0; i < 5; i++)
			ipsum += h[i];
		ip4->check = ~cp_fold(ipsum) & 0xffff;
		pseudo = 0x0600 + bpf_htons(ours) + (__u64)ip4->saddr + ip4->daddr;
	}

	/* TCP (TcpPacket.Emit): ports swapped, seq = ISN, ack = SYN.seq + 1 (RFC 9293 3.5), SYN|ACK. */
	tcp->source = flow.dport;
	tcp->dest = flow.sport;
	tcp->seq = bpf_htonl(isn);
	tcp->ack_seq = bpf_htonl(seq + 1);
	((__u8 *)tcp)[12] = (__u8)(ours << 2);     /* data offset: (length / 4) << 4 */
	((__u8 *)tcp)[13] = TCP_FLAG_SYN | TCP_FLAG_ACK;
	tcp->window = bpf_htons(cfg->window);
	tcp->check = 0;
	tcp->urg_ptr = 0;
#pragma clang loop unroll(full)
	for (i = 0; i < 5; i++) {
		__u32 *w = (__u32 *)(tcp + 1) + i;

		if (i >= n_opts)
			break;
		if ((void *)(w + 1) > data_end)
			goto broken;
		*w = opts[i];
	}
	sum = cp_tcp_sum(tcp, data_end, pseudo, ours);
	if (sum < 0)
		goto broken;
	tcp->check = ~sum & 0xffff;

	cp_count(counters, CP_SYN_ANSWERED);
	return XDP_TX;

broken:
	cp_count(counters, CP_SYN_INTERNAL_ERROR);
	return XDP_DROP;
pass:
	cp_count(counters, CP_SYN_PASSED);
out:
	return XDP_PASS;
}

SEC("xdp")
int cp_xdp_syn(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 l2 = 0;
	__u16 proto = cp_l2(data, data_end, &l2);

	if (proto == bpf_htons(ETH_P_IP))
		return cp_syn(ctx, l2, 0);
	if (proto == bpf_htons(ETH_P_IPV6))
		return cp_syn(ctx, l2, 1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
