// SPDX-License-Identifier: GPL-2.0
/*
 * toa.bpf.c - TCP Option Address (TOA) on the backend, without a kernel module.
 *
 * A FULLNAT load balancer puts the real client into TCP option 254 (len 8: port, IPv4
 * address; network order) of the ACK that completes the handshake.  This object makes
 * accept()/getpeername() of the backend's sockets report that address:
 *
 *   sockops "toa_sockops"   BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB: skops->skb_data is that
 *                           ACK (uapi bpf.h, struct bpf_sock_ops); the options are parsed
 *                           like tcp_parse_options() and the first of toa_conf's kind and
 *                           length (254 / 8 by default) is kept
 *                           in socket local storage with the real peer of that moment.
 *   cgroup/getpeername4/6   rewrite the peer sockaddr from that storage if the kernel's
 *                           peer still equals the recorded one (IPv6 sockets get
 *                           ::ffff:a.b.c.d).  accept() runs the same hook (peer=2).
 *   cgroup/getsockname4/6   only count (getname_toa_bypass): the local side is never changed.
 *
 * Why not bpf_load_hdr_opt(): for kinds 253/254 it only matches an RFC 6994 magic of 2 or 4
 * bytes after kind/len, and TOA has none (those bytes are the port), so the header is read
 * directly.  No BPF_SOCK_OPS_PARSE_*_HDR_OPT_CB_FLAG is needed: those flags ask for
 * BPF_SOCK_OPS_PARSE_HDR_OPT_CB on packets of an established socket, which TOA must ignore.
 *
 * The option is honoured only if the peer that sent the ACK (the balancer) is in
 * toa_allow, an LPM trie of IPv6 prefixes (IPv4 as ::ffff:a.b.c.d/96+len).  Empty = trust
 * nobody.  Counters: toa_stats, a per-CPU array (rows: enum toa_stat).
 *
 * The option's kind and length come from toa_conf (one entry {kind, len}; zeros mean the
 * default 254/8): vendors use 200/8 too, and 253/20 or 254/20 (port + IPv6 address) for
 * IPv6.  Length 8 is read as port + IPv4, 20 as port + IPv6.
 *
 * Only uapi context fields and helpers: no vmlinux.h, no CO-RE relocation, so one object
 * loads on every kernel >= 5.17 (bpf_loop) with cgroup BPF and sk storage.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/tcp.h>
#include <linux/types.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TCPOPT_EOL	0
#define TCPOPT_NOP	1
#define TOA_KIND	254
#define TOA_LEN		8
#define TOA6_LEN	20
#define TCP_MAX_OPTS	40
#define TCP_CLOSE	7
#define AF_INET		2	/* not in uapi headers usable from BPF C */

enum toa_stat {
	SYN_RECV_SOCK_TOA,
	SYN_RECV_SOCK_NO_TOA,
	GETNAME_TOA_OK,
	GETNAME_TOA_MISMATCH,
	GETNAME_TOA_BYPASS,
	GETNAME_TOA_EMPTY,
	SYN_RECV_SOCK_TOA_UNTRUSTED,	/* valid option from a peer outside toa_allow */
	TOA_SOCK_CLOSED,		/* a socket with an entry reached TCP_CLOSE */
	TOA_STAT_MAX,
};

struct toa_entry {
	__u32	real[4];	/* the peer at handshake time, IPv4 as ::ffff:a.b.c.d */
	__u32	real_port;	/* network order, low 16 bits */
	__u32	toa_port;	/* network order, low 16 bits */
	__u32	toa_addr[4];	/* network order, IPv4 as ::ffff:a.b.c.d */
};

struct toa_conf {
	__u32	kind;		/* 0: TOA_KIND */
	__u32	len;		/* 0: TOA_LEN; TOA_LEN or TOA6_LEN */
};

struct toa_prefix {
	__u32	prefixlen;
	__u32	addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct toa_entry);
} toa_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TOA_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} toa_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 256);
	__type(key, struct toa_prefix);
	__type(value, __u32);
} toa_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct toa_conf);
} toa_conf SEC(".maps");

static __always_inline void count(__u32 row)
{
	__u64 *v = bpf_map_lookup_elem(&toa_stats, &row);

	if (v)
		*v += 1;	/* per-CPU slot, and BPF programs do not migrate */
}

