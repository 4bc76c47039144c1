// SPDX-License-Identifier: GPL-2.0
/*
 * Data through a furing mount served by furing-server (a passthrough of a
 * tmpfs directory) over the ring: every size that crosses a page or buffer
 * boundary, at aligned and unaligned offsets, buffered and O_DIRECT, compared
 * with the backing file; debugfs proves the ring carried the traffic.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include "furing_test.h"
#include <linux/furing.h>
#include "kselftest_harness.h"
#include "furing_fsx.h"

#define MNT "/tmp/furing-io-mnt"
#define BACK "/tmp/furing-io-back"
#define MAX_WRITE (1 << 20)

FIXTURE(srv) {
	pid_t pid;
	long id;
	int data;	/* the test moved file data in large reads and writes */
	char enable_uring[8];	/* fuse.enable_uring before the test */
};

FIXTURE_VARIANT(srv) {
	const char *args[8]; /* server options (NULL-terminated) */
	int ring;            /* traffic must go over furing's ring (its debugfs says) */
	uint64_t flags;      /* the queues' REGISTER flags */
	int wb;              /* writeback cache: only the tests it changes run */
	int intree;          /* Linux 7.3's io-uring on /dev/fuse: the server's counts say */
	int pool_pinned;     /* the 7.3 pool is an io_uring fixed buffer: its pages pinned */
};

/* The writeback-cache variants run the page-cache tests (stale_tails, random_ops) only. */
#define SKIP_WB() do { if (variant->wb) SKIP(return, "writeback cache: page-cache tests only"); } while (0)

