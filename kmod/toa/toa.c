// SPDX-License-Identifier: GPL-2.0
/*
 * toa.c - TCP Option Address (TOA), reference implementation for knit.
 *
 * A load balancer in FULLNAT mode hides the real client address from the
 * backend.  It therefore puts the client address into a TCP option
 * (kind 254, length 8) of the ACK that completes the 3-way handshake:
 *
 *     +--------+--------+-----------------+-----------------------------+
 *     | kind=254| len=8 | port (2, BE)    | IPv4 address (4, BE)        |
 *     +--------+--------+-----------------+-----------------------------+
 *
 * This module records that address per child socket and makes
 * getpeername() / accept() (both go through inet_getname / inet6_getname)
 * report it instead of the load balancer's address.
 *
 * How it hooks the kernel (no writes to read-only kernel memory, no
 * patching of inet_stream_ops / ipv4_specific; kprobes by symbol name
 * only, since kallsyms_lookup_name is not exported since 5.7):
 *
 *  - kretprobe tcp_v4_syn_recv_sock: entry handler parses the options of
 *    the skb argument (the handshake-completing ACK, or the SYN for TFO),
 *    return handler stores the option for the returned child socket if
 *    the child is non-NULL and *own_req is true (otherwise the child has
 *    already been destroyed or is about to be freed by the caller).
 *  - kretprobe tcp_v6_syn_recv_sock: same for native IPv6 handshakes.  For
 *    an IPv4 handshake on a dual-stack listener it calls
 *    tcp_v4_syn_recv_sock itself, so the v6 probe skips skbs with
 *    skb->protocol == ETH_P_IP (the nested v4 probe handles them).
 *  - kretprobe inet_getname / inet6_getname: entry handler remembers
 *    (sk, uaddr, peer), return handler rewrites the sockaddr when the call
 *    succeeded, it was a peer query (peer != 0: getpeername passes 1,
 *    accept passes 2) and the socket has a stored entry whose recorded real
 *    peer still equals the one the kernel just reported.
 *  - kprobe tcp_v4_destroy_sock: removes the socket's entry.  It is the
 *    ->destroy of tcp_prot, and is reached for tcpv6_prot sockets as well
 *    (6.1: tcp_v6_destroy_sock calls it; 6.12: tcpv6_prot.destroy is
 *    tcp_v4_destroy_sock).  Every child that got an entry is destroyed via
 *    inet_csk_destroy_sock() -> sk_prot->destroy before it is freed, so an
 *    entry can never outlive its socket and be matched by a reused pointer.
 *    As a second line of defence the real peer is compared at getname time.
 *
 * All of these are global, non-static-inline functions on 6.1 and 6.12
 * (tcp_v6_syn_recv_sock is static but only reached through function
 * pointers, so it always has an out-of-line copy; IPv6 is built in on the
 * Debian kernels).
 *
 * Per-socket storage: a hash table keyed by the struct sock pointer,
 * RCU readers, writers under a spinlock (irqsave: writers run in softirq
 * and process context).  sk_user_data is never touched.
 *
 * Option parsing (toa_parse) follows tcp_parse_options():
 *  - EOL ends the list, NOP is skipped;
 *  - an option whose length byte is < 2 or runs past the end of the TCP
 *    header ends parsing (nothing after it is used);
 *  - an option of the parameters' kind with another length than the
 *    parameter `len` (e.g. 7, 9, or 20 for the IPv6 layout when len is 8) is
 *    not TOA: it is skipped like an unknown option and parsing continues;
 *  - the first option of kind `kind` and length `len` wins; later ones are
 *    ignored.  Defaults: kind 254, len 8 (port + IPv4); len 20 reads port +
 *    IPv6 address (the IPv6 variants: dpvs 254/20, Alibaba 253/20).
 *  The options are copied with skb_header_pointer(), so a short or
 *  non-linear skb can never be read out of bounds.
 *
 * /proc/net/toa_stats (present in every network namespace; the counters
 * are global, summed over all namespaces):
 *
 *   line 1: 26 spaces, then for each possible CPU "%10s " of "CPU<n>"
 *   then one line per counter: "<name>:" left-justified in 26 columns,
 *   then for each possible CPU "%10lu ".
 *   e.g.
 *                                  CPU0       CPU1
 *   syn_recv_sock_toa:                1          0
 *   ...
 *   Parse with line.split(): the header gives the CPU names, each row gives
 *   "<name>:" followed by one decimal per possible CPU.
 *
 * Rows, in this order:
 *   syn_recv_sock_toa     child created (own_req) and a valid TOA stored
 *   syn_recv_sock_no_toa  child created without a valid TOA (or the entry
 *                         could not be allocated)
 *   getname_toa_ok        peer query rewritten with the TOA address
 *   getname_toa_mismatch  peer query on a socket with an entry, but the
 *                         result was not rewritten (the reported real peer
 *                         differs from the one recorded at handshake time,
 *                         or unexpected family/length)
 *   getname_toa_bypass    not a peer query (getsockname) or the call failed
 *   getname_toa_empty     successful peer query on a socket without entry
 * Every inet_getname/inet6_getname call lands in exactly one getname_* row.
 */
