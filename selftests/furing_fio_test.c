// SPDX-License-Identifier: GPL-2.0
/*
 * An outside-written checker over every transport: fio writes two files with
 * mixed block sizes and a crc32c header in every block (--verify=crc32c), with
 * O_DIRECT, buffered and mmap I/O, and checks them three times: as it writes,
 * through the mount again after the page cache is dropped, and in the backing
 * directory, so a block is right where the server stored it and not only in the
 * client's cache. Servers: furing-server in every mode, with the writeback cache
 * off and on, and libfuse's passthrough_hp on furing's ring.
 */
#define _GNU_SOURCE
#include <time.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include "furing_test.h"
#include <linux/furing.h>
#include "kselftest_harness.h"

#define MNT "/tmp/furing-fio-mnt"
#define BACK "/tmp/furing-fio-back"
#define LOG "/tmp/furing-fio.log"
#define SRV_LOG "/tmp/furing-fio-srv.log"

/*
 * Each job's file: 8 MiB, 2 MiB on the debug kernel (KASAN and friends make it
 * several times slower; the blocks still range over every size).
 */
#define FILE_MIB (furing_debug_kernel() ? 2 : 8)
/* A byte inside the second job's file, which fio's random map writes whole. */
#define CORRUPT_AT (((off_t)FILE_MIB << 19) + 4321)

#define PINNED (FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | FURING_URING_PINNED_BUFFERS)

FIXTURE(fio) {
	pid_t pid;	/* furing-server, or furing-launch for passthrough_hp */
	long id;
};

FIXTURE_VARIANT(fio) {
	const char *args[8];	/* furing-server's options (NULL-terminated) */
	int hp;			/* passthrough_hp instead, with args[0] */
	int ring;		/* requests must go over the ring */
	uint64_t flags;		/* the queues' REGISTER flags */
};

