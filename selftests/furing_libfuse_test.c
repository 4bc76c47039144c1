// SPDX-License-Identifier: GPL-2.0
/*
 * libfuse 3.18 servers on furing: example/passthrough_hp (built from the fuse3
 * source package with io-uring on, scripts/libfuse.sh) runs under
 * furing-launch with "-o io_uring", serving a tmpfs directory:
 *  - unmodified: the released library, furing's basic mode;
 *  - bufring, bufring_few, pinned, zero_copy: passthrough_hp-furing, the same
 *    source with the patches of scripts/libfuse/, in furing's modes (-o
 *    io_uring_bufring, io_uring_bufs=2 for 8 entries, io_uring_pinned,
 *    io_uring_zero_copy);
 *  - buf_class, buf_class_pinned, buf_class_strict, buf_class_zero_copy: the
 *    same with payload buffer classes (-o io_uring_buf_class=4096x16:4194304x2,
 *    many small buffers and two of passthrough_hp's 4 MiB max_write; pinned;
 *    three classes with io_uring_buf_class_strict; zero-copy).
 * A file workload goes through the mount; debugfs proves the ring carried
 * every request in the variant's mode (queue flags, payload buffers and their
 * classes, pinned bytes, zero-copied requests) and that no buffer is left in
 * use; umount ends the server with status 0; kill -9 of the server leaves the
 * launcher to detach the mount, and no pin behind. Options the library must
 * refuse (a mode that cannot start, classes that cannot hold max_write, a
 * malformed class list) end the server with a message, never serving.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <linux/furing.h>
#include "furing_test.h"
#include "kselftest_harness.h"
#include "furing_fsx.h"

#define MNT "/tmp/furing-hp-mnt"
#define BACK "/tmp/furing-hp-back"
#define LOG "/tmp/furing-hp.log"
/* libfuse's default io_uring_q_depth: entries per queue */
#define HP_DEPTH 8

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

/* Prints the launcher's and the server's output. */
static void dump_log(struct __test_metadata *_metadata)
{
	char buf[4096];
	int n = read_text(LOG, buf, sizeof(buf));

	if (n > 0)
		TH_LOG("server output:\n%s", buf);
}

FIXTURE(hp) {
	pid_t pid;	/* furing-launch */
	long id;
	long pins;	/* pages held pinned before the server started */
};

FIXTURE_VARIANT(hp) {
	const char *server;	/* passthrough_hp, or the patched passthrough_hp-furing */
	const char *opts;	/* -o options: io_uring and the mode's */
	unsigned long flags;	/* the queues' REGISTER flags */
	long bufs;		/* payload buffers per queue (0: basic) */
	/* FURING_URING_BUF_CLASSES: each class's buffer size and buffers (0: ends) */
	long class_size[FURING_URING_MAX_BUF_CLASSES];
	long class_bufs[FURING_URING_MAX_BUF_CLASSES];
};

#define ALL_PINNED (FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | \
		    FURING_URING_PINNED_BUFFERS)

FIXTURE_VARIANT_ADD(hp, unmodified) {
	.server = "passthrough_hp", .opts = "io_uring",
};
FIXTURE_VARIANT_ADD(hp, bufring) {
	.server = "passthrough_hp-furing", .opts = "io_uring,io_uring_bufring",
	.flags = FURING_URING_BUFRING, .bufs = 8,
};
/* fewer buffers than entries: requests wait for a buffer */
FIXTURE_VARIANT_ADD(hp, bufring_few) {
	.server = "passthrough_hp-furing", .opts = "io_uring,io_uring_bufring,io_uring_bufs=2",
	.flags = FURING_URING_BUFRING, .bufs = 2,
};
FIXTURE_VARIANT_ADD(hp, pinned) {
	.server = "passthrough_hp-furing", .opts = "io_uring,io_uring_pinned",
	.flags = ALL_PINNED, .bufs = 8,
};
FIXTURE_VARIANT_ADD(hp, zero_copy) {
	.server = "passthrough_hp-furing", .opts = "io_uring,io_uring_zero_copy",
	.flags = ALL_PINNED | FURING_URING_ZERO_COPY, .bufs = 8,
};
/*
 * Buffer classes: 16 buffers of 4 KiB for metadata and small I/O, two of
 * passthrough_hp's max_write (4 MiB) for the large reads and writes, where
 * one class would be 8 buffers of 4 MiB.
 */
