// SPDX-License-Identifier: MIT
/*
 * CookieProxy's XDP program, in C, for reading and for checking with clang.
 *
 * NOT built or loaded at run time: src/CookieProxy.Platform/XdpProgram.cs emits the same logic as eBPF
 * bytecode (so a machine running CookieProxy needs no clang), with the protected endpoints baked in as
 * immediates. This file shows one IPv4 endpoint and one IPv6 endpoint, chosen with -D at compile time:
 *
 *   clang -O2 -target bpf -I/usr/include/$(uname -m)-linux-gnu -c native/xdp_redirect.c -o xdp_redirect.o \
 *         -DCP_V4_ADDR=0xC6120001 -DCP_V4_PORT=80
 *   llvm-objdump -d xdp_redirect.o
 *
 * What it does: an Ethernet frame (untagged, or with one 802.1Q / 802.1ad tag) carrying TCP over IPv4
 * or IPv6 whose destination address and port are a protected endpoint goes to the AF_XDP socket in
 * the XSKMAP slot of the frame's rx queue; everything else (ARP, ICMP, other ports, later IPv4
 * fragments, the host's own connections) is XDP_PASS, i.e. the kernel stack handles it as before.
 * These are the frames BpfFilter.ForProtectedEndpoints selects for the AF_PACKET and libpcap backends.
 *
 * No libbpf: the map is declared the legacy way (struct bpf_map_def in section "maps") only so that
 * clang has something to relocate; the C# loader creates the map with BPF_MAP_CREATE and patches its
 * fd into the ld_imm64 (BPF_PSEUDO_MAP_FD) itself.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>

#ifndef CP_V4_ADDR
#define CP_V4_ADDR 0xC6120001 /* 198.18.0.1, host order; 0 = any address */
#endif
#ifndef CP_V4_PORT
#define CP_V4_PORT 80
#endif
#ifndef CP_V6_PORT
#define CP_V6_PORT 443        /* on fd00::1; 0 = no IPv6 endpoint */
#endif

#define SEC(name) __attribute__((section(name), used))
#define bswap16(x) __builtin_bswap16(x)
#define bswap32(x) __builtin_bswap32(x)

struct bpf_map_def {
	unsigned int type;
	unsigned int key_size;
	unsigned int value_size;
	unsigned int max_entries;
	unsigned int map_flags;
};

struct bpf_map_def SEC("maps") xsks = {
	.type = BPF_MAP_TYPE_XSKMAP,
	.key_size = sizeof(int),
	.value_size = sizeof(int),
	.max_entries = 1,
};

static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

struct vlan_tag {
	__be16 tci;
	__be16 encapsulated_proto;
};

SEC("xdp")
int cp_xdp_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;
	void *l3;
	__u16 dport;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bswap16(ETH_P_8021Q) || proto == bswap16(ETH_P_8021AD)) {
		struct vlan_tag *tag = l3;

		if ((void *)(tag + 1) > data_end)
			return XDP_PASS;
		proto = tag->encapsulated_proto;
		l3 = tag + 1;
	}

	if (proto == bswap16(ETH_P_IP)) {
		struct iphdr *ip = l3;
		struct tcphdr *tcp;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		/* RFC 791: only the first fragment carries the TCP header. */
		if (ip->frag_off & bswap16(0x1fff))
			return XDP_PASS;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return XDP_PASS;
		tcp = (void *)ip + ihl;
		if ((void *)tcp + 4 > data_end)
			return XDP_PASS;
		dport = tcp->dest;
		if (dport == bswap16(CP_V4_PORT) && (CP_V4_ADDR == 0 || ip->daddr == bswap32(CP_V4_ADDR)))
			goto redirect;
		return XDP_PASS;
	}

	if (CP_V6_PORT != 0 && proto == bswap16(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		struct tcphdr *tcp = (void *)(ip6 + 1);
		/* fd00::1 */
		static const __u32 want[4] = { bswap32(0xfd000000), 0, 0, bswap32(1) };

		/* RFC 8200: extension headers are not followed (as pcap's "tcp"). */
		if ((void *)tcp + 4 > data_end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		if (tcp->dest != bswap16(CP_V6_PORT))
			return XDP_PASS;
		for (int i = 0; i < 4; i++)
			if (ip6->daddr.in6_u.u6_addr32[i] != want[i])
				return XDP_PASS;
		goto redirect;
	}
	return XDP_PASS;

redirect:
	/* The low bits of flags are the action when the slot is empty (Linux 5.6+): a frame arriving before
	 * our socket is in the map, or after it left, goes to the stack. */
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
