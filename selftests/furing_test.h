/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by furing's kselftests (run as root inside the test VM). */
#ifndef _FURING_TEST_H
#define _FURING_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Where the tests find what they run: the environment names it (run_tests.sh
 * of an installed suite sets both), else the test VM's paths.
 *   FURING_KO   the furing.ko the tests load and unload
 *   FURING_BIN  the directory of furing-server, furing-launch, fio, passthrough_hp
 */
static inline const char *furing_env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

/* Runs the helper program @name of FURING_BIN; returns only on failure. */
static inline int furing_exec(const char *name, const char *const argv[])
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", furing_env("FURING_BIN", "/bin"), name);
	return execv(path, (char *const *)argv);
}

/*
 * Starts the helper @name of FURING_BIN with @argv, its stdout and stderr to
 * the file @log; its pid, or -1.
 */
static inline pid_t furing_spawn(const char *log, const char *name, const char *const argv[])
{
	pid_t pid = fork();
	int fd;

	if (pid == 0) {
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		furing_exec(name, argv);
		_exit(127);
	}
	return pid;
}

/*
 * Starts fio's crc32c checker on @dir, output to @log: random writes of 4 KiB
 * to 1 MiB blocks, every block verified (--verify_fatal), the same seed each
 * run (a --verify_only run visits the blocks the writing run wrote), jobs as
 * threads; then @opts (NULL-terminated: name, size, engine, direct...) and the
 * NULL-terminated @extra. Its pid, or -1.
 */
static inline pid_t furing_fio_verify(const char *log, const char *dir, const char *const opts[],
				      va_list extra)
{
	const char *argv[40] = {
		"fio", "--rw=randwrite", "--bssplit=4k/30:16k/15:64k/20:256k/20:1m/15",
		"--verify=crc32c", "--verify_fatal=1", "--randrepeat=1", "--thread",
	};
	int argc = 7;
	char dir_opt[256];
	const char *a;

	snprintf(dir_opt, sizeof(dir_opt), "--directory=%s", dir);
	argv[argc++] = dir_opt;
	while (*opts && argc < 39)
		argv[argc++] = *opts++;
	while ((a = va_arg(extra, const char *)) && argc < 39)
		argv[argc++] = a;
	argv[argc] = NULL;
	return furing_spawn(log, "fio", argv);
}

/* Loads furing.ko; 0, or -errno (-EEXIST when already loaded). */
static inline int furing_load(void)
{
	int fd = open(furing_env("FURING_KO", "/lib/modules/furing.ko"), O_RDONLY | O_CLOEXEC);
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

/* Pins the calling thread to CPU @cpu; 0 or -errno. */
static inline int furing_pin_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
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

/* Aborts connection @id through fusectl; 0 or -errno. */
static inline int furing_abort(long id)
{
	char path[64];

	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", id);
	return write_text(path, "1");
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
 * of /proc/vmstat, with the per-CPU deltas folded in first; -1 when the
 * counters are missing, which every caller asserts against (a comparison of
 * two -1s would prove nothing).
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

/* A line of debugfs furing/<id>/classes: one payload buffer class of a queue. */
struct furing_class {
	long qid;
	long cls;	/* 0: init.buf_size's, 1-3: class_buf_size's */
	long buf_size;
	long bufs;
	long in_use;	/* buffers held by requests now */
	long waits;	/* requests that waited for one (cumulative) */
};

/*
 * Reads the classes of connection @id's buffer-ring queues into @c (at most
 * @max, in the file's order); how many, or -errno (-EINVAL: no header line).
 */
static inline int furing_classes(long id, struct furing_class *c, int max)
{
	char path[128], buf[8192], *line;
	int n, header = 0;

	snprintf(path, sizeof(path), "/sys/kernel/debug/furing/%ld/classes", id);
	n = read_text(path, buf, sizeof(buf));
	if (n < 0)
		return n;
	n = 0;
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strcmp(line, "qid class buf_size bufs in_use waits")) {
			header = 1;
			continue;
		}
		if (n < max && sscanf(line, "%ld %ld %ld %ld %ld %ld", &c[n].qid, &c[n].cls,
				      &c[n].buf_size, &c[n].bufs, &c[n].in_use, &c[n].waits) == 6)
			n++;
	}
	return header ? n : -EINVAL;
}