FIXTURE_VARIANT_ADD(hp, buf_class) {
	.server = "passthrough_hp-furing",
	.opts = "io_uring,io_uring_buf_class=4096x16:4194304x2",
	.flags = FURING_URING_BUFRING | FURING_URING_BUF_CLASSES,
	.bufs = 18,
	.class_size = { 4096, 4 << 20 },
	.class_bufs = { 16, 2 },
};
FIXTURE_VARIANT_ADD(hp, buf_class_pinned) {
	.server = "passthrough_hp-furing",
	.opts = "io_uring,io_uring_pinned,io_uring_buf_class=4kx16:4mx2",
	.flags = ALL_PINNED | FURING_URING_BUF_CLASSES,
	.bufs = 18,
	.class_size = { 4096, 4 << 20 },
	.class_bufs = { 16, 2 },
};
/* strict: a request takes only its own class, and waits for it */
FIXTURE_VARIANT_ADD(hp, buf_class_strict) {
	.server = "passthrough_hp-furing",
	.opts = "io_uring,io_uring_buf_class=4096x4:65536x4:4194304x1,io_uring_buf_class_strict",
	.flags = FURING_URING_BUFRING | FURING_URING_BUF_CLASSES |
		 FURING_URING_BUF_CLASSES_STRICT,
	.bufs = 9,
	.class_size = { 4096, 65536, 4 << 20 },
	.class_bufs = { 4, 4, 1 },
};
/* zero-copy: the large reads and writes take no buffer at all */
FIXTURE_VARIANT_ADD(hp, buf_class_zero_copy) {
	.server = "passthrough_hp-furing",
	.opts = "io_uring,io_uring_zero_copy,io_uring_buf_class=4096x8:4194304x1",
	.flags = ALL_PINNED | FURING_URING_ZERO_COPY | FURING_URING_BUF_CLASSES,
	.bufs = 9,
	.class_size = { 4096, 4 << 20 },
	.class_bufs = { 8, 1 },
};

/*
 * The classes file shows the variant's classes on each of @queues queues (one
 * class of its buffers of max_write without FURING_URING_BUF_CLASSES, none in
 * basic mode); with @idle, none of their buffers in use. Logs the waits;
 * returns the bytes of all the classes' buffers.
 */
static long check_classes(struct __test_metadata *_metadata,
			  const FIXTURE_VARIANT(hp) *variant, long id, long queues, int idle)
{
	struct furing_class c[64];
	long nr = 0, bytes = 0, waits[FURING_URING_MAX_BUF_CLASSES] = { 0 };
	int n = furing_classes(id, c, 64), i;

	ASSERT_LE(0, n);
	while (nr < FURING_URING_MAX_BUF_CLASSES && variant->class_size[nr])
		nr++;
	if (!(variant->flags & FURING_URING_BUF_CLASSES))
		nr = variant->bufs ? 1 : 0;
	EXPECT_EQ(nr * queues, n);
	for (i = 0; i < n; i++) {
		ASSERT_GT(nr, c[i].cls);
		if (variant->flags & FURING_URING_BUF_CLASSES) {
			EXPECT_EQ(variant->class_size[c[i].cls], c[i].buf_size);
			EXPECT_EQ(variant->class_bufs[c[i].cls], c[i].bufs);
		} else {
			EXPECT_EQ(variant->bufs, c[i].bufs);
		}
		if (idle)
			EXPECT_EQ(0, c[i].in_use) {
				TH_LOG("qid %ld class %ld: %ld buffers still in use", c[i].qid,
				       c[i].cls, c[i].in_use);
			}
		waits[c[i].cls] += c[i].waits;
		bytes += c[i].buf_size * c[i].bufs;
	}
	if (variant->flags & FURING_URING_BUF_CLASSES)
		TH_LOG("classes: %ld per queue; requests that waited: %ld %ld %ld %ld", nr,
		       waits[0], waits[1], waits[2], waits[3]);
	return bytes;
}