#define pr_fmt(fmt) "TOA: " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/hashtable.h>
#include <linux/spinlock.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <linux/percpu.h>
#include <linux/seq_file.h>
#include <linux/proc_fs.h>
#include <linux/skbuff.h>
#include <linux/tcp.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/if_ether.h>
#include <linux/atomic.h>
#include <linux/moduleparam.h>
#include <net/sock.h>
#include <net/inet_sock.h>
#include <net/ipv6.h>
#include <net/tcp.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>

#define TCPOPT_TOA	254
#define TCPOLEN_TOA	8	/* port + IPv4 */
#define TCPOLEN_TOA6	20	/* port + IPv6 (dpvs: kind 254, Alibaba: kind 253) */

/*
 * The option to look for: vendors disagree (254/8 the classic layout, 200/8 in
 * 2.6.32-era modules and some clouds, 253/20 or 254/20 for IPv6).  The length
 * also selects the body: 8 is port + IPv4, 20 is port + IPv6.
 */
static int kind = TCPOPT_TOA;
module_param(kind, int, 0444);
MODULE_PARM_DESC(kind, "TCP option kind of the address option (default 254)");
static int len = TCPOLEN_TOA;
module_param(len, int, 0444);
MODULE_PARM_DESC(len, "its length: 8 (port + IPv4, default) or 20 (port + IPv6)");

enum toa_stat {
	TOA_STAT_SYN_RECV_SOCK_TOA,
	TOA_STAT_SYN_RECV_SOCK_NO_TOA,
	TOA_STAT_GETNAME_TOA_OK,
	TOA_STAT_GETNAME_TOA_MISMATCH,
	TOA_STAT_GETNAME_TOA_BYPASS,
	TOA_STAT_GETNAME_TOA_EMPTY,
	TOA_STAT_MAX,
};

static const char *const toa_stat_names[TOA_STAT_MAX] = {
	[TOA_STAT_SYN_RECV_SOCK_TOA]	= "syn_recv_sock_toa",
	[TOA_STAT_SYN_RECV_SOCK_NO_TOA]	= "syn_recv_sock_no_toa",
	[TOA_STAT_GETNAME_TOA_OK]	= "getname_toa_ok",
	[TOA_STAT_GETNAME_TOA_MISMATCH]	= "getname_toa_mismatch",
	[TOA_STAT_GETNAME_TOA_BYPASS]	= "getname_toa_bypass",
	[TOA_STAT_GETNAME_TOA_EMPTY]	= "getname_toa_empty",
};

struct toa_stats {
	unsigned long cnt[TOA_STAT_MAX];
};

static struct toa_stats __percpu *toa_stats;

#define TOA_INC(idx) this_cpu_inc(toa_stats->cnt[(idx)])

/* ---------------------------------------------------------------------- */
/* per-socket table                                                        */

struct toa_entry {
	struct hlist_node node;
	struct rcu_head rcu;
	const struct sock *sk;
	struct in6_addr real_addr;	/* real peer, v4 as ::ffff:a.b.c.d */
	__be16 real_port;
	__be16 toa_port;		/* as found in the option (BE) */
	struct in6_addr toa_addr;	/* as found; an IPv4 one as ::ffff:a.b.c.d */
};

#define TOA_HASH_BITS 12
static DEFINE_HASHTABLE(toa_table, TOA_HASH_BITS);
static DEFINE_SPINLOCK(toa_lock);
static atomic_t toa_entries = ATOMIC_INIT(0);

/* read-only view of the number of live entries, for tests */
static int toa_entries_get(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&toa_entries));
}