/* Class @cls of queue @qid of connection @id into @c; 0, or -ENOENT / -errno. */
static inline int furing_class(long id, long qid, long cls, struct furing_class *c)
{
	struct furing_class all[64];
	int n = furing_classes(id, all, 64), i;

	for (i = 0; i < n; i++) {
		if (all[i].qid == qid && all[i].cls == cls) {
			*c = all[i];
			return 0;
		}
	}
	return n < 0 ? n : -ENOENT;
}

/*
 * Entries of connection @id in @state ("available": its command parked and
 * waiting, "userspace": the server holds its request, ...), from debugfs
 * furing/<id>/entries; @state NULL counts every entry. -errno when unreadable.
 */
static inline long furing_entries(long id, const char *state)
{
	static char buf[1 << 17];
	char path[128], st[32], *line;
	size_t len = 0;
	int qid, slot, fd;
	long count = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "/sys/kernel/debug/furing/%ld/entries", id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += n;
	close(fd);
	buf[len] = '\0';
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (sscanf(line, "%d %d %31s", &qid, &slot, st) == 3 && (!state || !strcmp(st, state)))
			count++;
	return count;
}

/* Waits up to 5 s until connection @id has @n entries in @state; 0 or -ETIMEDOUT. */
static inline int furing_wait_entries(long id, const char *state, long n)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (furing_entries(id, state) == n)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* Zero-copy page sets alive now (debugfs furing/zero_copy: io_uring's or an entry's), or -1. */
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
 * Starts furing-server (of FURING_BIN) on /dev/furing serving @back at @mnt, with the
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
		furing_exec("furing-server", argv);
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

/* Whether this is the debug kernel (the one with kmemleak): slower, fewer rounds. */
static inline int furing_debug_kernel(void)
{
	return access("/sys/kernel/debug/kmemleak", F_OK) == 0;
}

/*
 * Fills @mb MiB of anonymous memory with 0xab and frees it: the pages the
 * kernel hands out next (page cache among them) hold that pattern unless the
 * kernel clears them, so a read of stale memory shows as non-zero bytes. A
 * kernel booted with page_poison=1 fills every freed page itself: a little
 * spray is enough there.
 */
static inline void furing_spray(size_t mb)
{
	char cmdline[1024] = "";
	size_t len;

	if (read_text("/proc/cmdline", cmdline, sizeof(cmdline)) > 0 &&
	    strstr(cmdline, "page_poison=1"))
		mb = mb < 8 ? mb : 8;
	len = mb << 20;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	memset(p, 0xab, len);
	munmap(p, len);
}

/* Bytes of @p[0..@len) that are not zero. */
static inline size_t furing_nonzero(const char *p, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += p[i] != 0;
	return n;
}

/* The byte @i of the files furing_stale_* write: never 0. */
static inline char furing_stale_byte(size_t i)
{
	return 'a' + i % 23;
}

/* Writes @size bytes of furing_stale_byte() to a new file @path; 0 or -errno. */
static inline int furing_write_pattern(const char *path, size_t size)
{
	char *buf = malloc(size);
	int fd, ret = 0;
	size_t i;

	if (!buf)
		return -ENOMEM;
	for (i = 0; i < size; i++)
		buf[i] = furing_stale_byte(i);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, size) != (ssize_t)size)
		ret = -errno ?: -EIO;
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/*
 * Writes a file of @size bytes (furing_stale_byte()) as @back/@name, beside
 * the mount, then maps @mnt/@name, whose page cache is empty: returns how many
 * bytes past EOF in its last page are not zero (stale memory a short READ left
 * in a page marked uptodate), or -1 with a message in @why when the file's own
 * bytes are wrong or a call fails.
 */
static inline long furing_stale_tail(const char *mnt, const char *back, const char *name,
				     size_t size, char *why, size_t whylen)
{
	size_t i, maplen = (size + 4095) & ~4095UL;
	char path[256], *map;
	long stale = -1;
	int fd, err;

	snprintf(path, sizeof(path), "%s/%s", back, name);
	err = furing_write_pattern(path, size);
	if (err) {
		snprintf(why, whylen, "write %s: %s", path, strerror(-err));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", mnt, name);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		snprintf(why, whylen, "open %s: %s", path, strerror(errno));
		return -1;
	}
	map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "mmap %s: %s", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < size && map[i] == furing_stale_byte(i); i++)
		;
	if (i < size)
		snprintf(why, whylen, "%s: byte %zu below EOF differs", path, i);
	else
		stale = furing_nonzero(map + size, maplen - size);
	munmap(map, maplen);
	return stale;
}