FIXTURE_SETUP(hp)
{
	const char *argv[] = { "furing-launch", "-o", "default_permissions", MNT, variant->server,
			       "--foreground", "--nopassthrough", "-o", variant->opts, BACK, "@fd",
			       NULL };
	struct furing_qstats st = { 0 };
	long page = sysconf(_SC_PAGESIZE), bytes;
	int i;

	ASSERT_EQ(0, furing_ensure_loaded());
	mkdir(MNT, 0755);
	mkdir(BACK, 0755);
	self->pins = furing_pins();
	self->pid = furing_spawn(LOG, "furing-launch", argv);
	ASSERT_LE(0, self->pid);
	/* Mounted, then every CPU's queue registered (libfuse: one per CPU, 8 deep). */
	for (i = 0; i < 2000 && (self->id = furing_conn_id(MNT)) < 0; i++)
		sleep_ms(10);
	ASSERT_LE(0, self->id);
	ASSERT_EQ(0, furing_wait_queues(self->id, &st)) {
		dump_log(_metadata);
	}
	/* and every queue's every entry */
	ASSERT_EQ(0, furing_wait_entries(self->id, NULL, st.queues * HP_DEPTH));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	TH_LOG("%s registered %ld entries on %ld queues, flags %#lx, %ld buffers, %ld bytes pinned",
	       variant->server, st.entries, st.queues, st.flags, st.bufs, st.pinned);
	/* The mode is the variant's: else libfuse fell back to basic or read(). */
	ASSERT_EQ(variant->flags, st.flags) {
		dump_log(_metadata);
	}
	ASSERT_EQ(variant->bufs * st.queues, st.bufs);
	ASSERT_EQ(!!(variant->flags & FURING_URING_PINNED_BUFFERS), st.pinned > 0);
	bytes = check_classes(_metadata, variant, self->id, st.queues, 0);
	/* pinned: each queue's headers region (page aligned) and every class's region */
	if (variant->flags & FURING_URING_PINNED_BUFFERS)
		EXPECT_EQ(st.queues * ((HP_DEPTH * 288 + page - 1) / page * page) + bytes,
			  st.pinned);
}

FIXTURE_TEARDOWN(hp)
{
	int status;

	umount2(MNT, 0);
	if (self->pid > 0 && waitpid(self->pid, &status, 0) == self->pid &&
	    !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		TH_LOG("launcher status %#x", status);
		dump_log(_metadata);
		_metadata->exit_code = KSFT_FAIL;
	}
	/* The server's ring, device and connection are all gone, and its pins. */
	EXPECT_EQ(0, furing_wait_unused(10));
	EXPECT_EQ(self->pins, furing_pins());
}

static void fill(char *buf, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = seed >> 16;
	}
}

/* @len bytes written at @off through the mount read back the same both ways. */
static int roundtrip(const char *name, size_t len, off_t off, int direct)
{
	char mpath[256], bpath[256], *w, *r;
	int fd, ok = 0;

	snprintf(mpath, sizeof(mpath), MNT "/%s", name);
	snprintf(bpath, sizeof(bpath), BACK "/%s", name);
	if (posix_memalign((void **)&w, 4096, len + 4096) ||
	    posix_memalign((void **)&r, 4096, len + 4096))
		return 0;
	fill(w, len, len ^ off);
	fd = open(mpath, O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0644);
	if (fd < 0)
		goto out;
	if (pwrite(fd, w, len, off) != (ssize_t)len || fsync(fd) ||
	    pread(fd, r, len, off) != (ssize_t)len || memcmp(w, r, len)) {
		close(fd);
		goto out;
	}
	close(fd);
	fd = open(bpath, O_RDONLY);
	if (fd < 0)
		goto out;
	memset(r, 0, len);
	ok = pread(fd, r, len, off) == (ssize_t)len && !memcmp(w, r, len);
	close(fd);
out:
	free(w);
	free(r);
	return ok;
}