static const struct kernel_param_ops toa_entries_ops = {
	.get = toa_entries_get,
};
module_param_cb(entries, &toa_entries_ops, NULL, 0444);
MODULE_PARM_DESC(entries, "number of sockets with a stored TOA (read-only)");

static struct toa_entry *toa_find_locked(const struct sock *sk)
{
	struct toa_entry *e;

	hash_for_each_possible(toa_table, e, node, (unsigned long)sk)
		if (e->sk == sk)
			return e;
	return NULL;
}

static int toa_store(const struct sock *sk, const struct in6_addr *real_addr,
		     __be16 real_port, __be16 toa_port,
		     const struct in6_addr *toa_addr)
{
	struct toa_entry *e, *old;
	unsigned long flags;

	e = kmalloc(sizeof(*e), GFP_ATOMIC);
	if (!e)
		return -ENOMEM;
	e->sk = sk;
	e->real_addr = *real_addr;
	e->real_port = real_port;
	e->toa_port = toa_port;
	e->toa_addr = *toa_addr;

	spin_lock_irqsave(&toa_lock, flags);
	old = toa_find_locked(sk);
	if (old)
		hash_del_rcu(&old->node);
	else
		atomic_inc(&toa_entries);
	hash_add_rcu(toa_table, &e->node, (unsigned long)sk);
	spin_unlock_irqrestore(&toa_lock, flags);

	if (old)
		kfree_rcu(old, rcu);
	return 0;
}

static void toa_remove(const struct sock *sk)
{
	struct toa_entry *e;
	unsigned long flags;

	if (!atomic_read(&toa_entries))
		return;

	spin_lock_irqsave(&toa_lock, flags);
	e = toa_find_locked(sk);
	if (e) {
		hash_del_rcu(&e->node);
		atomic_dec(&toa_entries);
	}
	spin_unlock_irqrestore(&toa_lock, flags);

	if (e)
		kfree_rcu(e, rcu);
}

/* copies the entry for sk into *out; true if found */
static bool toa_lookup(const struct sock *sk, struct toa_entry *out)
{
	struct toa_entry *e;
	bool found = false;

	if (!atomic_read(&toa_entries))
		return false;

	rcu_read_lock();
	hash_for_each_possible_rcu(toa_table, e, node, (unsigned long)sk) {
		if (e->sk == sk) {
			out->real_addr = e->real_addr;
			out->real_port = e->real_port;
			out->toa_port = e->toa_port;
			out->toa_addr = e->toa_addr;
			found = true;
			break;
		}
	}
	rcu_read_unlock();
	return found;
}

static void toa_flush(void)
{
	struct toa_entry *e;
	struct hlist_node *tmp;
	unsigned long flags;
	int bkt;

	spin_lock_irqsave(&toa_lock, flags);
	hash_for_each_safe(toa_table, bkt, tmp, e, node) {
		hash_del(&e->node);
		atomic_dec(&toa_entries);
		kfree(e);
	}
	spin_unlock_irqrestore(&toa_lock, flags);
}

/* ---------------------------------------------------------------------- */
/* option parsing                                                          */

/*
 * Find the first well-formed TOA option (kind 254, len 8) in the TCP header
 * of skb.  See the header comment for the handling of malformed options.
 */
static bool toa_parse(const struct sk_buff *skb, __be16 *port,
		      struct in6_addr *addr)
{
	u8 optbuf[MAX_TCP_OPTION_SPACE];
	struct tcphdr _th;
	const struct tcphdr *th;
	const u8 *p;
	int off, length;

	if (!skb_transport_header_was_set(skb))
		return false;
	off = skb_transport_offset(skb);
	th = skb_header_pointer(skb, off, sizeof(_th), &_th);
	if (!th)
		return false;
	length = th->doff * 4 - (int)sizeof(struct tcphdr);
	if (length <= 0)
		return false;
	if (length > MAX_TCP_OPTION_SPACE)	/* cannot happen, doff <= 15 */
		length = MAX_TCP_OPTION_SPACE;
	p = skb_header_pointer(skb, off + sizeof(struct tcphdr), length, optbuf);
	if (!p)
		return false;

	while (length > 0) {
		u8 opt = *p++;
		u8 size;

		if (opt == TCPOPT_EOL)
			return false;
		if (opt == TCPOPT_NOP) {
			length--;
			continue;
		}
		if (length < 2)
			return false;
		size = *p++;
		if (size < 2 || size > length)
			return false;	/* silly or truncated: stop */
		if (opt == kind && size == len) {
			__be32 v4;

			memcpy(port, p, sizeof(*port));
			if (len == TCPOLEN_TOA6) {
				memcpy(addr, p + sizeof(*port), sizeof(*addr));
			} else {
				memcpy(&v4, p + sizeof(*port), sizeof(v4));
				ipv6_addr_set_v4mapped(v4, addr);
			}
			return true;
		}
		p += size - 2;
		length -= size;
	}
	return false;
}