/* The sizes the stale-memory checks use: short reads in and across pages and requests. */
static const size_t furing_stale_sizes[] = { 1, 100, 4095, 4097, 204900, (1 << 20) + 1 };

/*
 * The whole stale-memory check on @mnt (served from @back): for each of
 * furing_stale_sizes, after furing_spray(): the mapped tail past EOF is zero;
 * extended with ftruncate() through the mount, the file reads (and maps) as
 * zeros past its old end; an O_DIRECT read across EOF returns the file's bytes
 * and leaves the rest of the buffer as it was. Returns the stale bytes found
 * (0 when clean), or -1 with @why set.
 */
static inline long furing_stale_check(const char *mnt, const char *back, char *why,
				      size_t whylen)
{
	const size_t ext = 8192;
	long total = 0;
	unsigned int k;

	for (k = 0; k < sizeof(furing_stale_sizes) / sizeof(furing_stale_sizes[0]); k++) {
		size_t i, size = furing_stale_sizes[k], maplen = (size + ext + 4095) & ~4095UL;
		size_t dlen = maplen + 4096;
		char name[32], path[256], *buf, *map;
		long stale;
		ssize_t n;
		int fd;

		furing_spray(64);
		snprintf(name, sizeof(name), "stale-%zu", size);
		stale = furing_stale_tail(mnt, back, name, size, why, whylen);
		if (stale < 0)
			return -1;
		if (stale) {
			snprintf(why, whylen, "%zu-byte file: %ld stale bytes past EOF", size, stale);
			total += stale;
		}
		/* Extended: the old tail is file data now, and must read as zeros. */
		snprintf(path, sizeof(path), "%s/%s", mnt, name);
		fd = open(path, O_RDWR);
		if (fd < 0 || ftruncate(fd, size + ext)) {
			snprintf(why, whylen, "truncate %s: %s", path, strerror(errno));
			return -1;
		}
		buf = malloc(ext);
		if (!buf || pread(fd, buf, ext, size) != (ssize_t)ext) {
			snprintf(why, whylen, "read %s past its old end: %s", path, strerror(errno));
			return -1;
		}
		stale = furing_nonzero(buf, ext);
		free(buf);
		map = mmap(NULL, maplen, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			snprintf(why, whylen, "mmap %s: %s", path, strerror(errno));
			return -1;
		}
		stale += furing_nonzero(map + size, maplen - size);
		munmap(map, maplen);
		close(fd);
		if (stale) {
			snprintf(why, whylen, "%zu-byte file extended by %zu: %ld non-zero bytes", size,
				 ext, stale);
			total += stale;
		}
		/* O_DIRECT across EOF of a fresh file: its bytes, the rest of the buffer untouched. */
		furing_spray(64);
		snprintf(path, sizeof(path), "%s/direct-%zu", back, size);
		if (furing_write_pattern(path, size)) {
			snprintf(why, whylen, "write %s", path);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/direct-%zu", mnt, size);
		fd = open(path, O_RDONLY | O_DIRECT);
		if (fd < 0 || posix_memalign((void **)&buf, 4096, dlen)) {
			snprintf(why, whylen, "O_DIRECT open %s: %s", path, strerror(errno));
			return -1;
		}
		memset(buf, 0x5a, dlen);
		n = pread(fd, buf, dlen, 0);
		close(fd);
		if (n != (ssize_t)size) {
			snprintf(why, whylen, "O_DIRECT read of %zu-byte file: %zd", size, n);
			free(buf);
			return -1;
		}
		for (i = 0; i < size && buf[i] == furing_stale_byte(i); i++)
			;
		if (i == size)
			for (stale = 0; i < dlen; i++)
				stale += buf[i] != 0x5a;
		free(buf);
		if (i != dlen) {
			snprintf(why, whylen, "O_DIRECT read of %zu-byte file: wrong data", size);
			return -1;
		}
		if (stale) {
			snprintf(why, whylen, "O_DIRECT read of %zu-byte file: %ld bytes past EOF written",
				 size, stale);
			total += stale;
		}
	}
	return total;
}

#endif /* _FURING_TEST_H */
