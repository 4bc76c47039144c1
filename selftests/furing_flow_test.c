// SPDX-License-Identifier: GPL-2.0
/*
 * Flow control and interrupts on a furing mount served by furing-server over
 * the ring. The server waits --delay-ms before running each request, so
 * requests stay in its hands long enough to be seen in debugfs ("in_flight":
 * entries the server holds) and to be interrupted.
 *  - bg: background requests (an O_DIRECT read split into 1 MiB async READs)
 *    never exceed the server's max_background in flight; with a high limit the
 *    same read shows them side by side, so the check can see a violation.
 *  - starved: 8 entries per queue share 2 pinned payload buffers (or 2 of 1
 *    MiB beside 4 small ones, in buffer classes); 8 clients of 1 MiB each
 *    wait for buffers and all finish, also when interrupted, when the
 *    connection is aborted and when the server is killed, and the pins go
 *    back.
 *  - slow: a signal to a client waiting on a request reaches the server as
 *    FUSE_INTERRUPT and the request ends with EINTR, also when the request was
 *    still queued for a ring entry when the signal came; SIGKILL of a client
 *    mid-request does not wait the request out; the mount keeps working.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include "furing_test.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-flow-mnt"
#define BACK "/tmp/furing-flow-back"
#define DELAY_MS 1000

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

/* Requests the server of connection @id holds now, or -1. */
static long in_flight(long id)
{
	struct furing_qstats st;

	if (furing_queue_stats(id, &st))
		return -1;
	return st.inflight;
}

/* Waits (up to 10 s) until the server holds at least @n requests. */
static int wait_in_flight(long id, long n)
{
	long end = now_ms() + 10000;

	while (in_flight(id) < n) {
		if (now_ms() > end)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

/* Waits (up to 10 s) until every entry is back waiting for a request. */
static int wait_idle(long id)
{
	long end = now_ms() + 10000;

	while (in_flight(id) != 0) {
		if (now_ms() > end)
			return -1;
		sleep_ms(5);
	}
	return 0;
}

static void stop_server(struct __test_metadata *_metadata, pid_t pid)
{
	int status;

	umount2(MNT, 0);
	if (pid > 0) {
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			TH_LOG("server status %#x", status);
		}
	}
}

/* ------------------------------------------------------------------ */

#define BG_CHUNK (1 << 20)	/* the server's max_write: one READ each */
#define BG_CHUNKS 8

FIXTURE(bg) {
	pid_t pid;
	long id;
};

FIXTURE_VARIANT(bg) {
	const char *max_bg;
	long max_in_flight;	/* at most this many READs in flight */
	long min_in_flight;	/* and at some moment at least this many */
};

FIXTURE_VARIANT_ADD(bg, limit_2) {
	.max_bg = "--max-background=2", .max_in_flight = 2, .min_in_flight = 2,
};

FIXTURE_VARIANT_ADD(bg, limit_16) {
	.max_bg = "--max-background=16", .max_in_flight = BG_CHUNKS, .min_in_flight = 4,
};

FIXTURE_SETUP(bg)
{
	char *buf = malloc(BG_CHUNK);
	int fd, i;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, furing_ensure_loaded());
	mkdir(BACK, 0755);
	fd = open(BACK "/big", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, fd);
	for (i = 0; i < BG_CHUNKS; i++) {
		memset(buf, 'a' + i, BG_CHUNK);
		ASSERT_EQ(BG_CHUNK, write(fd, buf, BG_CHUNK));
	}
	close(fd);
	free(buf);
	self->pid = furing_server_start(BACK, MNT, variant->max_bg, "--delay-ms=200",
					"--depth=16", NULL);
	ASSERT_LT(0, self->pid);
	self->id = furing_conn_id(MNT);
	ASSERT_LE(0, self->id);
}

FIXTURE_TEARDOWN(bg)
{
	stop_server(_metadata, self->pid);
}

struct bg_read {
	int fd;
	char *buf;
	ssize_t ret;
	int done;
};

