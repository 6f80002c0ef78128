// SPDX-License-Identifier: GPL-2.0
/*
 * mptcpify.bpf.c - make unmodified programs open MPTCP sockets instead of TCP ones.
 *
 * Linux >= 6.6 calls update_socket_protocol(family, type, protocol) in __sys_socket()
 * before it creates a socket, and lets an fmod_ret BPF program replace its return value
 * (net/mptcp/bpf.c registers it as an fmod_ret hook; no error injection needed).  This
 * program turns an AF_INET/AF_INET6 SOCK_STREAM socket with protocol 0 or IPPROTO_TCP into
 * IPPROTO_MPTCP, for the tasks mptcpify_conf scopes it to:
 *
 *   cgroup_id  only tasks whose cgroup v2 (the cgroup itself, not its descendants) has
 *              this id, i.e. the inode number of its directory; 0: every task
 *   comm       only tasks of this command name (16 bytes, NUL padded, as in
 *              /proc/PID/comm); empty: any name
 *
 * mptcpify_stats (per-CPU): [0] sockets upgraded to MPTCP, [1] TCP sockets left alone
 * because the task was out of scope.
 *
 * The socket() type argument still carries SOCK_NONBLOCK / SOCK_CLOEXEC there, so only its
 * low bits (SOCK_TYPE_MASK) are compared.  No vmlinux.h, no CO-RE: the hook's arguments
 * are three ints.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define AF_INET		2
#define AF_INET6	10
#define SOCK_STREAM	1
#define SOCK_TYPE_MASK	0xf
#define COMM_LEN	16

enum { UPGRADED, OUT_OF_SCOPE, STAT_MAX };

struct mptcpify_conf {
	__u64	cgroup_id;
	char	comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct mptcpify_conf);
} mptcpify_conf SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} mptcpify_stats SEC(".maps");

static __always_inline void count(__u32 row)
{
	__u64 *v = bpf_map_lookup_elem(&mptcpify_stats, &row);

	if (v)
		*v += 1;
}

static __always_inline int in_scope(const struct mptcpify_conf *c)
{
	char comm[COMM_LEN] = {};
	int i;

	if (c->cgroup_id && bpf_get_current_cgroup_id() != c->cgroup_id)
		return 0;
	if (!c->comm[0])
		return 1;
	if (bpf_get_current_comm(comm, sizeof(comm)))
		return 0;
#pragma unroll
	for (i = 0; i < COMM_LEN; i++) {
		if (comm[i] != c->comm[i])
			return 0;
		if (!comm[i])
			break;
	}
	return 1;
}

SEC("fmod_ret/update_socket_protocol")
int BPF_PROG(mptcpify, int family, int type, int protocol)
{
	__u32 zero = 0;
	struct mptcpify_conf *c;

	if ((family != AF_INET && family != AF_INET6) ||
	    (type & SOCK_TYPE_MASK) != SOCK_STREAM ||
	    (protocol != 0 && protocol != IPPROTO_TCP))
		return protocol;
	c = bpf_map_lookup_elem(&mptcpify_conf, &zero);
	if (!c || !in_scope(c)) {
		count(OUT_OF_SCOPE);
		return protocol;
	}
	count(UPGRADED);
	return IPPROTO_MPTCP;
}

char _license[] SEC("license") = "GPL";