struct toa_walk {
	__u8	opts[64];	/* the options, zero past optlen (64: index masks to & 63) */
	__u32	optlen;
	__u32	off;
	__u32	kind;		/* what to look for (toa_conf) */
	__u32	len;
	__u32	addr[4];
	__u32	port;
	int	found;
};

/* Four option bytes from off, as they are on the wire (network order kept). */
static __always_inline __u32 opt_u32(struct toa_walk *w, __u32 off)
{
	return w->opts[off & 63] | (w->opts[(off + 1) & 63] << 8) |
	       (w->opts[(off + 2) & 63] << 16) | ((__u32)w->opts[(off + 3) & 63] << 24);
}

/* One step of the walk, as tcp_parse_options() does it: EOL ends, NOP is skipped, a length
 * < 2 or past the header ends the walk, kind 254 with another length is skipped, the
 * first kind 254 / len 8 wins.  Returns 1 to stop. */
static long toa_walk_step(__u32 i, struct toa_walk *w)
{
	__u32 off = w->off, len;
	__u8 kind;

	if (off >= w->optlen || off >= TCP_MAX_OPTS)
		return 1;
	kind = w->opts[off & 63];
	if (kind == TCPOPT_EOL)
		return 1;
	if (kind == TCPOPT_NOP) {
		w->off = off + 1;
		return 0;
	}
	if (off + 2 > w->optlen)
		return 1;
	len = w->opts[(off + 1) & 63];
	if (len < 2 || off + len > w->optlen)
		return 1;
	if (kind == w->kind && len == w->len) {
		/* keep network order: the bytes as they are on the wire */
		w->port = w->opts[(off + 2) & 63] | (w->opts[(off + 3) & 63] << 8);
		if (len == TOA6_LEN) {
			w->addr[0] = opt_u32(w, off + 4);
			w->addr[1] = opt_u32(w, off + 8);
			w->addr[2] = opt_u32(w, off + 12);
			w->addr[3] = opt_u32(w, off + 16);
		} else {
			w->addr[2] = bpf_htonl(0xffff);
			w->addr[3] = opt_u32(w, off + 4);
		}
		w->found = 1;
		return 1;
	}
	w->off = off + len;
	return 0;
}

/* Copy the options of the TCP header at skb_data to w->opts and set w->optlen.  A global
 * (noinline, non-static) function is verified once on its own, and its caller then sees
 * w as written-to memory of unknown content: the 40 early exits of the copy do not
 * multiply the states the caller's walk is verified with. */
__attribute__((noinline)) int toa_copy_opts(struct bpf_sock_ops *skops, struct toa_walk *w)
{
	void *data = (void *)(long)skops->skb_data;
	void *end = (void *)(long)skops->skb_data_end;
	struct tcphdr *th = data;
	__u8 *opts = data + sizeof(*th);
	int i;

	if (!w || (void *)(th + 1) > end)
		return 0;
	w->optlen = th->doff * 4;
	if (w->optlen <= sizeof(*th))
		return 0;
	w->optlen -= sizeof(*th);
#pragma unroll
	for (i = 0; i < TCP_MAX_OPTS; i++) {
		if ((void *)(opts + i + 1) > end)
			break;
		w->opts[i] = opts[i];
	}
	return 1;
}

/* Find TOA in the ACK: the options copied to the stack, then walked with bpf_loop()
 * (Linux >= 5.17), whose callback is verified once; an open-coded walk over packet data
 * with data-dependent steps makes the verifier explore every path (minutes under TCG). */
static __always_inline int toa_find(struct bpf_sock_ops *skops, struct toa_walk *w)
{
	__u32 zero = 0;
	struct toa_conf *c = bpf_map_lookup_elem(&toa_conf, &zero);

	w->kind = c && c->kind ? c->kind : TOA_KIND;
	w->len = c && c->len == TOA6_LEN ? TOA6_LEN : TOA_LEN;
	if (!toa_copy_opts(skops, w))
		return 0;
	bpf_loop(TCP_MAX_OPTS, toa_walk_step, w, 0);
	return w->found;
}

