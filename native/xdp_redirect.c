// SPDX-License-Identifier: MIT
/*
 * cp_xdp_redirect: the kernel side of the AF_XDP capture backend (--capture afxdp). An Ethernet frame
 * (untagged, or with one 802.1Q / 802.1ad tag) carrying TCP over IPv4 or IPv6 whose destination address
 * and port are a protected endpoint goes to the AF_XDP socket in the XSKMAP slot of the frame's rx queue;
 * everything else (ARP, ICMP, other ports, later IPv4 fragments, the host's own connections) is XDP_PASS,
 * i.e. the kernel stack handles it as before. These are the frames BpfFilter.ForProtectedEndpoints
 * selects for the AF_PACKET and libpcap backends (pcap's "tcp" does not follow IPv6 extension headers,
 * and matches the TCP header of a first fragment only).
 *
 * The endpoints are a hash map the host fills before it attaches the program (cp_endpoints, the same key
 * as the SYN program's); the XSKMAP has one slot per rx queue up to the bound one.
 */
#include "cp_packet.h"

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cp_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct cp_endpoint_key);
	__type(value, __u32);
} cp_endpoints SEC(".maps");

SEC("xdp")
int cp_xdp_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct cp_endpoint_key key = {};
	__u32 l2 = 0;
	__u16 proto = cp_l2(data, data_end, &l2);
	struct tcphdr *tcp;
	int v6;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + l2;
		__u32 ihl;

		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		/* RFC 791: only the first fragment carries the TCP header. */
		if (ip->frag_off & bpf_htons(0x1fff))
			return XDP_PASS;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return XDP_PASS;
		tcp = (void *)ip + ihl;
		if ((void *)tcp + 4 > data_end)
			return XDP_PASS;
		cp_v4_mapped(key.addr, ip->daddr);
		v6 = 0;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + l2;

		tcp = (void *)(ip6 + 1);
		/* RFC 8200: extension headers are not followed (as pcap's "tcp"). */
		if ((void *)tcp + 4 > data_end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		cp_copy16(key.addr, &ip6->daddr);
		v6 = 1;
	} else {
		return XDP_PASS;
	}
	key.port = tcp->dest;
	if (!cp_is_protected(&cp_endpoints, &key, v6, 1))
		return XDP_PASS;

	/* The low bits of flags are the action when the slot is empty (Linux 5.6+): a frame arriving before
	 * our socket is in the map, or after it left, goes to the stack. */
	return bpf_redirect_map(&cp_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