/* ---------------------------------------------------------------------- */
/* tcp_v{4,6}_syn_recv_sock                                                */

/*
 * struct sock *tcp_v4_syn_recv_sock(const struct sock *sk, struct sk_buff *skb,
 *				      struct request_sock *req,
 *				      struct dst_entry *dst,
 *				      struct request_sock *req_unhash,
 *				      bool *own_req);
 * (identical prototype for tcp_v6_syn_recv_sock, on 6.1 and 6.12)
 */
struct toa_syn_data {
	bool *own_req;
	bool have_toa;
	__be16 port;
	struct in6_addr addr;
};

static void toa_syn_entry_common(struct toa_syn_data *d, struct pt_regs *regs,
				 struct sk_buff *skb)
{
	d->own_req = (bool *)regs_get_kernel_argument(regs, 5);
	d->have_toa = toa_parse(skb, &d->port, &d->addr);
}

static int toa_v4_syn_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)regs_get_kernel_argument(regs, 1);

	if (!skb)
		return 1;
	toa_syn_entry_common((struct toa_syn_data *)ri->data, regs, skb);
	return 0;
}

static int toa_v6_syn_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct sk_buff *skb = (struct sk_buff *)regs_get_kernel_argument(regs, 1);

	/* v4 on a dual-stack listener: the nested v4 probe does the work */
	if (!skb || skb->protocol == htons(ETH_P_IP))
		return 1;
	toa_syn_entry_common((struct toa_syn_data *)ri->data, regs, skb);
	return 0;
}

static void toa_syn_ret_common(struct toa_syn_data *d, struct sock *child,
			       const struct in6_addr *real_addr)
{
	if (d->have_toa &&
	    !toa_store(child, real_addr, inet_sk(child)->inet_dport,
		       d->port, &d->addr))
		TOA_INC(TOA_STAT_SYN_RECV_SOCK_TOA);
	else
		TOA_INC(TOA_STAT_SYN_RECV_SOCK_NO_TOA);
}

static bool toa_child_owned(struct toa_syn_data *d, struct sock *child)
{
	if (!child)
		return false;
	/* !own_req: the child was destroyed / will be put by the caller */
	if (d->own_req && !READ_ONCE(*d->own_req))
		return false;
	return true;
}

static int toa_v4_syn_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct toa_syn_data *d = (struct toa_syn_data *)ri->data;
	struct sock *child = (struct sock *)regs_return_value(regs);
	struct in6_addr real;

	if (!toa_child_owned(d, child))
		return 0;
	/*
	 * For a v4-mapped child sk_v6_daddr is only filled in by
	 * tcp_v6_syn_recv_sock after we return: use inet_daddr.
	 */
	ipv6_addr_set_v4mapped(inet_sk(child)->inet_daddr, &real);
	toa_syn_ret_common(d, child, &real);
	return 0;
}

