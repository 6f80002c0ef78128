// SPDX-License-Identifier: GPL-2.0
/*
 * toa_sockops: a client-side sockops program that makes a normal TCP client behave like
 * a FULLNAT load balancer for TOA: the ACK that completes each active handshake carries
 * TCP option 254 (kind, len=8, port, IPv4 address; network order).
 *
 *   address: toa_cfg[0].addr (set from user space, network order; 0 = write nothing)
 *   port:    the connection's own source port, so each connection is recognisable
 *   count:   toa_cfg[0].written counts the options written
 *
 * Needs BPF_SOCK_OPS_WRITE_HDR_OPT_CB (Linux >= 5.10). Attach to a cgroup v2 as
 * sock_ops; it acts on sockets created by processes in that cgroup.
 *
 *   clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c toa_sockops.bpf.c
 */
#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TOA_KIND	254
#define TOA_LEN		8
#define TCP_FLAG_SYN	0x02

struct toa_opt {
	__u8	kind;
	__u8	len;
	__be16	port;
	__be32	addr;
} __attribute__((packed));

struct toa_cfg {
	__be32	addr;
	__u32	written;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct toa_cfg);
} toa_cfg SEC(".maps");

SEC("sockops")
int toa_sockops(struct bpf_sock_ops *skops)
{
	struct toa_opt opt = { .kind = TOA_KIND, .len = TOA_LEN };
	struct toa_cfg *cfg;
	__u32 key = 0;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* An active open: ask for the header-option callbacks from now on. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					  BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		/* No TOA in the SYN; room in every later packet until it has been written
		 * (also when called without a packet, for the MSS). */
		if (!(skops->skb_tcp_flags & TCP_FLAG_SYN))
			bpf_reserve_hdr_opt(skops, TOA_LEN, 0);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		if (skops->skb_tcp_flags & TCP_FLAG_SYN)
			break;
		cfg = bpf_map_lookup_elem(&toa_cfg, &key);
		if (cfg && cfg->addr) {
			opt.port = bpf_htons(skops->local_port);	/* host order in the ctx */
			opt.addr = cfg->addr;
			if (!bpf_store_hdr_opt(skops, &opt, sizeof(opt), 0))
				__sync_fetch_and_add(&cfg->written, 1);
		}
		/* Only the ACK that completes the handshake: no more callbacks. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
					  ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
		break;
	}
	return 1;
}

char _license[] SEC("license") = "GPL";