static void *bg_read_thread(void *arg)
{
	struct bg_read *r = arg;

	r->ret = pread(r->fd, r->buf, BG_CHUNKS * BG_CHUNK, 0);
	__atomic_store_n(&r->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * One O_DIRECT read of 8 MiB: the server negotiated FUSE_ASYNC_DIO, so the
 * kernel sends it as eight 1 MiB READs in the background; in flight at most
 * max_background of them.
 */
TEST_F_TIMEOUT(bg, max_background, 120)
{
	struct bg_read r = { .ret = -1 };
	long n, max = 0, classic, sent0, sent;
	pthread_t th;
	int i;

	r.fd = open(MNT "/big", O_RDONLY | O_DIRECT);
	ASSERT_LE(0, r.fd);
	ASSERT_EQ(0, posix_memalign((void **)&r.buf, 4096, BG_CHUNKS * BG_CHUNK));
	ASSERT_EQ(0, furing_stats(self->id, &classic, &sent0));
	ASSERT_EQ(0, pthread_create(&th, NULL, bg_read_thread, &r));
	while (!__atomic_load_n(&r.done, __ATOMIC_ACQUIRE)) {
		n = in_flight(self->id);
		if (n > max)
			max = n;
		sleep_ms(2);
	}
	pthread_join(th, NULL);
	ASSERT_EQ(BG_CHUNKS * BG_CHUNK, r.ret);
	for (i = 0; i < BG_CHUNKS; i++) {
		EXPECT_EQ('a' + i, r.buf[i * BG_CHUNK]);
		EXPECT_EQ('a' + i, r.buf[(i + 1) * BG_CHUNK - 1]);
	}
	ASSERT_EQ(0, furing_stats(self->id, &classic, &sent));
	TH_LOG("%ld requests over the ring, at most %ld in flight", sent - sent0, max);
	EXPECT_LE(BG_CHUNKS, sent - sent0);
	EXPECT_LE(max, variant->max_in_flight);
	EXPECT_GE(max, variant->min_in_flight);
	close(r.fd);
	free(r.buf);
}

/* ------------------------------------------------------------------ */

FIXTURE(slow) {
	pid_t pid;
	long id;
};

FIXTURE_SETUP(slow)
{
	ASSERT_EQ(0, furing_ensure_loaded());
	/* One entry per queue: a second request on the same CPU waits for it. */
	self->pid = furing_server_start(BACK, MNT, "--delay-ms=1000", "--depth=1", NULL);
	ASSERT_LT(0, self->pid);
	self->id = furing_conn_id(MNT);
	ASSERT_LE(0, self->id);
}

FIXTURE_TEARDOWN(slow)
{
	stop_server(_metadata, self->pid);
}

static void on_sigusr1(int sig __attribute__((unused)))
{
}

struct client {
	const char *path;
	int cpu;
	long start, took;
	int ret, err;
};

/*
 * stat()s @path on @cpu: a GETATTR of the root (its attributes are not
 * cached) and a LOOKUP, each delayed DELAY_MS by the server.
 */
static void *client_thread(void *arg)
{
	struct client *c = arg;
	struct stat st;

	furing_pin_cpu(c->cpu);
	c->start = now_ms();
	c->ret = stat(c->path, &st);
	c->err = errno;
	c->took = now_ms() - c->start;
	return NULL;
}

static void catch_sigusr1(void)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };	/* no SA_RESTART */

	sigaction(SIGUSR1, &sa, NULL);
}

