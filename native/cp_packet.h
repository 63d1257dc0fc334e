/* SPDX-License-Identifier: MIT */
/*
 * Packet helpers shared by CookieProxy's XDP programs: the Ethernet/VLAN walk, the endpoint key, the
 * ones'-complement sums. Every helper is __always_inline (one program, no BPF-to-BPF calls to verify
 * separately) and every packet access is preceded by its bounds check against data_end.
 */
#ifndef CP_PACKET_H
#define CP_PACKET_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "cp_xdp.h"

/* IEEE 802.1Q / 802.1ad tag. */
struct cp_vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/*
 * The EtherType after at most one VLAN tag, and the L3 offset (14 or 18). A second tag is returned as
 * its VLAN EtherType, which no caller handles: such frames are XDP_PASS (user space walks two tags).
 * Returns 0 when the frame is too short for what it claims.
 */
static __always_inline __u16 cp_l2(void *data, void *data_end, __u32 *l3_offset)
{
	struct ethhdr *eth = data;
	struct cp_vlan_hdr *tag;
	__u16 proto;

	if ((void *)(eth + 1) > data_end)
		return 0;
	proto = eth->h_proto;
	*l3_offset = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		tag = (void *)(eth + 1);
		if ((void *)(tag + 1) > data_end)
			return 0;
		proto = tag->encapsulated_proto;
		*l3_offset = sizeof(*eth) + sizeof(*tag);
	}
	return proto;
}

/* ::ffff:a.b.c.d (RFC 4291 2.5.5.2), the form IpAddr keeps IPv4 in. */
static __always_inline void cp_v4_mapped(__u8 out[16], __be32 addr)
{
	__u32 *w = (__u32 *)out;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = addr;
}

static __always_inline void cp_copy16(__u8 out[16], const void *in)
{
	const __u32 *s = in;
	__u32 *d = (__u32 *)out;

	d[0] = s[0];
	d[1] = s[1];
	d[2] = s[2];
	d[3] = s[3];
}

/*
 * Is (address, port) a protected endpoint? An exact entry, or with `wildcard` the family's unspecified
 * address (0.0.0.0 for IPv4, :: for IPv6) as the capture filter (BpfFilter) reads it. The SYN program
 * asks for exact entries only, as ProtectedEndpoints.Find does (and the CLI refuses wildcards anyway).
 */
static __always_inline int cp_is_protected(void *endpoints, struct cp_endpoint_key *key, int v6, int wildcard)
{
	__u32 *w = (__u32 *)key->addr;

	if (bpf_map_lookup_elem(endpoints, key))
		return 1;
	if (!wildcard)
		return 0;
	w[0] = 0;
	w[1] = 0;
	w[2] = v6 ? 0 : bpf_htonl(0x0000ffff);
	w[3] = 0;
	return bpf_map_lookup_elem(endpoints, key) != 0;
}

/* A 64-bit accumulator of 32-bit words, folded to 16 bits (RFC 1071: byte order does not matter as long
 * as every word is summed as loaded). */
static __always_inline __u32 cp_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)sum;
}

#endif
