// SPDX-License-Identifier: GPL-2.0
/*
 * knit_fault: real kernel reports on demand, to prove knit's health oracle.
 *
 * Each write-only parameter under /sys/module/knit_fault/parameters/ does one thing:
 *   warn=1               WARN() now, in the writer's context
 *   warn_after_ms=N      WARN() from a timer N ms later
 *   warn_netns_exit=1    WARN() in the pernet exit of the next network namespace to die
 *   leak=N               kmalloc N bytes and lose the pointer (a kmemleak report)
 */
#include <linux/atomic.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timer.h>
#include <linux/version.h>
#include <net/net_namespace.h>

static struct timer_list later;
static atomic_t netns_exit_warns = ATOMIC_INIT(0);

static void later_fn(struct timer_list *t)
{
	WARN(1, "knit_fault: warning from a timer\n");
}

static int set_warn(const char *val, const struct kernel_param *kp)
{
	WARN(1, "knit_fault: warning on demand\n");
	return 0;
}

static int set_warn_after_ms(const char *val, const struct kernel_param *kp)
{
	unsigned int ms;
	int err = kstrtouint(val, 0, &ms);

	if (err)
		return err;
	mod_timer(&later, jiffies + msecs_to_jiffies(ms));
	return 0;
}

static int set_warn_netns_exit(const char *val, const struct kernel_param *kp)
{
	atomic_inc(&netns_exit_warns);
	return 0;
}

static int set_leak(const char *val, const struct kernel_param *kp)
{
	unsigned int size;
	char *p;
	int err = kstrtouint(val, 0, &size);

	if (err)
		return err;
	p = kmalloc(size, GFP_KERNEL);
	if (!p)
		return -ENOMEM;
	memset(p, 0x5a, size);	/* no pointer to it is kept anywhere */
	return 0;
}

static const struct kernel_param_ops warn_ops = { .set = set_warn };
static const struct kernel_param_ops warn_after_ops = { .set = set_warn_after_ms };
static const struct kernel_param_ops netns_exit_ops = { .set = set_warn_netns_exit };
static const struct kernel_param_ops leak_ops = { .set = set_leak };
module_param_cb(warn, &warn_ops, NULL, 0200);
module_param_cb(warn_after_ms, &warn_after_ops, NULL, 0200);
module_param_cb(warn_netns_exit, &netns_exit_ops, NULL, 0200);
module_param_cb(leak, &leak_ops, NULL, 0200);

static void __net_exit knit_fault_net_exit(struct net *net)
{
	if (net != &init_net && atomic_add_unless(&netns_exit_warns, -1, 0))
		WARN(1, "knit_fault: warning in a netns exit\n");
}

static struct pernet_operations knit_fault_net_ops = {
	.exit = knit_fault_net_exit,
};

static int __init knit_fault_init(void)
{
	timer_setup(&later, later_fn, 0);
	return register_pernet_subsys(&knit_fault_net_ops);
}

static void __exit knit_fault_exit(void)
{
	unregister_pernet_subsys(&knit_fault_net_ops);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 2, 0)
	timer_delete_sync(&later);
#else
	del_timer_sync(&later);
#endif
}

module_init(knit_fault_init);
module_exit(knit_fault_exit);
MODULE_DESCRIPTION("kernel reports on demand, for knit's fault tests");
MODULE_LICENSE("GPL");