/* A signal to a client whose request the server holds: FUSE_INTERRUPT, EINTR. */
TEST_F_TIMEOUT(slow, interrupt_in_server, 60)
{
	struct client c = { .path = MNT "/a" };
	struct stat st;
	pthread_t th;
	long t;

	catch_sigusr1();
	ASSERT_EQ(0, pthread_create(&th, NULL, client_thread, &c));
	ASSERT_EQ(0, wait_in_flight(self->id, 1));
	ASSERT_EQ(0, pthread_kill(th, SIGUSR1));
	pthread_join(th, NULL);
	EXPECT_EQ(-1, c.ret);
	EXPECT_EQ(EINTR, c.err);
	/* The server answered the interrupt, not the request after its delay. */
	EXPECT_GT(DELAY_MS - 100, c.took) {
		TH_LOG("stat took %ld ms", c.took);
	}
	/* The mount still works: the same lookup now runs to its end. */
	t = now_ms();
	EXPECT_EQ(-1, stat(MNT "/a", &st));
	EXPECT_EQ(ENOENT, errno);
	EXPECT_LE(DELAY_MS, now_ms() - t);
	EXPECT_EQ(0, wait_idle(self->id));
}

/*
 * A signal to a client whose request still waits for the queue's one entry:
 * no FUSE_INTERRUPT can go yet; it goes when the request reaches the server,
 * which then ends it at once instead of after its delay.
 */
TEST_F_TIMEOUT(slow, interrupt_while_queued, 60)
{
	struct client a = { .path = MNT "/a" }, b = { .path = MNT "/b" };
	pthread_t ta, tb;

	catch_sigusr1();
	ASSERT_EQ(0, pthread_create(&ta, NULL, client_thread, &a));
	ASSERT_EQ(0, wait_in_flight(self->id, 1));
	ASSERT_EQ(0, pthread_create(&tb, NULL, client_thread, &b));
	sleep_ms(200);	/* b's LOOKUP queued behind a's (both on CPU 0) */
	ASSERT_EQ(0, pthread_kill(tb, SIGUSR1));
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	EXPECT_EQ(-1, a.ret);
	EXPECT_EQ(ENOENT, a.err);
	EXPECT_EQ(-1, b.ret);
	EXPECT_EQ(EINTR, b.err);
	/* b waited for a's entry (~1 s), then was interrupted at once (a goes on). */
	TH_LOG("a took %ld ms, b took %ld ms", a.took, b.took);
	EXPECT_LT(b.took, 2 * DELAY_MS - 200);
	EXPECT_EQ(0, wait_idle(self->id));
}

/*
 * debugfs wait_us: the time requests waited for the queue's one entry. b
 * starts once a's first request is in the server, so b's first waits for
 * most of a delay, and one of the next two requests for a whole delay: more
 * than a delay in all, and less than the two clients took together.
 */
TEST_F_TIMEOUT(slow, wait_time, 60)
{
	struct client a = { .path = MNT "/a" }, b = { .path = MNT "/b" };
	const char *timing = "/sys/kernel/debug/furing/timing";
	struct furing_qstats st;
	pthread_t ta, tb;

	ASSERT_EQ(0, write_text(timing, "1"));
	ASSERT_EQ(0, pthread_create(&ta, NULL, client_thread, &a));
	ASSERT_EQ(0, wait_in_flight(self->id, 1));
	ASSERT_EQ(0, pthread_create(&tb, NULL, client_thread, &b));
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	EXPECT_EQ(0, write_text(timing, "0"));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	TH_LOG("a took %ld ms, b %ld ms; timed %ld us", a.took, b.took, st.us);
	EXPECT_LE((DELAY_MS - 100) * 1000L, st.us);
	/* No request waited longer than its client took (copies are microseconds). */
	EXPECT_GT((a.took + b.took) * 1000L, st.us);
}

/* SIGKILL of a client mid-request: it dies at once; the mount keeps working. */
TEST_F_TIMEOUT(slow, client_killed, 60)
{
	struct stat st;
	int status;
	pid_t pid;
	long t;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		stat(MNT "/a", &st);
		_exit(0);
	}
	ASSERT_EQ(0, wait_in_flight(self->id, 1));
	t = now_ms();
	ASSERT_EQ(0, kill(pid, SIGKILL));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	EXPECT_GT(DELAY_MS - 100, now_ms() - t);
	EXPECT_EQ(0, mkdir(MNT "/d", 0755));
	EXPECT_EQ(0, stat(MNT "/d", &st));
	EXPECT_EQ(0, rmdir(MNT "/d"));
}

