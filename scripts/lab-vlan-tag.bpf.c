// The lab's 802.1Q tagger: a tc (cls_bpf, direct action) program pair for the client's veth end, so the link
// carries tagged frames of VLAN 100 even where the kernel has no 802.1Q support (CONFIG_VLAN_8021Q) and no
// tc vlan action (CONFIG_NET_ACT_VLAN): the client's "VLAN 100" addresses sit on cp-c0 itself, their frames
// get the tag on the way out and lose it on the way in, so the server side sees a trunk port.
//
//   egress:  IPv4 from 198.18.2.0/24 or IPv6 from 2001:db8:18:2::/64  ->  push 802.1Q tag, VID 100
//   ingress: a frame tagged with VID 100                                ->  pop the tag
//
// Built by scripts/lab.sh with `clang -O2 -target bpf -c`; attached with `tc filter ... bpf da`. Only the
// UAPI headers are needed (no libbpf): the two helpers are declared by their numbers.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>

#define SEC(name) __attribute__((section(name), used))

#ifndef LAB_VLAN_ID
#define LAB_VLAN_ID 100
#endif

// The target is little-endian BPF (bpfel, what clang picks on x86-64 and arm64 hosts).
#define net16(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define net32(x) ((__u32)__builtin_bswap32((__u32)(x)))

static long (*bpf_skb_vlan_push)(struct __sk_buff *skb, __be16 vlan_proto, __u16 vlan_tci) = (void *)BPF_FUNC_skb_vlan_push;
static long (*bpf_skb_vlan_pop)(struct __sk_buff *skb) = (void *)BPF_FUNC_skb_vlan_pop;

static __attribute__((always_inline)) int from_vlan_client(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
    {
        return 0;
    }
    if (eth->h_proto == net16(ETH_P_IP))
    {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end)
        {
            return 0;
        }
        return (ip->saddr & net32(0xFFFFFF00)) == net32(0xC6120200); // 198.18.2.0/24
    }
    if (eth->h_proto == net16(ETH_P_IPV6))
    {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
        {
            return 0;
        }
        // 2001:db8:18:2::/64
        return ip6->saddr.in6_u.u6_addr32[0] == net32(0x20010DB8) && ip6->saddr.in6_u.u6_addr32[1] == net32(0x00180002);
    }
    return 0;
}

SEC("tc/egress")
int lab_vlan_tag(struct __sk_buff *skb)
{
    if (!skb->vlan_present && from_vlan_client(skb))
    {
        bpf_skb_vlan_push(skb, net16(ETH_P_8021Q), LAB_VLAN_ID);
    }
    return TC_ACT_OK;
}

// On receive the kernel has already moved an 802.1Q tag into the skb's metadata (skb_vlan_untag runs before
// the tc ingress hook); without a VLAN device for it the stack would mark the frame PACKET_OTHERHOST.
SEC("tc/ingress")
int lab_vlan_untag(struct __sk_buff *skb)
{
    if (skb->vlan_present && (skb->vlan_tci & 0x0FFF) == LAB_VLAN_ID)
    {
        bpf_skb_vlan_pop(skb);
    }
    return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