SEC("sockops")
int toa_sockops(struct bpf_sock_ops *skops)
{
	struct toa_prefix key = { .prefixlen = 128 };
	struct toa_walk w = {};
	struct toa_entry *e;
	struct bpf_sock *sk;
	struct tcphdr *th;
	__u32 ip4;

	if (skops->op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[1] == TCP_CLOSE) {
			count(TOA_SOCK_CLOSED);
			/* One CLOSE per entry: no more state callbacks for this socket. */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
						  ~BPF_SOCK_OPS_STATE_CB_FLAG);
		}
		return 1;
	}
	if (skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;

	if (!toa_find(skops, &w)) {
		count(SYN_RECV_SOCK_NO_TOA);
		return 1;
	}
	/* Every field read unconditionally: a branch per family lets clang merge the two
	 * ctx pointers, and the verifier refuses a load through a modified ctx pointer. */
	ip4 = skops->remote_ip4;
	key.addr[0] = skops->remote_ip6[0];
	key.addr[1] = skops->remote_ip6[1];
	key.addr[2] = skops->remote_ip6[2];
	key.addr[3] = skops->remote_ip6[3];
	if (skops->family == AF_INET) {
		key.addr[0] = 0;
		key.addr[1] = 0;
		key.addr[2] = bpf_htonl(0xffff);
		key.addr[3] = ip4;
	}
	if (!bpf_map_lookup_elem(&toa_allow, &key)) {
		count(SYN_RECV_SOCK_TOA_UNTRUSTED);
		return 1;
	}
	sk = skops->sk;
	if (!sk)
		return 1;
	e = bpf_sk_storage_get(&toa_sk, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!e) {
		count(SYN_RECV_SOCK_NO_TOA);
		return 1;
	}
	e->real[0] = key.addr[0];
	e->real[1] = key.addr[1];
	e->real[2] = key.addr[2];
	e->real[3] = key.addr[3];
	th = (void *)(long)skops->skb_data;
	if ((void *)(th + 1) > (void *)(long)skops->skb_data_end)
		return 1;
	e->real_port = th->source;	/* the ACK's source port is the peer's port */
	e->toa_addr[0] = w.addr[0];
	e->toa_addr[1] = w.addr[1];
	e->toa_addr[2] = w.addr[2];
	e->toa_addr[3] = w.addr[3];
	e->toa_port = w.port;
	count(SYN_RECV_SOCK_TOA);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
				  BPF_SOCK_OPS_STATE_CB_FLAG);
	return 1;
}

static __always_inline struct toa_entry *entry(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;

	if (!sk)
		return NULL;
	return bpf_sk_storage_get(&toa_sk, sk, NULL, 0);
}

SEC("cgroup/getpeername4")
int toa_getpeername4(struct bpf_sock_addr *ctx)
{
	struct toa_entry *e = entry(ctx);

	if (!e) {
		count(GETNAME_TOA_EMPTY);
		return 1;
	}
	/* an IPv6 address (a len-20 option) cannot be told to an AF_INET socket */
	if (e->real[0] || e->real[1] || e->real[2] != bpf_htonl(0xffff) ||
	    e->real[3] != ctx->user_ip4 || e->real_port != (ctx->user_port & 0xffff) ||
	    e->toa_addr[0] || e->toa_addr[1] || e->toa_addr[2] != bpf_htonl(0xffff)) {
		count(GETNAME_TOA_MISMATCH);
		return 1;
	}
	ctx->user_ip4 = e->toa_addr[3];
	ctx->user_port = e->toa_port;
	count(GETNAME_TOA_OK);
	return 1;
}

SEC("cgroup/getpeername6")
int toa_getpeername6(struct bpf_sock_addr *ctx)
{
	struct toa_entry *e = entry(ctx);

	if (!e) {
		count(GETNAME_TOA_EMPTY);
		return 1;
	}
	if (e->real[0] != ctx->user_ip6[0] || e->real[1] != ctx->user_ip6[1] ||
	    e->real[2] != ctx->user_ip6[2] || e->real[3] != ctx->user_ip6[3] ||
	    e->real_port != (ctx->user_port & 0xffff)) {
		count(GETNAME_TOA_MISMATCH);
		return 1;
	}
	ctx->user_ip6[0] = e->toa_addr[0];
	ctx->user_ip6[1] = e->toa_addr[1];
	ctx->user_ip6[2] = e->toa_addr[2];
	ctx->user_ip6[3] = e->toa_addr[3];
	ctx->user_port = e->toa_port;
	count(GETNAME_TOA_OK);
	return 1;
}

SEC("cgroup/getsockname4")
int toa_getsockname4(struct bpf_sock_addr *ctx)
{
	count(GETNAME_TOA_BYPASS);
	return 1;
}

SEC("cgroup/getsockname6")
int toa_getsockname6(struct bpf_sock_addr *ctx)
{
	count(GETNAME_TOA_BYPASS);
	return 1;
}

char _license[] SEC("license") = "GPL";