/* ------------------------------------------------------------------ */

#define NR_IO 8

FIXTURE(starved) {
	pid_t pid;
	long id;
	long pins0;
};

FIXTURE_VARIANT(starved) {
	const char *delay;
	int write;	/* the clients write (else read) */
	int direct;	/* O_DIRECT: background READs/WRITEs; else synchronous WRITEs */
	int zc;		/* zero-copy server (reads and writes need no buffer) */
	int classes;	/* buffer classes: 4 of 4 KiB, the 2 of 1 MiB the clients wait for */
	int how;	/* 0: let them finish, 1: signal them, 2: fusectl abort, 3: kill -9 */
};

FIXTURE_VARIANT_ADD(starved, writes) {
	.delay = "--delay-ms=100", .write = 1, .direct = 1, .how = 0,
};
FIXTURE_VARIANT_ADD(starved, reads) {
	.delay = "--delay-ms=100", .write = 0, .direct = 1, .how = 0,
};
FIXTURE_VARIANT_ADD(starved, buffered_writes) {
	.delay = "--delay-ms=100", .write = 1, .direct = 0, .how = 0,
};
/* Synchronous WRITEs can be interrupted (background requests cannot). */
FIXTURE_VARIANT_ADD(starved, interrupted) {
	.delay = "--delay-ms=500", .write = 1, .direct = 0, .how = 1,
};
FIXTURE_VARIANT_ADD(starved, aborted) {
	.delay = "--delay-ms=1000", .write = 0, .direct = 1, .how = 2,
};
FIXTURE_VARIANT_ADD(starved, server_killed) {
	.delay = "--delay-ms=1000", .write = 0, .direct = 1, .how = 3,
};
/* Buffer classes: the 1 MiB ones held and waited for, the small ones beside them. */
FIXTURE_VARIANT_ADD(starved, classes_reads) {
	.delay = "--delay-ms=100", .write = 0, .direct = 1, .classes = 1, .how = 0,
};
FIXTURE_VARIANT_ADD(starved, classes_aborted) {
	.delay = "--delay-ms=1000", .write = 0, .direct = 1, .classes = 1, .how = 2,
};
FIXTURE_VARIANT_ADD(starved, classes_server_killed) {
	.delay = "--delay-ms=1000", .write = 0, .direct = 1, .classes = 1, .how = 3,
};
/* Zero-copy: the same, with the clients' pages registered while the server holds them. */
FIXTURE_VARIANT_ADD(starved, zc_reads) {
	.delay = "--delay-ms=100", .write = 0, .direct = 1, .zc = 1, .how = 0,
};
FIXTURE_VARIANT_ADD(starved, zc_writes) {
	.delay = "--delay-ms=100", .write = 1, .direct = 1, .zc = 1, .how = 0,
};
FIXTURE_VARIANT_ADD(starved, zc_interrupted) {
	.delay = "--delay-ms=500", .write = 1, .direct = 0, .zc = 1, .how = 1,
};
FIXTURE_VARIANT_ADD(starved, zc_aborted) {
	.delay = "--delay-ms=1000", .write = 0, .direct = 1, .zc = 1, .how = 2,
};
FIXTURE_VARIANT_ADD(starved, zc_server_killed) {
	.delay = "--delay-ms=1000", .write = 0, .direct = 1, .zc = 1, .how = 3,
};