FIXTURE_VARIANT_ADD(fio, classic) { .args = { "--no-uring" } };
FIXTURE_VARIANT_ADD(fio, ring) { .ring = 1 };
FIXTURE_VARIANT_ADD(fio, bufring) {
	.args = { "--bufring" }, .ring = 1, .flags = FURING_URING_BUFRING,
};
FIXTURE_VARIANT_ADD(fio, pinned_headers) {
	.args = { "--bufring", "--pin-headers" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS,
};
FIXTURE_VARIANT_ADD(fio, pinned_buffers) {
	.args = { "--bufring", "--pin-buffers" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_BUFFERS,
};
FIXTURE_VARIANT_ADD(fio, zero_copy) {
	.args = { "--zero-copy" }, .ring = 1, .flags = PINNED | FURING_URING_ZERO_COPY,
};
/* Buffer classes: 4 KiB buffers beside a few of 1 MiB; strict with a class between. */
FIXTURE_VARIANT_ADD(fio, classes) {
	.args = { "--bufring", "--buf-class=4096x16", "--buf-class=1048576x2" }, .ring = 1,
	.flags = FURING_URING_BUFRING | FURING_URING_BUF_CLASSES,
};
FIXTURE_VARIANT_ADD(fio, pinned_strict_classes) {
	.args = { "--bufring", "--pin-headers", "--pin-buffers", "--buf-class=4096x8",
		  "--buf-class=65536x4", "--buf-class=1048576x2", "--buf-class-strict" },
	.ring = 1,
	.flags = PINNED | FURING_URING_BUF_CLASSES | FURING_URING_BUF_CLASSES_STRICT,
};
FIXTURE_VARIANT_ADD(fio, wb_classic) { .args = { "--writeback-cache", "--no-uring" } };
FIXTURE_VARIANT_ADD(fio, wb_ring) { .args = { "--writeback-cache" }, .ring = 1 };
FIXTURE_VARIANT_ADD(fio, wb_bufring) {
	.args = { "--writeback-cache", "--bufring" }, .ring = 1, .flags = FURING_URING_BUFRING,
};
FIXTURE_VARIANT_ADD(fio, wb_pinned) {
	.args = { "--writeback-cache", "--bufring", "--pin-headers", "--pin-buffers" },
	.ring = 1, .flags = PINNED,
};
FIXTURE_VARIANT_ADD(fio, wb_zero_copy) {
	.args = { "--writeback-cache", "--zero-copy" }, .ring = 1,
	.flags = PINNED | FURING_URING_ZERO_COPY,
};
/* passthrough_hp turns the writeback cache on unless --nocache. */
FIXTURE_VARIANT_ADD(fio, hp_wb) { .hp = 1, .ring = 1 };
FIXTURE_VARIANT_ADD(fio, hp_nocache) { .hp = 1, .args = { "--nocache" }, .ring = 1 };

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

/* Prints the last 3 KiB of @path (fio's or the server's output). */
static void dump(struct __test_metadata *_metadata, const char *path)
{
	static char buf[65536];
	int n = read_text(path, buf, sizeof(buf));

	if (n > 0)
		TH_LOG("%s:\n%s", path, buf + (n > 3072 ? n - 3072 : 0));
}

/* passthrough_hp on furing's ring, with @opt (or none) among its options. */
static pid_t hp_start(const char *opt)
{
	const char *argv[16] = { "furing-launch", "-o", "default_permissions", MNT,
				 "passthrough_hp", "--foreground", "--nopassthrough",
				 "-o", "io_uring" };
	int argc = 9;

	if (opt)
		argv[argc++] = opt;
	argv[argc++] = BACK;
	argv[argc++] = "@fd";
	argv[argc] = NULL;
	return furing_spawn(SRV_LOG, "furing-launch", argv);
}

FIXTURE_SETUP(fio)
{
	struct furing_qstats st = { 0 };
	int i;

	ASSERT_EQ(0, furing_ensure_loaded());
	/* Each test starts from empty directories: fio's files are its own. */
	ASSERT_EQ(0, system("rm -rf " BACK " " MNT));
	mkdir(MNT, 0755);
	mkdir(BACK, 0755);
	if (variant->hp) {
		self->pid = hp_start(variant->args[0]);
		ASSERT_LT(0, self->pid);
		for (i = 0; i < 2000 && (self->id = furing_conn_id(MNT)) < 0; i++)
			sleep_ms(10);
	} else {
		self->pid = furing_server_start(BACK, MNT, variant->args[0], variant->args[1],
					       variant->args[2], variant->args[3], variant->args[4],
					       variant->args[5], variant->args[6], NULL);
		ASSERT_LT(0, self->pid);
		self->id = furing_conn_id(MNT);
	}
	ASSERT_LE(0, self->id);
	if (variant->ring) {
		ASSERT_EQ(0, furing_wait_queues(self->id, &st)) {
			if (variant->hp)
				dump(_metadata, SRV_LOG);
		}
		ASSERT_EQ(variant->flags, st.flags);
	}
}

FIXTURE_TEARDOWN(fio)
{
	int status;

	umount2(MNT, 0);
	if (self->pid > 0) {
		waitpid(self->pid, &status, 0);
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			TH_LOG("server status %#x", status);
		}
	}
	/* The server's ring, device, pins and registrations all went back. */
	EXPECT_EQ(0, furing_wait_unused(10));
	EXPECT_EQ(0, furing_zc_live());
	EXPECT_EQ(0, furing_pins());
}

/*
 * Runs fio's checker (furing_fio_verify()) on @dir with the options every phase
 * shares, two jobs of FILE_MIB each, and then @extra (NULL-terminated); 0 when
 * fio exits 0 (else it prints fio's output, unless @_metadata is NULL: a
 * failure expected).
 */
static int run_fio(struct __test_metadata *_metadata, const char *dir, const char *engine,
		   int direct, ...)
{
	char eng_opt[64], direct_opt[32], size_opt[32];
	const char *opts[] = {
		"--name=verify", size_opt, "--numjobs=2", eng_opt, direct_opt,
		"--group_reporting", NULL,
	};
	va_list ap;
	int status;
	pid_t pid;

	snprintf(size_opt, sizeof(size_opt), "--size=%dm", FILE_MIB);
	snprintf(eng_opt, sizeof(eng_opt), "--ioengine=%s", engine);
	snprintf(direct_opt, sizeof(direct_opt), "--direct=%d", direct);
	va_start(ap, direct);
	pid = furing_fio_verify(LOG, dir, opts, ap);
	va_end(ap);
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (_metadata) {
		TH_LOG("fio on %s (%s, direct=%d) failed, status %#x", dir, engine, direct,
		       status);
		dump(_metadata, LOG);
	}
	return -1;
}

/*
 * The three checks of one engine: fio's own verify pass as it writes, the
 * mount again with a cold page cache, and the backing files themselves.
 */
static void check_engine(struct __test_metadata *_metadata, FIXTURE_DATA(fio) *self,
			 const FIXTURE_VARIANT(fio) *variant, const char *engine, int direct)
{
	struct furing_qstats before, after;
	char out[3072], c;
	int fd;

	if (variant->ring)
		ASSERT_EQ(0, furing_queue_stats(self->id, &before));
	ASSERT_EQ(0, run_fio(_metadata, MNT, engine, direct, "--end_fsync=1", NULL));
	ASSERT_EQ(0, write_text("/proc/sys/vm/drop_caches", "3"));
	ASSERT_EQ(0, run_fio(_metadata, MNT, engine, direct, "--verify_only", NULL));
	ASSERT_EQ(0, run_fio(_metadata, BACK, "psync", 0, "--verify_only", NULL));
	if (variant->ring)
		ASSERT_EQ(0, furing_queue_stats(self->id, &after));

	/* The checker can fail: one byte changed behind the mount is found through it. */
	fd = open(BACK "/verify.1.0", O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, pread(fd, &c, 1, CORRUPT_AT));
	c ^= 0x5a;
	ASSERT_EQ(1, pwrite(fd, &c, 1, CORRUPT_AT));
	close(fd);
	ASSERT_EQ(0, write_text("/proc/sys/vm/drop_caches", "3"));
	ASSERT_NE(0, run_fio(NULL, MNT, engine, direct, "--verify_only", NULL));
	ASSERT_LT(0, read_text(LOG, out, sizeof(out)));
	EXPECT_NE(NULL, strstr(out, "verify failed")) {
		TH_LOG("fio found no bad block:\n%s", out);
	}
	if (!variant->ring)
		return;
	/* The data went over the ring (and, zero-copy, through registered pages). */
	TH_LOG("%s: %ld requests over the ring, %ld classic, %ld zero-copied", engine,
	       after.sent - before.sent, after.classic - before.classic,
	       after.zc_reqs - before.zc_reqs);
	EXPECT_LE(25 * FILE_MIB, after.sent - before.sent);
	if (variant->flags & FURING_URING_ZERO_COPY)
		EXPECT_LT(before.zc_reqs, after.zc_reqs);
}

TEST_F_TIMEOUT(fio, direct, 600)
{
	check_engine(_metadata, self, variant, "psync", 1);
}

TEST_F_TIMEOUT(fio, buffered, 600)
{
	check_engine(_metadata, self, variant, "psync", 0);
}

TEST_F_TIMEOUT(fio, mmap, 600)
{
	check_engine(_metadata, self, variant, "mmap", 0);
}

TEST_HARNESS_MAIN