FIXTURE_VARIANT_ADD(srv, ring) { .args = { NULL }, .ring = 1 };
FIXTURE_VARIANT_ADD(srv, classic) { .args = { "--no-uring" }, .ring = 0 };
FIXTURE_VARIANT_ADD(srv, bufring) {
	.args = { "--bufring" }, .ring = 1, .flags = FURING_URING_BUFRING,
};
FIXTURE_VARIANT_ADD(srv, pinned_headers) {
	.args = { "--bufring", "--pin-headers" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS,
};
FIXTURE_VARIANT_ADD(srv, pinned_buffers) {
	.args = { "--bufring", "--pin-buffers" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_BUFFERS,
};
FIXTURE_VARIANT_ADD(srv, pinned) {
	.args = { "--bufring", "--pin-headers", "--pin-buffers" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS,
};
FIXTURE_VARIANT_ADD(srv, zero_copy) {
	.args = { "--zero-copy" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS |
		 FURING_URING_ZERO_COPY,
};
/*
 * Payload buffer classes: small buffers for metadata and small I/O, a few of
 * max_write (zero-copy: of 64 KiB, the largest a copied READ or WRITE needs);
 * strict, three classes, each request in exactly its own.
 */
FIXTURE_VARIANT_ADD(srv, bufring_classes) {
	.args = { "--bufring", "--buf-class=4096x16", "--buf-class=1048576x2" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_BUF_CLASSES,
};
FIXTURE_VARIANT_ADD(srv, strict_classes) {
	.args = { "--bufring", "--buf-class=4096x8", "--buf-class=65536x4",
		  "--buf-class=1048576x2", "--buf-class-strict" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_BUF_CLASSES | FURING_URING_BUF_CLASSES_STRICT,
};
FIXTURE_VARIANT_ADD(srv, pinned_classes) {
	.args = { "--bufring", "--pin-headers", "--pin-buffers", "--buf-class=4096x16",
		  "--buf-class=1048576x2" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS |
		 FURING_URING_BUF_CLASSES,
};
FIXTURE_VARIANT_ADD(srv, zero_copy_classes) {
	.args = { "--zero-copy", "--buf-class=4096x16", "--buf-class=65536x4" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS |
		 FURING_URING_ZERO_COPY | FURING_URING_BUF_CLASSES,
};
/*
 * The same server on the kernel's own /dev/fuse, in each of Linux 7.3's
 * io-uring modes: basic, buffer pool, buffer pool registered as a fixed
 * buffer, and zero-copy (FOPEN_IO_URING_ZERO_COPY, on a buffer pool).
 */
FIXTURE_VARIANT_ADD(srv, intree) { .args = { "--dev=/dev/fuse" }, .intree = 1 };
FIXTURE_VARIANT_ADD(srv, intree_bufpool) {
	.args = { "--dev=/dev/fuse", "--bufpool" }, .intree = 1,
};
FIXTURE_VARIANT_ADD(srv, intree_bufpool_fixed) {
	.args = { "--dev=/dev/fuse", "--bufpool-fixed" }, .intree = 1, .pool_pinned = 1,
};
FIXTURE_VARIANT_ADD(srv, intree_zero_copy) {
	.args = { "--dev=/dev/fuse", "--zero-copy" }, .intree = 1,
};
/* With the writeback cache the kernel reads a page before it writes part of it. */
FIXTURE_VARIANT_ADD(srv, wb_classic) {
	.args = { "--writeback-cache", "--no-uring" }, .ring = 0, .wb = 1,
};
FIXTURE_VARIANT_ADD(srv, wb_ring) { .args = { "--writeback-cache" }, .ring = 1, .wb = 1 };
FIXTURE_VARIANT_ADD(srv, wb_bufring) {
	.args = { "--writeback-cache", "--bufring" }, .ring = 1, .flags = FURING_URING_BUFRING,
	.wb = 1,
};
FIXTURE_VARIANT_ADD(srv, wb_pinned) {
	.args = { "--writeback-cache", "--bufring", "--pin-headers", "--pin-buffers" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS,
	.wb = 1,
};
FIXTURE_VARIANT_ADD(srv, wb_strict_classes) {
	.args = { "--writeback-cache", "--bufring", "--buf-class=4096x16",
		  "--buf-class=1048576x2", "--buf-class-strict" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_BUF_CLASSES | FURING_URING_BUF_CLASSES_STRICT,
	.wb = 1,
};
FIXTURE_VARIANT_ADD(srv, wb_zero_copy) {
	.args = { "--writeback-cache", "--zero-copy" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS |
		 FURING_URING_ZERO_COPY,
	.wb = 1,
};

#define STATS "/tmp/furing-io-stats"
#define ENABLE_URING "/sys/module/fuse/parameters/enable_uring"

/* The --buf-class=SIZExN options of @variant into @size and @bufs; how many. */
static int variant_classes(const FIXTURE_VARIANT(srv) *variant, long *size, long *bufs)
{
	int i, n = 0;

	for (i = 0; i < 8 && variant->args[i]; i++)
		if (sscanf(variant->args[i], "--buf-class=%ldx%ld", &size[n], &bufs[n]) == 2)
			n++;
	return n;
}

/* debugfs classes: each of the @queues queues has the variant's classes, none in use. */
static void expect_classes(struct __test_metadata *_metadata,
			   const FIXTURE_VARIANT(srv) *variant, long id, long queues)
{
	long size[FURING_URING_MAX_BUF_CLASSES], bufs[FURING_URING_MAX_BUF_CLASSES];
	int n = variant_classes(variant, size, bufs), lines, i;
	struct furing_class c[64];

	lines = furing_classes(id, c, 64);
	ASSERT_EQ(queues * n, lines);
	for (i = 0; i < lines; i++) {
		EXPECT_EQ(i % n, c[i].cls);
		EXPECT_EQ(size[i % n], c[i].buf_size);
		EXPECT_EQ(bufs[i % n], c[i].bufs);
		EXPECT_EQ(0, c[i].in_use);
	}
}

/*
 * The server's exit line (@line) says how many requests each class served:
 * every class of the variant served some.
 */
static void expect_classes_used(struct __test_metadata *_metadata,
				const FIXTURE_VARIANT(srv) *variant, const char *line)
{
	long size[FURING_URING_MAX_BUF_CLASSES], bufs[FURING_URING_MAX_BUF_CLASSES], s, b, used;
	int n = variant_classes(variant, size, bufs), i;
	const char *p = strstr(line, "; classes ");

	ASSERT_NE(NULL, p) TH_LOG("%s", line);
	for (i = 0, p += 9; i < n; i++) {
		ASSERT_EQ(3, sscanf(p, " %ldx%ld used %ld", &s, &b, &used)) TH_LOG("%s", line);
		EXPECT_EQ(size[i], s);
		EXPECT_LT(0, used) TH_LOG("%s", line);
		p = strchr(p + 1, ',') ?: "";
		p += *p == ',';
	}
}

FIXTURE_SETUP(srv)
{
	ASSERT_EQ(0, furing_ensure_loaded());
	/* Linux 7.3's io-uring is off until the fuse module's parameter turns it on. */
	/*
	 * The 7.3 modes are the peer the bench measures: the normal kernels prove the
	 * server right on them; the debug kernel's time goes to furing's own code.
	 */
	if (variant->intree && furing_debug_kernel())
		SKIP(return, "Linux 7.3's modes: on the normal kernel");
	if (variant->intree) {
		ASSERT_LT(0, read_text(ENABLE_URING, self->enable_uring, sizeof(self->enable_uring)));
		ASSERT_EQ(0, write_text(ENABLE_URING, "Y"));
	}
	unlink(STATS);
	self->pid = furing_server_start(BACK, MNT, "--stats=" STATS, variant->args[0],
				       variant->args[1], variant->args[2], variant->args[3],
				       variant->args[4], variant->args[5], variant->args[6], NULL);
	ASSERT_LT(0, self->pid);
	self->id = furing_conn_id(MNT);
	ASSERT_LE(0, self->id);
	/* A fixed pool is registered with the server's io_uring: 1 MiB buffers, pinned. */
	if (variant->pool_pinned)
		EXPECT_LE(256, furing_pins());
	if (variant->ring) {
		struct furing_qstats st;

		/* Every queue registered, in the variant's mode. */
		ASSERT_EQ(0, furing_wait_queues(self->id, &st));
		ASSERT_EQ(variant->flags, st.flags);
		if (variant->flags & FURING_URING_BUF_CLASSES)
			expect_classes(_metadata, variant, self->id, st.queues);
	}
}

FIXTURE_TEARDOWN(srv)
{
	struct furing_qstats st;
	int status;

	if (variant->flags & FURING_URING_ZERO_COPY && !furing_queue_stats(self->id, &st))
		TH_LOG("zero-copied: %ld requests, %ld bytes", st.zc_reqs, st.zc_bytes);
	umount2(MNT, 0);
	if (self->pid > 0) {
		waitpid(self->pid, &status, 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* Every registration went back, with its folio references. */
	if (variant->flags & FURING_URING_ZERO_COPY) {
		EXPECT_EQ(0, furing_wait_unused(10));
		EXPECT_EQ(0, furing_zc_live());
	}
	if (variant->intree && self->enable_uring[0])
		write_text(ENABLE_URING, self->enable_uring);
	/* A test that moved data of every size used every buffer class. */
	if (variant->flags & FURING_URING_BUF_CLASSES && self->pid > 0 && self->data &&
	    _metadata->exit_code != KSFT_SKIP) {
		char line[1024] = "";

		EXPECT_LT(0, read_text(STATS, line, sizeof(line)));
		TH_LOG("%s", line);
		expect_classes_used(_metadata, variant, line);
	}
	/* 7.3's io-uring carried the traffic (zero-copy: the data in registered pages). */
	if (variant->intree && self->pid > 0 && _metadata->exit_code != KSFT_SKIP) {
		char line[1024] = "";
		unsigned long ring = 0;
		const char *p;

		EXPECT_LT(0, read_text(STATS, line, sizeof(line)));
		p = strstr(line, ", ring ");
		if (p)
			ring = strtoul(p + 7, NULL, 10);
		TH_LOG("%s", line);
		EXPECT_LE(10, ring);
		if (self->data && strstr(variant->args[1] ?: "", "zero-copy"))
			EXPECT_NE(NULL, strstr(line, " zc "));
	}
}

static void fill(char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = seed >> 16;
	}
}

/* Writes @len bytes at @off through the mount, reads them back both ways. */
static int roundtrip(struct __test_metadata *_metadata, size_t len, off_t off, int direct)
{
	char *wbuf, *rbuf;
	size_t alloc = len + 8192;
	int fd, bfd, ok = 1;

	ASSERT_EQ(0, posix_memalign((void **)&wbuf, 4096, alloc));
	ASSERT_EQ(0, posix_memalign((void **)&rbuf, 4096, alloc));
	fill(wbuf, len, len + off);
	unlink(MNT "/f"); /* through the mount: the kernel caches the name */
	fd = open(MNT "/f", O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0644);
	ASSERT_LE(0, fd);
	EXPECT_EQ((ssize_t)len, pwrite(fd, wbuf, len, off));
	EXPECT_EQ(0, fsync(fd));
	memset(rbuf, 0xaa, alloc);
	EXPECT_EQ((ssize_t)len, pread(fd, rbuf, len, off));
	if (memcmp(wbuf, rbuf, len))
		ok = 0;
	close(fd);
	/* The backing file has the same bytes. */
	bfd = open(BACK "/f", O_RDONLY);
	ASSERT_LE(0, bfd);
	memset(rbuf, 0x55, alloc);
	EXPECT_EQ((ssize_t)len, pread(bfd, rbuf, len, off));
	if (memcmp(wbuf, rbuf, len))
		ok = 0;
	close(bfd);
	free(wbuf);
	free(rbuf);
	return ok;
}

static const size_t sizes[] = {
	0, 1, 4095, 4096, 4097, 128 << 10, MAX_WRITE, MAX_WRITE + 1, 3 * MAX_WRITE + 4097,
};

/*
 * Zero-copy: the data of the large reads and writes (128 KiB, 1 MiB and more)
 * went through registered pages; the small ones were copied.
 */
static void expect_zero_copied(struct __test_metadata *_metadata, FIXTURE_DATA(srv) *self,
			       const FIXTURE_VARIANT(srv) *variant)
{
	struct furing_qstats st;

	if (!(variant->flags & FURING_URING_ZERO_COPY))
		return;
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_LE(4, st.zc_reqs);
	EXPECT_LE(4L << 20, st.zc_bytes);
}

TEST_F(srv, data_buffered)
{
	unsigned int i;
	long classic, sent;

	SKIP_WB();

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		EXPECT_TRUE(roundtrip(_metadata, sizes[i], 0, 0)) TH_LOG("size %zu", sizes[i]);
		EXPECT_TRUE(roundtrip(_metadata, sizes[i], 4095, 0)) TH_LOG("size %zu at 4095", sizes[i]);
	}
	self->data = 1;
	if (variant->intree)
		return;
	ASSERT_EQ(0, furing_stats(self->id, &classic, &sent));
	TH_LOG("requests: %ld over the ring, %ld classic", sent, classic);
	if (variant->ring) {
		EXPECT_LT(100, sent);
		EXPECT_GT(5, classic);
	} else {
		EXPECT_EQ(0, sent);
	}
	expect_zero_copied(_metadata, self, variant);
}

TEST_F(srv, data_direct)
{
	unsigned int i;
	long classic, sent;

	SKIP_WB();

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		EXPECT_TRUE(roundtrip(_metadata, sizes[i], 0, 1)) TH_LOG("size %zu", sizes[i]);
		EXPECT_TRUE(roundtrip(_metadata, sizes[i], 513, 1)) TH_LOG("size %zu at 513", sizes[i]);
	}
	self->data = 1;
	if (variant->intree)
		return;
	ASSERT_EQ(0, furing_stats(self->id, &classic, &sent));
	if (variant->ring)
		EXPECT_LT(50, sent);
	expect_zero_copied(_metadata, self, variant);
}

/*
 * Zero-copy takes reads and writes of 64 KiB and more, exactly: one O_DIRECT
 * request each of 64 KiB - 4 KiB (copied) and 64 KiB (registered), counted
 * with their bytes.
 */
TEST_F(srv, zero_copy_threshold)
{
	static const struct { size_t len; long reqs; } cases[] = {
		{ (64 << 10) - 4096, 0 }, { 64 << 10, 1 }, { 1 << 20, 1 },
	};
	struct furing_qstats before, after;
	unsigned int i;
	char *buf;
	int fd;

	SKIP_WB();

	if (!(variant->flags & FURING_URING_ZERO_COPY))
		SKIP(return, "not a zero-copy queue");
	ASSERT_EQ(0, posix_memalign((void **)&buf, 4096, 1 << 20));
	memset(buf, 'z', 1 << 20);
	fd = open(MNT "/zc", O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	ASSERT_LE(0, fd);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ASSERT_EQ(0, furing_queue_stats(self->id, &before));
		EXPECT_EQ((ssize_t)cases[i].len, pwrite(fd, buf, cases[i].len, 0));
		EXPECT_EQ((ssize_t)cases[i].len, pread(fd, buf, cases[i].len, 0));
		ASSERT_EQ(0, furing_queue_stats(self->id, &after));
		EXPECT_EQ(2 * cases[i].reqs, after.zc_reqs - before.zc_reqs) {
			TH_LOG("%zu bytes", cases[i].len);
		}
		EXPECT_EQ(2 * cases[i].reqs * (long)cases[i].len, after.zc_bytes - before.zc_bytes);
	}
	close(fd);
	free(buf);
}

/* Request timing (debugfs furing/timing): off by default, counts only while on. */
TEST_F(srv, timing)
{
	const char *path = "/sys/kernel/debug/furing/timing";
	struct furing_qstats st;
	char buf[8];
	int fd;

	SKIP_WB();

	if (!variant->ring)
		SKIP(return, "no ring");
	ASSERT_LT(0, read_text(path, buf, sizeof(buf)));
	ASSERT_STREQ("0\n", buf);
	EXPECT_TRUE(roundtrip(_metadata, MAX_WRITE, 0, 1));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ(0, st.us);

	fd = open(path, O_WRONLY);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-1, write(fd, "x", 1));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(1, write(fd, "1", 1));
	EXPECT_TRUE(roundtrip(_metadata, MAX_WRITE, 0, 1));
	EXPECT_EQ(1, write(fd, "0", 1));
	close(fd);
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_LT(0, st.us);
	TH_LOG("timed: %ld us", st.us);
}

struct hotplug {
	int cpu;
	int stop;
	int rounds;
	int err;
};

/* Takes CPU @cpu offline and back online until told to stop; counts the rounds. */
static void *hotplug_thread(void *arg)
{
	struct hotplug *h = arg;
	char path[64];
	int ret;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", h->cpu);
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		ret = write_text(path, "0");
		if (!ret)
			ret = write_text(path, "1");
		if (ret) {
			h->err = ret;
			break;
		}
		h->rounds++;
		usleep(100000);
	}
	/* Whatever happened, the CPU ends online. */
	write_text(path, "1");
	return NULL;
}

/*
 * CPU hotplug under load: the last online CPU goes offline and comes back
 * while the random-op checker runs (its threads, and the server's queue
 * thread of that CPU, move): every op and the final compare pass.
 */
TEST_F_TIMEOUT(srv, cpu_hotplug, 600)
{
	struct hotplug h = { 0 };
	char path[64];
	pthread_t th;

	SKIP_WB();
	if (variant->flags & ~(uint64_t)(FURING_URING_BUFRING | FURING_URING_BUF_CLASSES) ||
	    !variant->ring)
		SKIP(return, "hotplug: the ring, bufring and bufring_classes variants");
	h.cpu = sysconf(_SC_NPROCESSORS_ONLN) - 1;
	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online", h.cpu);
	if (h.cpu < 1 || access(path, W_OK))
		SKIP(return, "no CPU to take offline");
	ASSERT_EQ(0, pthread_create(&th, NULL, hotplug_thread, &h));
	furing_fsx(_metadata, MNT, BACK);
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	TH_LOG("CPU %d offline and online %d times", h.cpu, h.rounds);
	EXPECT_EQ(0, h.err);
	EXPECT_LT(0, h.rounds);
}

/* Directory operations through the ring. */
TEST_F(srv, namespace_ops)
{
	char target[64];
	struct stat st;
	int fd;

	SKIP_WB();

	ASSERT_EQ(0, mkdir(MNT "/d", 0755));
	fd = open(MNT "/d/a", O_CREAT | O_WRONLY, 0600);
	ASSERT_LE(0, fd);
	EXPECT_EQ(3, write(fd, "abc", 3));
	close(fd);
	EXPECT_EQ(0, rename(MNT "/d/a", MNT "/d/b"));
	EXPECT_EQ(0, symlink("b", MNT "/d/s"));
	EXPECT_EQ(1, readlink(MNT "/d/s", target, sizeof(target)));
	EXPECT_EQ(0, link(MNT "/d/b", MNT "/d/h"));
	EXPECT_EQ(0, stat(MNT "/d/h", &st));
	EXPECT_EQ(2, st.st_nlink);
	EXPECT_EQ(3, st.st_size);
	EXPECT_EQ(0, stat(BACK "/d/b", &st));
	EXPECT_EQ(0, unlink(MNT "/d/b"));
	EXPECT_EQ(0, unlink(MNT "/d/h"));
	EXPECT_EQ(0, unlink(MNT "/d/s"));
	EXPECT_EQ(0, rmdir(MNT "/d"));
	EXPECT_EQ(-1, stat(BACK "/d", &st));
}

TEST_F_TIMEOUT(srv, random_ops, 600)
{
	long classic, sent;

	furing_fsx(_metadata, MNT, BACK);
	self->data = 1;
	if (variant->intree)
		return;
	ASSERT_EQ(0, furing_stats(self->id, &classic, &sent));
	TH_LOG("requests: %ld over the ring, %ld classic", sent, classic);
	if (variant->ring)
		EXPECT_LT(FSX_OPS / 10, sent);
}

/*
 * No stale memory: a short READ into the page cache leaves zeros past EOF
 * (mapped, after an extending truncate, and O_DIRECT leaves the user's buffer
 * alone past the data), with memory full of a pattern just before.
 */
TEST_F_TIMEOUT(srv, stale_tails, 300)
{
	char why[512] = "";

	EXPECT_EQ(0, furing_stale_check(MNT, BACK, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
}

/*
 * Zero-copy with a server that never touches the registered pages and just
 * commits: reads and writes "succeed" with unspecified data, and every
 * registration, folio reference and pin still goes back.
 */
FIXTURE(notouch) {
	pid_t pid;
	long pins;
};

FIXTURE_SETUP(notouch)
{
	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_EQ(0, furing_wait_unused(10));
	self->pins = furing_pins();
	ASSERT_LE(0, self->pins);
	self->pid = furing_server_start(BACK, MNT, "--zero-copy", "--zc-no-touch", NULL);
	ASSERT_LT(0, self->pid);
}

FIXTURE_TEARDOWN(notouch)
{
	int status;

	umount2(MNT, 0);
	if (self->pid > 0)
		waitpid(self->pid, &status, 0);
}

TEST_F(notouch, commit_without_touching)
{
	struct furing_qstats st;
	char *buf;
	int fd, i;

	ASSERT_EQ(0, posix_memalign((void **)&buf, 4096, MAX_WRITE));
	memset(buf, 'z', MAX_WRITE);
	fd = open(MNT "/f", O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	ASSERT_LE(0, fd);
	for (i = 0; i < 16; i++) {
		EXPECT_EQ(MAX_WRITE, pwrite(fd, buf, MAX_WRITE, (off_t)i * MAX_WRITE));
		EXPECT_EQ(MAX_WRITE, pread(fd, buf, MAX_WRITE, 0));
	}
	close(fd);
	free(buf);
	ASSERT_EQ(0, furing_queue_stats(furing_conn_id(MNT), &st));
	EXPECT_LE(32, st.zc_reqs);
	ASSERT_EQ(0, umount2(MNT, 0));
	EXPECT_EQ(0, furing_wait_unused(10));
	EXPECT_EQ(0, furing_zc_live());
	EXPECT_EQ(self->pins, furing_pins());
}

TEST_HARNESS_MAIN
