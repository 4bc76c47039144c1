/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by furing's kselftests (run as root inside the test VM). */
#ifndef _FURING_TEST_H
#define _FURING_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef FURING_KO
#define FURING_KO "/lib/modules/furing.ko"
#endif

/* Loads furing.ko; 0, or -errno (-EEXIST when already loaded). */
static inline int furing_load(void)
{
	int fd = open(FURING_KO, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, "", 0);
	ret = ret ? -errno : 0;
	close(fd);
	return ret;
}

/* Unloads furing without waiting; 0, or -errno (EAGAIN/EBUSY while in use). */
static inline int furing_unload(void)
{
	return syscall(SYS_delete_module, "furing", O_NONBLOCK) ? -errno : 0;
}

/*
 * Waits up to @secs seconds until nothing holds the module (no open
 * /dev/furing, no mount, no connection); 0, or -ETIMEDOUT. A killed server's
 * io_uring releases its files from a work item, a little after it is reaped.
 */
static inline int furing_wait_unused(int secs)
{
	char buf[32];
	int fd, i;
	ssize_t n;

	for (i = 0; i < secs * 100; i++) {
		fd = open("/sys/module/furing/refcnt", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0 && atoi(buf) == 0)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static inline int furing_loaded(void)
{
	return access("/sys/module/furing", F_OK) == 0;
}

/* Makes sure the module is loaded; 0 or -errno. */
static inline int furing_ensure_loaded(void)
{
	int ret = furing_load();

	return ret == -EEXIST ? 0 : ret;
}

/* Reads a "Key:   N kB" line of /proc/meminfo; -1 when absent. */
static inline long meminfo_kb(const char *key)
{
	char line[256];
	size_t len = strlen(key);
	long val = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, len) && line[len] == ':') {
			val = strtol(line + len + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

/*
 * KiB of vmalloc space in use, from /proc/vmallocinfo, leaving out the module
 * loader's execmem cache (it keeps 2 MiB chunks of module text around across
 * unloads, so VmallocUsed jumps by 2 MiB without any leak); -1 when unreadable.
 */
static inline long vmalloc_kb_no_execmem(void)
{
	char line[512];
	unsigned long start, end, size;
	long total = 0;
	FILE *f = fopen("/proc/vmallocinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "0x%lx-0x%lx %lu", &start, &end, &size) != 3)
			continue;
		if (strstr(line, "execmem") || !strstr(line, " vmalloc"))
			continue;
		total += size;
	}
	fclose(f);
	return total / 1024;
}

/* Reads a small text file into @buf; length or -errno. */
static inline int read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

/* Writes a string to a file (sysfs/debugfs knob); 0 or -errno. */
static inline int write_text(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n < 0 ? -errno : 0;
}

/* The locked memory (VmLck) of process @pid (0: this one), in KiB; -1 on error. */
static inline long furing_vmlck_kb(pid_t pid)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof(path), "/proc/%d/status", pid ? pid : getpid());
	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	p = strstr(buf, "VmLck:");
	return p ? strtol(p + 6, NULL, 10) : -1;
}

/*
 * FOLL_PIN pins held system-wide: nr_foll_pin_acquired - nr_foll_pin_released
 * of /proc/vmstat, with the per-CPU deltas folded in first.
 */
static inline long furing_pins(void)
{
	char buf[8192], *a, *r;

	write_text("/proc/sys/vm/stat_refresh", "1");
	if (read_text("/proc/vmstat", buf, sizeof(buf)) < 0)
		return -1;
	a = strstr(buf, "nr_foll_pin_acquired ");
	r = strstr(buf, "nr_foll_pin_released ");
	if (!a || !r)
		return -1;
	return strtol(a + 21, NULL, 10) - strtol(r + 21, NULL, 10);
}

/*
 * Opens /dev/furing and mounts a furing filesystem on @mnt served by it;
 * returns the server's fd or -errno. INIT then waits on the fd.
 */
static inline int furing_open_and_mount(const char *mnt)
{
	char opts[128];
	int fd, err;

	mkdir(mnt, 0755);
	fd = open("/dev/furing", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	if (syscall(SYS_mount, "furing-test", mnt, "furing", 0UL, opts)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/*
 * The FUSE connection id of the mount at @mnt: its device number in the
 * kernel's encoding (names /sys/fs/fuse/connections/N and the furing debugfs
 * directory). Read from /proc/self/mountinfo: a stat() would be a request.
 */
static inline long furing_conn_id(const char *mnt)
{
	unsigned int major, minor;
	char line[512], path[256];
	long id = -1;
	FILE *f = fopen("/proc/self/mountinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %255s", &major, &minor, path) == 3 &&
		    !strcmp(path, mnt)) {
			id = (long)(major << 20 | minor);
			break;
		}
	}
	fclose(f);
	return id;
}

/* What /sys/kernel/debug/furing/<id>/queues says, summed over the queues. */
struct furing_qstats {
	long classic;	/* requests that went the classic way */
	long sent;	/* requests sent over the ring */
	long inflight;	/* requests handed to the ring and not yet answered */
	long entries;	/* registered ring entries */
	long queues;	/* queues with at least one entry */
	unsigned long flags;	/* REGISTER flags of the queues, or-ed */
	long bufs;	/* buffer rings: payload buffers */
	long bufs_used;	/* ... held by requests now */
	long pinned;	/* bytes pinned */
	long buf_wait_max;	/* most requests that waited for a buffer at once (max) */
	long zc_reqs;	/* requests whose data pages were zero-copied */
	long zc_bytes;	/* ... and their bytes */
	long us;	/* request timing (furing/timing): copy in + out + task work + wait */
};

/* Reads the debugfs queue statistics of connection @id; 0 or -errno. */
static inline int furing_queue_stats(long id, struct furing_qstats *st)
{
	long qid, entries, sent, inflight, bufs, used, pinned, wait_max, zc_reqs, zc_bytes;
	long in_us, out_us, tw_us, wait_us;
	char path[128], buf[4096], *line;
	unsigned long flags;
	int n;

	snprintf(path, sizeof(path), "/sys/kernel/debug/furing/%ld/queues", id);
	n = read_text(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	memset(st, 0, sizeof(*st));
	st->classic = -1;
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (sscanf(line, "classic %ld", &st->classic) == 1)
			continue;
		if (sscanf(line, "%ld %ld %ld %ld %lx %ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &qid,
			   &entries, &sent, &inflight, &flags, &bufs, &used, &pinned, &wait_max,
			   &zc_reqs, &zc_bytes, &in_us, &out_us, &tw_us, &wait_us) == 15) {
			st->us += in_us + out_us + tw_us + wait_us;
			st->zc_reqs += zc_reqs;
			st->zc_bytes += zc_bytes;
			st->sent += sent;
			st->inflight += inflight;
			st->entries += entries;
			st->queues += entries > 0;
			st->flags |= flags;
			st->bufs += bufs;
			st->bufs_used += used;
			st->pinned += pinned;
			if (wait_max > st->buf_wait_max)
				st->buf_wait_max = wait_max;
		}
	}
	return st->classic < 0 ? -EINVAL : 0;
}

/* Zero-copy registrations io_uring holds now (debugfs furing/zero_copy), or -1. */
static inline long furing_zc_live(void)
{
	char buf[128];
	long n;

	if (read_text("/sys/kernel/debug/furing/zero_copy", buf, sizeof(buf)) < 0 ||
	    sscanf(buf, "live_registrations %ld", &n) != 1)
		return -1;
	return n;
}

/* Requests that went the classic way and over the ring; 0 or -errno. */
static inline int furing_stats(long id, long *classic, long *sent)
{
	struct furing_qstats st;
	int ret = furing_queue_stats(id, &st);

	*classic = st.classic;
	*sent = st.sent;
	return ret;
}

/*
 * Waits up to 10 s until every possible CPU's queue of connection @id has an
 * entry; 0 with the statistics in @st, or -ETIMEDOUT.
 */
static inline int furing_wait_queues(long id, struct furing_qstats *st)
{
	long ncpus = sysconf(_SC_NPROCESSORS_CONF);
	int i;

	for (i = 0; i < 1000; i++) {
		if (!furing_queue_stats(id, st) && st->queues == ncpus)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/*
 * Starts /bin/furing-server on /dev/furing serving @back at @mnt, with the
 * extra options that follow (NULL-terminated), and waits for its "ready"
 * line; its pid, or -1.
 */
static inline pid_t furing_server_start(const char *back, const char *mnt, ...)
{
	const char *argv[24] = { "furing-server", "--dev", "/dev/furing" };
	int argc = 3, pipefd[2];
	char line[256];
	const char *a;
	va_list ap;
	FILE *out;
	pid_t pid;

	va_start(ap, mnt);
	while ((a = va_arg(ap, const char *)) && argc < 21)
		argv[argc++] = a;
	va_end(ap);
	argv[argc++] = back;
	argv[argc++] = mnt;
	argv[argc] = NULL;
	mkdir(mnt, 0755);
	mkdir(back, 0755);
	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid == 0) {
		/* The "ready" line goes to the test, which stops listening after it. */
		signal(SIGPIPE, SIG_IGN);
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		execv("/bin/furing-server", (char **)argv);
		_exit(127);
	}
	close(pipefd[1]);
	out = fdopen(pipefd[0], "r");
	if (pid < 0 || !out || !fgets(line, sizeof(line), out) || !strstr(line, "ready"))
		pid = -1;
	if (out)
		fclose(out);
	return pid;
}

#endif /* _FURING_TEST_H */