TEST_F_TIMEOUT(hp, file_workload, 300)
{
	struct furing_qstats before, after;
	char path[256], target[64];
	struct statfs sfs;
	struct dirent *de;
	struct stat st;
	int i, n, fd;
	DIR *d;

	ASSERT_EQ(0, furing_queue_stats(self->id, &before));

	EXPECT_TRUE(roundtrip("small", 1, 0, 0));
	EXPECT_TRUE(roundtrip("page", 4097, 4095, 0));
	EXPECT_TRUE(roundtrip("big", 4 << 20, 0, 0));
	EXPECT_TRUE(roundtrip("direct", 1 << 20, 8192, 1));
	EXPECT_TRUE(roundtrip("direct-big", 3 << 20, 0, 1));

	ASSERT_EQ(0, mkdir(MNT "/dir", 0755));
	for (i = 0; i < 100; i++) {
		snprintf(path, sizeof(path), MNT "/dir/f%03d", i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		ASSERT_LE(0, fd);
		ASSERT_EQ(4, write(fd, "data", 4));
		close(fd);
	}
	d = opendir(MNT "/dir");
	ASSERT_NE(NULL, d);
	for (n = 0; (de = readdir(d));)
		n += de->d_name[0] == 'f';
	closedir(d);
	EXPECT_EQ(100, n);
	EXPECT_EQ(0, rename(MNT "/dir/f000", MNT "/dir/g000"));
	EXPECT_EQ(0, stat(MNT "/dir/g000", &st));
	EXPECT_EQ(4, st.st_size);
	EXPECT_EQ(0, symlink("g000", MNT "/dir/link"));
	EXPECT_EQ(4, readlink(MNT "/dir/link", target, sizeof(target)));
	EXPECT_EQ(0, link(MNT "/dir/g000", MNT "/dir/hard"));
	EXPECT_EQ(0, stat(MNT "/dir/hard", &st));
	EXPECT_EQ(2, st.st_nlink);
	EXPECT_EQ(0, truncate(MNT "/dir/hard", 1));
	EXPECT_EQ(0, statfs(MNT, &sfs));
	EXPECT_EQ(0x65735546, sfs.f_type); /* FUSE_SUPER_MAGIC */
	for (i = 1; i < 100; i++) {
		snprintf(path, sizeof(path), MNT "/dir/f%03d", i);
		ASSERT_EQ(0, unlink(path));
	}
	EXPECT_EQ(0, unlink(MNT "/dir/g000"));
	EXPECT_EQ(0, unlink(MNT "/dir/hard"));
	EXPECT_EQ(0, unlink(MNT "/dir/link"));
	EXPECT_EQ(0, rmdir(MNT "/dir"));
	EXPECT_EQ(-1, stat(BACK "/dir", &st));

	/* Every request of the workload went over the ring, in the variant's mode. */
	ASSERT_EQ(0, furing_queue_stats(self->id, &after));
	TH_LOG("workload: %ld requests over the ring, %ld classic, %ld zero-copied (%ld bytes),"
	       " at most %ld waited for a buffer", after.sent - before.sent,
	       after.classic - before.classic, after.zc_reqs - before.zc_reqs,
	       after.zc_bytes - before.zc_bytes, after.buf_wait_max);
	EXPECT_LE(400, after.sent - before.sent);
	EXPECT_EQ(before.classic, after.classic);
	EXPECT_EQ(0, after.bufs_used);
	check_classes(_metadata, variant, self->id, after.queues, 1);
	/* the 1 MiB and 3 MiB direct I/O is zero-copied: 8 MiB at the least */
	if (variant->flags & FURING_URING_ZERO_COPY) {
		EXPECT_LE(8 << 20, after.zc_bytes - before.zc_bytes);
	} else {
		EXPECT_EQ(0, after.zc_reqs);
	}
}

/*
 * passthrough_hp keeps the writeback cache on (no --nocache): no stale memory
 * past EOF, and random partial writes land in the backing files as the model
 * says.
 */
TEST_F_TIMEOUT(hp, stale_tails, 300)
{
	char why[512] = "";

	EXPECT_EQ(0, furing_stale_check(MNT, BACK, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
}

TEST_F_TIMEOUT(hp, random_ops, 600)
{
	furing_fsx(_metadata, MNT, BACK);
}

/* The first child of @parent found in /proc, or -1. */
static pid_t child_of(pid_t parent)
{
	char path[300], buf[512], *p;
	struct dirent *de;
	pid_t found = -1;
	int ppid;
	DIR *d = opendir("/proc");

	while (d && found < 0 && (de = readdir(d))) {
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if (de->d_name[0] < '1' || de->d_name[0] > '9' ||
		    read_text(path, buf, sizeof(buf)) <= 0)
			continue;
		/* pid (comm) state ppid ...; comm may hold spaces and parentheses */
		p = strrchr(buf, ')');
		if (p && sscanf(p + 1, " %*c %d", &ppid) == 1 && ppid == parent)
			found = atoi(de->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* kill -9 of the server: the launcher sees it and detaches the dead mount. */
TEST_F_TIMEOUT(hp, server_killed, 120)
{
	int status;
	pid_t srv;

	srv = child_of(self->pid);
	ASSERT_LT(0, srv);
	ASSERT_EQ(0, kill(srv, SIGKILL));
	ASSERT_EQ(self->pid, waitpid(self->pid, &status, 0));
	self->pid = 0;
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL) {
		TH_LOG("launcher status %#x", status);
	}
	EXPECT_EQ(-1, furing_conn_id(MNT));
}

/*
 * furing options the library must refuse: the server ends with a message
 * (@says) and a non-zero status, without serving; libfuse does not fall back
 * to basic io-uring or read()/write() and serve in another mode.
 */
FIXTURE(refused) {
};

FIXTURE_VARIANT(refused) {
	const char *opts;
	const char *says;	/* in the server's output */
};

/* a mode that cannot start: more buffers than a buffer id names */
FIXTURE_VARIANT_ADD(refused, bufs) {
	"io_uring,io_uring_bufring,io_uring_bufs=65535", "did not start",
};
/* the largest class (1 MiB) does not hold passthrough_hp's max_write (4 MiB) */
FIXTURE_VARIANT_ADD(refused, class_too_small) {
	"io_uring,io_uring_buf_class=4096x16:1048576x4", "does not hold the largest payload",
};
FIXTURE_VARIANT_ADD(refused, class_with_bufs) {
	"io_uring,io_uring_bufs=4,io_uring_buf_class=4096x16:4194304x2", "not with io_uring_bufs",
};
FIXTURE_VARIANT_ADD(refused, class_strict_alone) {
	"io_uring,io_uring_bufring,io_uring_buf_class_strict", "needs io_uring_buf_class",
};
/* a malformed list fails fuse_session_new(): the server never gets to INIT */
FIXTURE_VARIANT_ADD(refused, class_malformed) {
	"io_uring,io_uring_buf_class=4194304x2:4096x16", "sizes do not strictly increase",
};
FIXTURE_VARIANT_ADD(refused, class_too_many) {
	"io_uring,io_uring_buf_class=1kx1:2kx1:4kx1:8kx1:4mx1", "more than 4 classes",
};

FIXTURE_SETUP(refused)
{
	ASSERT_EQ(0, furing_ensure_loaded());
	mkdir(MNT, 0755);
	mkdir(BACK, 0755);
}

FIXTURE_TEARDOWN(refused)
{
}

TEST_F(refused, mode_refused)
{
	const char *argv[] = { "furing-launch", MNT, "passthrough_hp-furing", "--foreground",
			       "--nopassthrough", "-o", variant->opts, BACK, "@fd", NULL };
	char log[4096] = "";
	int status = 0, i;
	pid_t pid;

	pid = furing_spawn(LOG, "furing-launch", argv);
	ASSERT_LT(0, pid);
	for (i = 0; i < 2000 && waitpid(pid, &status, WNOHANG) == 0; i++)
		sleep_ms(10);
	if (i == 2000) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		umount2(MNT, MNT_DETACH);
	}
	read_text(LOG, log, sizeof(log));
	ASSERT_GT(2000, i) {
		TH_LOG("still serving after 20 s:\n%s", log);
	}
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) {
		TH_LOG("launcher status %#x", status);
	}
	EXPECT_NE(NULL, strstr(log, variant->says)) {
		TH_LOG("server output:\n%s", log);
	}
	EXPECT_EQ(-1, furing_conn_id(MNT));
	EXPECT_EQ(0, furing_wait_unused(10));
}

TEST_HARNESS_MAIN