static int toa_v6_syn_ret(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct toa_syn_data *d = (struct toa_syn_data *)ri->data;
	struct sock *child = (struct sock *)regs_return_value(regs);

	if (!toa_child_owned(d, child))
		return 0;
	toa_syn_ret_common(d, child, &child->sk_v6_daddr);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* inet_getname / inet6_getname                                            */

/* int inet_getname(struct socket *sock, struct sockaddr *uaddr, int peer) */
struct toa_getname_data {
	struct sock *sk;
	struct sockaddr *uaddr;
	int peer;
};

static int toa_getname_entry(struct kretprobe_instance *ri,
			     struct pt_regs *regs)
{
	struct toa_getname_data *d = (struct toa_getname_data *)ri->data;
	struct socket *sock = (struct socket *)regs_get_kernel_argument(regs, 0);

	d->sk = sock ? sock->sk : NULL;
	d->uaddr = (struct sockaddr *)regs_get_kernel_argument(regs, 1);
	d->peer = (int)regs_get_kernel_argument(regs, 2);
	return 0;
}

/* returns the entry for a successful peer query, counting the other cases */
static bool toa_getname_prepare(struct toa_getname_data *d, int ret,
				struct toa_entry *e)
{
	if (ret < 0 || !d->peer || !d->sk || !d->uaddr) {
		TOA_INC(TOA_STAT_GETNAME_TOA_BYPASS);
		return false;
	}
	if (!toa_lookup(d->sk, e)) {
		TOA_INC(TOA_STAT_GETNAME_TOA_EMPTY);
		return false;
	}
	return true;
}

static int toa_inet_getname_ret(struct kretprobe_instance *ri,
				struct pt_regs *regs)
{
	struct toa_getname_data *d = (struct toa_getname_data *)ri->data;
	int ret = (int)regs_return_value(regs);
	struct sockaddr_in *sin = (struct sockaddr_in *)d->uaddr;
	struct toa_entry e;

	if (!toa_getname_prepare(d, ret, &e))
		return 0;
	/* an IPv6 address from a len-20 option cannot be told to an AF_INET socket */
	if (ret < (int)sizeof(*sin) || sin->sin_family != AF_INET ||
	    !ipv6_addr_v4mapped(&e.real_addr) || !ipv6_addr_v4mapped(&e.toa_addr) ||
	    e.real_addr.s6_addr32[3] != sin->sin_addr.s_addr ||
	    e.real_port != sin->sin_port) {
		TOA_INC(TOA_STAT_GETNAME_TOA_MISMATCH);
		return 0;
	}
	sin->sin_port = e.toa_port;
	sin->sin_addr.s_addr = e.toa_addr.s6_addr32[3];
	TOA_INC(TOA_STAT_GETNAME_TOA_OK);
	return 0;
}

static int toa_inet6_getname_ret(struct kretprobe_instance *ri,
				 struct pt_regs *regs)
{
	struct toa_getname_data *d = (struct toa_getname_data *)ri->data;
	int ret = (int)regs_return_value(regs);
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)d->uaddr;
	struct toa_entry e;

	if (!toa_getname_prepare(d, ret, &e))
		return 0;
	if (ret < (int)sizeof(*sin6) || sin6->sin6_family != AF_INET6 ||
	    !ipv6_addr_equal(&e.real_addr, &sin6->sin6_addr) ||
	    e.real_port != sin6->sin6_port) {
		TOA_INC(TOA_STAT_GETNAME_TOA_MISMATCH);
		return 0;
	}
	sin6->sin6_port = e.toa_port;
	sin6->sin6_addr = e.toa_addr;
	sin6->sin6_flowinfo = 0;
	sin6->sin6_scope_id = 0;
	TOA_INC(TOA_STAT_GETNAME_TOA_OK);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* tcp_v4_destroy_sock                                                     */

/* void tcp_v4_destroy_sock(struct sock *sk) */
static int toa_destroy_pre(struct kprobe *p, struct pt_regs *regs)
{
	toa_remove((struct sock *)regs_get_kernel_argument(regs, 0));
	return 0;
}

/* ---------------------------------------------------------------------- */
/* probes                                                                  */

/*
 * getname may sleep in lock_sock(), so many instances can be pending;
 * a missed instance (nmissed) only means an address is not rewritten.
 */
static struct kretprobe toa_krp_v4_syn = {
	.kp.symbol_name	= "tcp_v4_syn_recv_sock",
	.entry_handler	= toa_v4_syn_entry,
	.handler	= toa_v4_syn_ret,
	.data_size	= sizeof(struct toa_syn_data),
	.maxactive	= 256,
};

static struct kretprobe toa_krp_v6_syn = {
	.kp.symbol_name	= "tcp_v6_syn_recv_sock",
	.entry_handler	= toa_v6_syn_entry,
	.handler	= toa_v6_syn_ret,
	.data_size	= sizeof(struct toa_syn_data),
	.maxactive	= 256,
};

static struct kretprobe toa_krp_getname = {
	.kp.symbol_name	= "inet_getname",
	.entry_handler	= toa_getname_entry,
	.handler	= toa_inet_getname_ret,
	.data_size	= sizeof(struct toa_getname_data),
	.maxactive	= 1024,
};

static struct kretprobe toa_krp_getname6 = {
	.kp.symbol_name	= "inet6_getname",
	.entry_handler	= toa_getname_entry,
	.handler	= toa_inet6_getname_ret,
	.data_size	= sizeof(struct toa_getname_data),
	.maxactive	= 1024,
};

/* registered in this order, the v4 syn probe last (nothing is stored
 * before the cleanup and getname probes are in place)
 */
static struct kretprobe *toa_kretprobes[] = {
	&toa_krp_getname,
	&toa_krp_getname6,
	&toa_krp_v6_syn,
	&toa_krp_v4_syn,
};

static struct kprobe toa_kp_destroy = {
	.symbol_name	= "tcp_v4_destroy_sock",
	.pre_handler	= toa_destroy_pre,
};

/* ---------------------------------------------------------------------- */
/* /proc/net/toa_stats                                                     */

static int toa_stats_show(struct seq_file *seq, void *v)
{
	char name[32];
	int i, cpu;

	seq_printf(seq, "%-26s", "");
	for_each_possible_cpu(cpu) {
		snprintf(name, sizeof(name), "CPU%d", cpu);
		seq_printf(seq, "%10s ", name);
	}
	seq_putc(seq, '\n');

	for (i = 0; i < TOA_STAT_MAX; i++) {
		snprintf(name, sizeof(name), "%s:", toa_stat_names[i]);
		seq_printf(seq, "%-26s", name);
		for_each_possible_cpu(cpu)
			seq_printf(seq, "%10lu ",
				   per_cpu_ptr(toa_stats, cpu)->cnt[i]);
		seq_putc(seq, '\n');
	}
	return 0;
}

static int __net_init toa_net_init(struct net *net)
{
	if (!proc_create_net_single("toa_stats", 0444, net->proc_net,
				    toa_stats_show, NULL))
		return -ENOMEM;
	return 0;
}

static void __net_exit toa_net_exit(struct net *net)
{
	remove_proc_entry("toa_stats", net->proc_net);
}

static struct pernet_operations toa_net_ops = {
	.init = toa_net_init,
	.exit = toa_net_exit,
};

/* ---------------------------------------------------------------------- */

static void toa_report_missed(void)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(toa_kretprobes); i++)
		if (toa_kretprobes[i]->nmissed)
			pr_warn("%s: %d missed kretprobe instances\n",
				toa_kretprobes[i]->kp.symbol_name,
				toa_kretprobes[i]->nmissed);
}

