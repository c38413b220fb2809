/*
 * Privileges of the kernel source: checked before anything is touched, and
 * dropped once the programs are attached.
 */
#ifndef FLOWSTORE_PRIVILEGES_H
#define FLOWSTORE_PRIVILEGES_H

/* Can the kernel programs be loaded here: root (or CAP_BPF and
 * CAP_PERFMON) and kernel BTF? Logs one line saying what is missing and
 * returns -EPERM or -ENOENT; 0 if nothing is. Touches nothing else. */
int privileges_check_bpf(void);

/* After the programs are attached the daemon needs only what attaching more
 * of them and writing its data dir take: drops every other capability
 * (effective, permitted, inheritable, ambient, bounding) and logs what it
 * kept. Capabilities are per thread and inherited at creation: call it
 * before starting any thread, so the drop covers them all. */
void privileges_drop(void);

#endif /* FLOWSTORE_PRIVILEGES_H */