FIXTURE_SETUP(starved)
{
	char *buf = malloc(BG_CHUNK);
	int fd, i;

	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_EQ(0, furing_wait_unused(10));
	self->pins0 = furing_pins();
	ASSERT_LE(0, self->pins0);
	mkdir(BACK, 0755);
	fd = open(BACK "/big", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ASSERT_LE(0, fd);
	for (i = 0; i < NR_IO; i++) {
		memset(buf, 'a' + i, BG_CHUNK);
		ASSERT_EQ(BG_CHUNK, write(fd, buf, BG_CHUNK));
	}
	close(fd);
	free(buf);
	if (variant->zc)
		self->pid = furing_server_start(BACK, MNT, "--zero-copy", "--depth=8", "--bufs=2",
						variant->delay, NULL);
	else if (variant->classes)
		self->pid = furing_server_start(BACK, MNT, "--bufring", "--pin-headers",
						"--pin-buffers", "--depth=8", "--buf-class=4096x4",
						"--buf-class=1048576x2", variant->delay, NULL);
	else
		self->pid = furing_server_start(BACK, MNT, "--bufring", "--pin-headers",
						"--pin-buffers", "--depth=8", "--bufs=2",
						variant->delay, NULL);
	ASSERT_LT(0, self->pid);
	self->id = furing_conn_id(MNT);
	ASSERT_LE(0, self->id);
}

FIXTURE_TEARDOWN(starved)
{
	int status;

	umount2(MNT, MNT_DETACH);
	if (self->pid > 0)
		waitpid(self->pid, &status, 0);
	/* Whatever happened, the pinned regions went with the connection. */
	EXPECT_EQ(0, furing_wait_unused(10));
	EXPECT_EQ(self->pins0, furing_pins());
	/* ... and every zero-copy registration with the server's rings. */
	EXPECT_EQ(0, furing_zc_live());
}

struct io {
	int idx, write, flags, fd;
	pthread_barrier_t *start;
	char *buf;
	ssize_t ret;
	int err;
};

/*
 * One 1 MiB read at offset idx MiB of "big" (through the shared @fd), or write
 * of file "w<idx>" (each writer its own file: writes to one file are
 * serialised by the inode lock). All clients start their I/O together, after
 * the files are open, so that what is in flight then is their I/O.
 */
static void *io_thread(void *arg)
{
	struct io *io = arg;
	char path[64];
	int fd = io->fd;

	/* All on CPU 0: one queue's two buffers for every request, however many CPUs. */
	furing_pin_cpu(0);
	if (io->write) {
		snprintf(path, sizeof(path), MNT "/w%d", io->idx);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | io->flags, 0644);
	}
	io->err = errno;
	pthread_barrier_wait(io->start);
	io->ret = -1;
	if (fd < 0)
		return NULL;
	if (io->write) {
		memset(io->buf, 'A' + io->idx, BG_CHUNK);
		io->ret = pwrite(fd, io->buf, BG_CHUNK, 0);
	} else {
		io->ret = pread(fd, io->buf, BG_CHUNK, (off_t)io->idx * BG_CHUNK);
	}
	io->err = errno;
	if (io->write)
		close(fd);
	return NULL;
}

/* The last byte of client @i's data where it should be: in its buffer or file. */
static int io_last_byte(const struct io *io)
{
	char path[64], c = 0;
	int fd;

	if (!io->write)
		return io->buf[BG_CHUNK - 1];
	snprintf(path, sizeof(path), BACK "/w%d", io->idx);
	fd = open(path, O_RDONLY);
	if (fd < 0 || pread(fd, &c, 1, BG_CHUNK - 1) != 1)
		c = 0;
	if (fd >= 0)
		close(fd);
	return c;
}

