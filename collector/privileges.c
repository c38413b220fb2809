/*
 * What the daemon is allowed to do: whether it may load the kernel programs
 * (root, or CAP_BPF and CAP_PERFMON, and kernel BTF), and dropping, once they
 * are attached, every capability it no longer needs (see privileges.h).
 * Raw capget/capset syscalls: no library for five calls.
 */
#include "privileges.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/capability.h>

#include "log.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

#define BTF_PATH "/sys/kernel/btf/vmlinux"

static int caps_get(struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };

	memset(d, 0, sizeof(*d) * _LINUX_CAPABILITY_U32S_3);
	return syscall(SYS_capget, &h, d) ? -errno : 0;
}

static bool cap_effective(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int privileges_check_bpf(void)
{
	struct __user_cap_data_struct caps[_LINUX_CAPABILITY_U32S_3];
	bool allowed;

	if (caps_get(caps))
		allowed = geteuid() == 0;
	else /* CAP_SYS_ADMIN stands for both before Linux 5.8 */
		allowed = (cap_effective(caps, CAP_BPF) && cap_effective(caps, CAP_PERFMON)) ||
			  cap_effective(caps, CAP_SYS_ADMIN);
	if (!allowed) {
		LOG(LOG_ERROR, "--source bpf needs root (or CAP_BPF and CAP_PERFMON) to load "
			       "its kernel programs");
		return -EPERM;
	}
	if (access(BTF_PATH, F_OK)) {
		LOG(LOG_ERROR, "--source bpf: this kernel has no BTF (CONFIG_DEBUG_INFO_BTF): "
			       "%s is missing", BTF_PATH);
		return -ENOENT;
	}
	return 0;
}

/* What the daemon may still need once the programs are attached: attaching
 * TC programs to interfaces that appear later (CAP_BPF, CAP_NET_ADMIN, and
 * CAP_PERFMON / CAP_SYS_ADMIN for what older kernels gate behind them), and
 * writing the data dir as root (CAP_DAC_OVERRIDE, CAP_CHOWN, CAP_FOWNER). */
static const struct {
	int cap;
	const char *name;
} kept_caps[] = {
	{ CAP_BPF, "bpf" },
	{ CAP_PERFMON, "perfmon" },
	{ CAP_NET_ADMIN, "net_admin" },
	{ CAP_SYS_ADMIN, "sys_admin" },
	{ CAP_DAC_OVERRIDE, "dac_override" },
	{ CAP_CHOWN, "chown" },
	{ CAP_FOWNER, "fowner" },
};

static bool cap_kept(int cap)
{
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		if (kept_caps[i].cap == cap)
			return true;
	return false;
}

/* The bounding set limits what a program we exec could regain as root.
 * Dropping from it needs CAP_SETPCAP, so it comes before capset(). */
static void drop_bounding_set(void)
{
	int held;

	for (int cap = 0; (held = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) >= 0; cap++) {
		if (!held || cap_kept(cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) {
			LOG(LOG_DEBUG, "the bounding set stays as it is: %s", strerror(errno));
			return;
		}
	}
}

void privileges_drop(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	uint32_t keep[_LINUX_CAPABILITY_U32S_3] = { 0 };
	char names[160] = "";
	size_t used = 0;
	int err = caps_get(d);

	if (err) {
		LOG(LOG_WARN, "cannot read our capabilities, none dropped: %s", strerror(-err));
		return;
	}
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		keep[kept_caps[i].cap / 32] |= 1u << (kept_caps[i].cap % 32);
	drop_bounding_set();
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	for (int w = 0; w < _LINUX_CAPABILITY_U32S_3; w++) {
		d[w].effective &= keep[w];
		d[w].permitted &= keep[w];
		d[w].inheritable = 0;
	}
	if (syscall(SYS_capset, &h, d)) {
		LOG(LOG_WARN, "cannot drop capabilities: %s", strerror(errno));
		return;
	}
	for (size_t i = 0; i < sizeof(kept_caps) / sizeof(kept_caps[0]); i++)
		if (cap_effective(d, kept_caps[i].cap) && used < sizeof(names))
			used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s",
						 used ? " " : "", kept_caps[i].name);
	LOG(LOG_INFO, "capabilities dropped; kept: %s", used ? names : "none");
}