static int __init toa_init(void)
{
	int ret;

	if (kind < 2 || kind > 255 || (len != TCPOLEN_TOA && len != TCPOLEN_TOA6)) {
		pr_err("kind=%d len=%d: kind must be 2..255, len 8 or 20\n", kind, len);
		return -EINVAL;
	}
	toa_stats = alloc_percpu(struct toa_stats);
	if (!toa_stats)
		return -ENOMEM;

	ret = register_pernet_subsys(&toa_net_ops);
	if (ret)
		goto err_stats;

	ret = register_kprobe(&toa_kp_destroy);
	if (ret) {
		pr_err("register_kprobe(%s) failed: %d\n",
		       toa_kp_destroy.symbol_name, ret);
		goto err_pernet;
	}

	ret = register_kretprobes(toa_kretprobes, ARRAY_SIZE(toa_kretprobes));
	if (ret) {
		pr_err("register_kretprobes failed: %d\n", ret);
		goto err_destroy;
	}

	if (kind != TCPOPT_TOA || len != TCPOLEN_TOA)
		pr_info("option kind %d, len %d\n", kind, len);
	pr_info("toa loaded\n");
	return 0;

err_destroy:
	unregister_kprobe(&toa_kp_destroy);
err_pernet:
	unregister_pernet_subsys(&toa_net_ops);
err_stats:
	free_percpu(toa_stats);
	return ret;
}

static void __exit toa_exit(void)
{
	/*
	 * Unregister all probes first.  unregister_kretprobes() and
	 * unregister_kprobe() wait (synchronize_rcu) until no handler is
	 * running; kretprobe instances still pending (e.g. a getname sleeping
	 * in lock_sock) return without calling our handler afterwards.
	 */
	unregister_kretprobes(toa_kretprobes, ARRAY_SIZE(toa_kretprobes));
	unregister_kprobe(&toa_kp_destroy);
	synchronize_rcu();

	unregister_pernet_subsys(&toa_net_ops);

	/* no reader or writer can exist any more: free the table */
	toa_flush();
	/* entries freed earlier with kfree_rcu() reference no module code */
	toa_report_missed();
	free_percpu(toa_stats);
	pr_info("toa unloaded\n");
}

module_init(toa_init);
module_exit(toa_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("TCP Option Address (TOA): real client address from TCP option 254");
MODULE_AUTHOR("knit project");