TEST_F_TIMEOUT(starved, clients, 120)
{
	struct io io[NR_IO];
	pthread_t th[NR_IO];
	struct furing_qstats st;
	pthread_barrier_t start;
	int i, nr_eintr, fd = -1;
	char path[128];

	catch_sigusr1();
	ASSERT_EQ(0, furing_wait_queues(self->id, &st));
	/* 2 large per queue (and 4 small), 8 entries each */
	EXPECT_EQ((variant->classes ? 6 : 2) * st.queues, st.bufs);
	ASSERT_EQ(0, pthread_barrier_init(&start, NULL, NR_IO + 1));
	if (!variant->write) {
		fd = open(MNT "/big", O_RDONLY | (variant->direct ? O_DIRECT : 0));
		ASSERT_LE(0, fd);
	}
	for (i = 0; i < NR_IO; i++) {
		io[i] = (struct io){
			.idx = i, .write = variant->write, .flags = variant->direct ? O_DIRECT : 0,
			.fd = fd, .start = &start,
		};
		ASSERT_EQ(0, posix_memalign((void **)&io[i].buf, 4096, BG_CHUNK));
		ASSERT_EQ(0, pthread_create(&th[i], NULL, io_thread, &io[i]));
	}
	pthread_barrier_wait(&start);
	/* Both buffers of a queue taken, and more requests waiting for one. */
	ASSERT_EQ(0, wait_in_flight(self->id, 2));
	switch (variant->how) {
	case 1:
		sleep_ms(100);
		for (i = 0; i < NR_IO; i++)
			pthread_kill(th[i], SIGUSR1);
		break;
	case 2:
		sleep_ms(100);
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", self->id);
		ASSERT_EQ(0, write_text(path, "1"));
		break;
	case 3:
		sleep_ms(100);
		ASSERT_EQ(0, kill(self->pid, SIGKILL));
		break;
	}
	for (i = 0; i < NR_IO; i++)
		pthread_join(th[i], NULL);
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	TH_LOG("at most %ld requests waited for a buffer", st.buf_wait_max);
	nr_eintr = 0;
	for (i = 0; i < NR_IO; i++) {
		if (variant->how == 0 || (variant->how == 1 && io[i].ret >= 0)) {
			/* Done in full, with the right bytes. */
			EXPECT_EQ(BG_CHUNK, io[i].ret);
			EXPECT_EQ((variant->write ? 'A' : 'a') + i, io_last_byte(&io[i]));
		} else if (variant->how == 1) {
			EXPECT_EQ(EINTR, io[i].err);
			nr_eintr++;
		} else {
			/* Aborted: the connection's error, not a hang. */
			EXPECT_EQ(-1, io[i].ret);
			EXPECT_TRUE(io[i].err == ECONNABORTED || io[i].err == ENOTCONN ||
				    io[i].err == EIO) TH_LOG("client %d: %s", i, strerror(io[i].err));
		}
		free(io[i].buf);
	}
	if (variant->zc) {
		/* The data pages were registered: no buffer to wait for. */
		TH_LOG("%ld requests zero-copied", st.zc_reqs);
		EXPECT_LE(variant->how ? 1 : NR_IO, st.zc_reqs);
	} else {
		EXPECT_LE(1, st.buf_wait_max);
	}
	if (variant->classes && variant->how < 2) {
		struct furing_class c[64];
		int n = furing_classes(self->id, c, 64);
		long waits = 0;

		/* The 1 MiB reads waited in the large class's line. */
		EXPECT_EQ(2 * st.queues, n);
		for (i = 0; i < n; i++)
			waits += c[i].cls == 1 ? c[i].waits : 0;
		EXPECT_LE(1, waits);
	}
	if (variant->zc && variant->how == 2) {
		/*
		 * Aborted with registrations live: the module stays until the server's
		 * ring lets go of them (the server exits on the abort), then unloads.
		 */
		int status;

		ASSERT_EQ(self->pid, waitpid(self->pid, &status, 0));
		self->pid = 0;
		if (fd >= 0)
			close(fd);
		umount2(MNT, MNT_DETACH);
		ASSERT_EQ(0, furing_wait_unused(10));
		EXPECT_EQ(0, furing_zc_live());
		EXPECT_EQ(0, furing_unload());
		EXPECT_EQ(0, furing_load());
		return;
	}
	if (variant->how == 1) {
		TH_LOG("%d of %d clients interrupted", nr_eintr, NR_IO);
		EXPECT_LT(0, nr_eintr);
	}
	if (variant->how < 2) {
		EXPECT_EQ(0, wait_idle(self->id));
		ASSERT_EQ(0, furing_queue_stats(self->id, &st));
		EXPECT_EQ(0, st.bufs_used);
	}
	if (fd >= 0)
		close(fd);
	pthread_barrier_destroy(&start);
}

TEST_HARNESS_MAIN
