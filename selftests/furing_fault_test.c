// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation- and copy-failure sweep (debug kernel: failslab, fail_page_alloc
 * and fail_usercopy through /proc/thread-self/fail-nth): for each operation
 * -- mount, the INIT reply, REGISTER in every mode, a request's delivery
 * (with its zero-copy registration), COMMIT_AND_FETCH with and without
 * payload, umount and fusectl abort -- the n-th fault site of the task that
 * runs it fails, for n = 1, 2, ... until the operation completes without
 * reaching site n. At every n the operation succeeds or fails with an errno
 * it documents, the client gets an answer or an errno (never a hang), the
 * mount keeps working or unmounts cleanly, and nothing is left behind: no
 * module reference, pin, locked-memory charge or zero-copy registration
 * after the unmount, no kmemleak report at the end.
 *
 * The test plays the server by hand, one entry per queue.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <time.h>
#include "furing_test.h"
#include "furing_ring.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-fault-test"
#define MAX_WRITE (128 << 10)
#define BUF_SIZE MAX_WRITE		/* the smallest legal payload buffer */
#define HDRS_LEN 4096
#define MAX_Q 64
#define MAX_SITES 400			/* a sweep that reaches this never ended */
#define ALL_PINNED (FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | \
		    FURING_URING_PINNED_BUFFERS)

/* The hand-played server of one mount. */
struct hs {
	int fd;
	long id;
	int cpus;
	uint64_t flags;
	struct io_uring ring;
	int ring_up;
	/* buffer classes: class 0 one 4 KiB buffer in small, class 1 one of BUF_SIZE in buf */
	void *hdr[MAX_Q], *buf[MAX_Q], *small[MAX_Q];
	/* Each queue's iovecs: the kernel reads them when the command is submitted. */
	struct iovec iov[MAX_Q][3];
	struct fuse_init_in init;
	uint64_t init_unique;
	int fail_fd;			/* this thread's fail-nth */
};

static char reqbuf[MAX_WRITE + 4096];

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fail-nth --------------------------------------------------------- */

/* Makes the @n-th fault site this thread reaches from now on fail. */
static void arm(struct hs *s, int n)
{
	char b[16];

	snprintf(b, sizeof(b), "%d", n);
	if (pwrite(s->fail_fd, b, strlen(b), 0) < 0)
		abort();
}

/* Disarms; whether the armed fault was injected (the task got that far). */
static int disarm(struct hs *s)
{
	char b[16] = "";
	int left, i;

	/*
	 * The read copies the count out after taking it: a copy that fails is the
	 * armed site itself, so the operation never reached it.
	 */
	left = pread(s->fail_fd, b, sizeof(b) - 1, 0) < 0 ? 1 : atoi(b);
	/*
	 * The write copies "0" in before it takes it: with sites left, that copy is
	 * one (and may be the armed one, failing with EFAULT); it succeeds once the
	 * count has run out.
	 */
	for (i = 0; pwrite(s->fail_fd, "0", 1, 0) < 0; i++)
		if (i > MAX_SITES)
			abort();
	return left == 0;
}

/* Sets the fault attributes up for fail-nth; 0, or -errno when the kernel has none. */
static int faults_setup(void)
{
	static const char *const attrs[] = { "failslab", "fail_page_alloc", "fail_usercopy" };
	char path[128];
	size_t i;

	if (access("/proc/thread-self/fail-nth", W_OK))
		return -ENOENT;
	for (i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/verbose", attrs[i]);
		if (write_text(path, "0"))
			return -ENOENT;
	}
	/* GFP_KERNEL allocations are what furing makes: fail them too, of any order. */
	if (write_text("/sys/kernel/debug/failslab/ignore-gfp-wait", "N") ||
	    write_text("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N") ||
	    write_text("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N") ||
	    write_text("/sys/kernel/debug/fail_page_alloc/min-order", "0"))
		return -ENOENT;
	return 0;
}

/* ---- the hand-played server ------------------------------------------- */

static int hs_open(struct hs *s, uint64_t flags)
{
	int q;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->flags = flags;
	s->cpus = sysconf(_SC_NPROCESSORS_CONF);
	if (s->cpus > MAX_Q)
		return -E2BIG;
	for (q = 0; q < s->cpus; q++) {
		s->hdr[q] = mmap(NULL, HDRS_LEN, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		s->buf[q] = mmap(NULL, BUF_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		s->small[q] = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (s->hdr[q] == MAP_FAILED || s->buf[q] == MAP_FAILED ||
		    s->small[q] == MAP_FAILED)
			return -ENOMEM;
	}
	s->fail_fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	return s->fail_fd < 0 ? -errno : 0;
}

static void hs_close(struct hs *s)
{
	int q;

	for (q = 0; q < s->cpus; q++) {
		munmap(s->hdr[q], HDRS_LEN);
		munmap(s->buf[q], BUF_SIZE);
		munmap(s->small[q], 4096);
	}
	close(s->fail_fd);
}

/* Opens /dev/furing; the mount comes next. */
static int hs_dev(struct hs *s)
{
	mkdir(MNT, 0755);
	s->fd = open("/dev/furing", O_RDWR | O_CLOEXEC);
	return s->fd < 0 ? -errno : 0;
}

static int hs_mount_only(struct hs *s)
{
	char opts[128];

	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", s->fd);
	return mount("furing-fault", MNT, "furing", 0, opts) ? -errno : 0;
}

/* Reads INIT off the device (after the mount). */
static int hs_read_init(struct hs *s)
{
	struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;

	if (read(s->fd, reqbuf, sizeof(reqbuf)) < (ssize_t)sizeof(*ih))
		return -errno;
	if (ih->opcode != FUSE_INIT)
		return -EPROTO;
	memcpy(&s->init, ih + 1, sizeof(s->init));
	s->init_unique = ih->unique;
	s->id = furing_conn_id(MNT);
	return s->id < 0 ? (int)s->id : 0;
}

static int hs_answer_init(struct hs *s)
{
	return furing_answer_init(s->fd, &s->init, s->init_unique, 1, MAX_WRITE);
}

static int hs_ring(struct hs *s)
{
	int ret = io_uring_queue_init(64, &s->ring, IORING_SETUP_SQE128);

	if (ret)
		return ret;
	s->ring_up = 1;
	/* Zero-copy pages are registered at the entry's slot (0) of its ring. */
	if (s->flags & FURING_URING_ZERO_COPY)
		return io_uring_register_buffers_sparse(&s->ring, 1);
	return 0;
}

/* Queues REGISTER of queue @q's one entry. */
static void hs_prep_register(struct hs *s, int q)
{
	const uint32_t sizes[FURING_URING_MAX_BUF_CLASSES] = { 4096, BUF_SIZE };
	const uint32_t one[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE };
	struct furing_uring_cmd_req req = { .flags = s->flags, .qid = q };
	struct iovec *iov = s->iov[q];
	unsigned int nr_iov = 2;

	if (s->flags & FURING_URING_BUF_CLASSES) {
		req = furing_register_req(s->flags, q, 1, sizes);
		iov[0] = (struct iovec){ s->hdr[q], HDRS_LEN };
		iov[1] = (struct iovec){ s->small[q], 4096 };
		iov[2] = (struct iovec){ s->buf[q], BUF_SIZE };
		nr_iov = 3;
	} else {
		if (s->flags)
			req = furing_register_req(s->flags, q, 1, one);
		iov[0] = (struct iovec){ s->hdr[q], s->flags ? HDRS_LEN :
					 sizeof(struct furing_uring_req_header) };
		iov[1] = (struct iovec){ s->buf[q], BUF_SIZE };
	}
	furing_prep_cmd(&s->ring, s->fd, FURING_URING_CMD_REGISTER, &req, iov, nr_iov,
			q)->buf_index = 0;
}

/* The payload buffer @buf_id of queue @q: with classes 0 is small's, 1 buf's; else buf. */
static char *hs_buf(struct hs *s, int q, uint16_t buf_id)
{
	return s->flags & FURING_URING_BUF_CLASSES && buf_id == 0 ? s->small[q] : s->buf[q];
}

static void hs_prep_answer(struct hs *s, int q);

/*
 * Waits until @want entries are available, or a command fails (a REGISTER's
 * CQE with an error); a request that comes meanwhile (a RELEASE after its
 * client went) is answered. 0, the error, or -ETIMEDOUT.
 */
static int hs_wait_parked(struct hs *s, long want)
{
	uint64_t tag;
	int i, res;

	for (i = 0; i < 500; i++) {
		if (furing_entries(s->id, "available") >= want)
			return 0;
		res = furing_wait_cqe(&s->ring, 10, &tag);
		if (res < 0)
			return res;
		if (res == 0) {
			hs_prep_answer(s, (int)tag);
			io_uring_submit(&s->ring);
		}
	}
	return -ETIMEDOUT;
}

/* REGISTERs queues @from..cpus-1 without faults; 0 or -errno. */
static int hs_register_from(struct hs *s, int from)
{
	int q;

	for (q = from; q < s->cpus; q++)
		hs_prep_register(s, q);
	if (io_uring_submit(&s->ring) != s->cpus - from)
		return -EIO;
	return hs_wait_parked(s, s->cpus);
}

/* Mounts, answers INIT and registers every queue, without faults. */
static int hs_up(struct hs *s)
{
	int ret;

	ret = hs_dev(s);
	if (!ret)
		ret = hs_mount_only(s);
	if (!ret)
		ret = hs_read_init(s);
	if (!ret)
		ret = hs_answer_init(s);
	if (!ret)
		ret = hs_ring(s);
	if (!ret)
		ret = hs_register_from(s, 0);
	return ret;
}

/* Unmounts and lets everything go. */
static void hs_down(struct hs *s)
{
	umount2(MNT, MNT_DETACH);
	if (s->ring_up)
		io_uring_queue_exit(&s->ring);
	s->ring_up = 0;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Commits the request of queue @q: -@error, or @len bytes of @payload. */
static void hs_prep_commit(struct hs *s, int q, int error, const void *payload, uint32_t len)
{
	struct furing_uring_req_header *h = s->hdr[q];
	struct furing_uring_cmd_req c = { .qid = q };
	struct fuse_out_header oh;
	struct fuse_in_header ih;
	uint16_t buf_id = h->ring_ent_in_out.buf_id;

	memcpy(&ih, h->in_out, sizeof(ih));
	oh = (struct fuse_out_header){ .unique = ih.unique, .error = error };
	c.commit_id = ih.unique;
	/* A buffer ring's buf_id may be NO_BUF: then nothing is copied. */
	if (len && (buf_id != FURING_URING_NO_BUF || !s->flags))
		memcpy(hs_buf(s, q, buf_id), payload, len);
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = len;
	furing_prep_cmd(&s->ring, s->fd, FURING_URING_CMD_COMMIT_AND_FETCH, &c, s->iov[q], 2, q);
}

/* The reply the test's filesystem gives to the request of queue @q. */
static void hs_prep_answer(struct hs *s, int q)
{
	struct furing_uring_req_header *h = s->hdr[q];
	struct fuse_in_header ih;
	static char data[4096];

	memcpy(&ih, h->in_out, sizeof(ih));
	switch (ih.opcode) {
	case FUSE_GETATTR: {
		struct fuse_attr_out a = {
			.attr = { .ino = ih.nodeid, .mode = S_IFDIR | 0755, .nlink = 2 },
		};

		if (ih.nodeid == 2)
			a.attr = (struct fuse_attr){ .ino = 2, .mode = S_IFREG | 0644, .nlink = 1,
						     .size = 1 << 20 };
		hs_prep_commit(s, q, 0, &a, sizeof(a));
		break;
	}
	case FUSE_LOOKUP: {
		struct fuse_entry_out e = {
			.nodeid = 2, .entry_valid = 1000, .attr = { .ino = 2, .mode = S_IFREG | 0644, .nlink = 1,
					       .size = 1 << 20 },
		};

		if (strcmp(hs_buf(s, q, h->ring_ent_in_out.buf_id), "f"))
			hs_prep_commit(s, q, -ENOENT, NULL, 0);
		else
			hs_prep_commit(s, q, 0, &e, sizeof(e));
		break;
	}
	case FUSE_OPEN: {
		struct fuse_open_out o = { .fh = 1 };

		hs_prep_commit(s, q, 0, &o, sizeof(o));
		break;
	}
	case FUSE_READ: {
		struct fuse_read_in r;

		memcpy(&r, h->op_in, sizeof(r));
		memset(data, 'r', sizeof(data));
		hs_prep_commit(s, q, 0, data, r.size < sizeof(data) ? r.size : sizeof(data));
		break;
	}
	case FUSE_WRITE: {
		struct fuse_write_in w;
		struct fuse_write_out wo = { 0 };

		memcpy(&w, h->op_in, sizeof(w));
		wo.size = w.size;
		hs_prep_commit(s, q, 0, &wo, sizeof(wo));
		break;
	}
	case FUSE_RELEASE:
		hs_prep_commit(s, q, 0, NULL, 0);
		break;
	default:
		hs_prep_commit(s, q, -ENOSYS, NULL, 0);
	}
}

/* ---- clients ---------------------------------------------------------- */

struct client {
	long (*fn)(void);
	long ret;
	int done;
	pthread_t th;
	sem_t go;		/* posted by hs_serve(), once it is armed */
};

static void *client_thread(void *arg)
{
	struct client *c = arg;

	while (sem_wait(&c->go))
		;
	c->ret = c->fn();
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* stat() of the root: a GETATTR. */
static long stat_root(void)
{
	struct stat st;

	return stat(MNT, &st) ? -errno : 0;
}

/* stat() of a name the filesystem does not have: LOOKUP answered -ENOENT. */
static long stat_missing(void)
{
	struct stat st;

	return stat(MNT "/missing", &st) ? -errno : 0;
}

/* A 4 KiB O_DIRECT read of MNT/f: its reply carries payload. */
static long read_f(void)
{
	void *b;
	long ret;
	int fd;

	if (posix_memalign(&b, 4096, 4096))
		return -ENOMEM;
	fd = open(MNT "/f", O_RDONLY | O_DIRECT);
	ret = fd < 0 ? -errno : pread(fd, b, 4096, 0);
	if (ret < 0 && fd >= 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(b);
	return ret;
}

/* A 64 KiB O_DIRECT write to MNT/f: zero-copied on a zero-copy queue. */
static long write_f(void)
{
	void *b;
	long ret;
	int fd;

	if (posix_memalign(&b, 4096, 64 << 10))
		return -ENOMEM;
	memset(b, 'w', 64 << 10);
	fd = open(MNT "/f", O_WRONLY | O_DIRECT);
	ret = fd < 0 ? -errno : pwrite(fd, b, 64 << 10, 0);
	if (ret < 0 && fd >= 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(b);
	return ret;
}

/* Starts a client thread, which runs @fn once hs_serve() lets it go. */
static void client_start(struct client *c, long (*fn)(void))
{
	memset(c, 0, sizeof(*c));
	c->fn = fn;
	if (sem_init(&c->go, 0, 0) || pthread_create(&c->th, NULL, client_thread, c))
		abort();
}

/*
 * Where a sweep arms the fault, in the server thread: with @commit, while it
 * commits its answer to a request of @opcode; else until the next CQE (or, with
 * @until, the CQE of a request of that opcode: the requests before it are
 * served armed), across the syscalls in which the task work of the deliveries
 * runs, from the start (@opcode 0) or from the commit of its answer to a
 * request of @opcode on (the next request can arrive while that commit
 * returns, and its task work then runs on the way out).
 */
struct fault_at {
	int n;			/* 0: no fault (any more) */
	uint32_t opcode;
	uint32_t until;		/* not 0: armed until the CQE of a request of this opcode */
	int commit;
	int injected;		/* the fault was injected */
	int cqe_err;		/* a command's CQE with an error: its entry went */
};

static void show_held(void);

static uint32_t req_opcode(struct hs *s, int q)
{
	struct fuse_in_header ih;

	memcpy(&ih, ((struct furing_uring_req_header *)s->hdr[q])->in_out, sizeof(ih));
	return ih.opcode;
}

/*
 * Serves until client @c is done, for up to @secs seconds: 0, or
 * -ETIMEDOUT (the client hangs; the connection is aborted to free it).
 */
static int hs_serve(struct hs *s, struct client *c, int secs, struct fault_at *f)
{
	long deadline = now_ms() + secs * 1000L;
	int armed = 0, arm_next = f && f->n && !f->commit && !f->opcode, go = 0;
	uint64_t tag;
	uint32_t op;
	int res, q;

	while (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
		if (now_ms() > deadline) {
			char path[96];

			if (armed)
				f->injected |= disarm(s);
			fprintf(stderr, "# the client hangs: entries then\n");
			show_held();
			snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", s->id);
			write_text(path, "1");
			pthread_join(c->th, NULL);
			return -ETIMEDOUT;
		}
		if (arm_next) {
			arm(s, f->n);
			armed = 1;
			arm_next = 0;
		}
		/*
		 * The client goes once the fault is armed (a futex wake: no fault site), so
		 * the task work of its request cannot run before.
		 */
		if (!go) {
			sem_post(&c->go);
			go = 1;
		}
		res = furing_wait_cqe(&s->ring, 50, &tag);
		if (res == FURING_NO_CQE)
			continue;
		q = (int)tag;
		op = res < 0 ? 0 : req_opcode(s, q);
		if (armed && (res < 0 || !f->until || op == f->until)) {
			f->injected |= disarm(s);
			armed = 0;
			f->n = 0;
		}
		if (res < 0) {
			if (f)
				f->cqe_err = res;
			continue;
		}
		hs_prep_answer(s, q);
		if (f && f->n && !armed && op == f->opcode) {
			arm(s, f->n);
			io_uring_submit(&s->ring);
			if (f->commit) {
				f->injected |= disarm(s);
				f->n = 0;
			} else {
				armed = 1;
			}
			continue;
		}
		io_uring_submit(&s->ring);
	}
	if (armed)
		f->injected |= disarm(s);
	pthread_join(c->th, NULL);
	return 0;
}

/* A request end to end without faults: 0, or why not. */
static long hs_roundtrip(struct hs *s)
{
	struct client c;
	int ret;

	client_start(&c, stat_root);
	ret = hs_serve(s, &c, 20, NULL);
	return ret ? ret : c.ret;
}

/* ---- what must be back after each round -------------------------------- */

static long pins_base;

/* Logs what holds the module (debugfs of what is left). */
static void show_held(void)
{
	char buf[4096];

	if (read_text("/sys/module/furing/refcnt", buf, sizeof(buf)) > 0)
		fprintf(stderr, "# refcnt %s", buf);
	system("ls /sys/kernel/debug/furing >&2; cat /sys/kernel/debug/furing/*/entries >&2;"
	       " cat /sys/kernel/debug/furing/*/queues /sys/kernel/debug/furing/zero_copy >&2;"
	       " grep furing /proc/mounts >&2; ls /sys/fs/fuse/connections >&2;"
	       " ls -l /proc/[0-9]*/fd 2>/dev/null | grep -e furing -e anon_inode >&2;"
	       " cat /sys/fs/fuse/connections/*/waiting >&2");
}

/* Nothing held after an unmount: 0, or which check failed (negative). */
static int nothing_left(void)
{
	if (furing_wait_unused(10)) {
		show_held();
		return -1;
	}
	if (furing_pins() != pins_base)
		return -2;
	if (furing_vmlck_kb(0) != 0)
		return -3;
	if (furing_zc_live() != 0)
		return -4;
	return 0;
}

/* The end of a round: unmount; nothing may be left. */
static void round_end(struct __test_metadata *_metadata, struct hs *s, int n)
{
	hs_down(s);
	ASSERT_EQ(0, nothing_left()) {
		TH_LOG("site %d: left behind (%d)", n, nothing_left());
	}
}

/*
 * After INIT: a ring, every queue registered, a request served. debugfs is
 * best effort (a failed allocation in mount leaves the connection without its
 * files): then the request alone proves the entries.
 */
static void ring_and_serve(struct __test_metadata *_metadata, struct hs *s)
{
	int q;

	ASSERT_EQ(0, hs_ring(s));
	if (furing_entries(s->id, NULL) < 0) {
		for (q = 0; q < s->cpus; q++)
			hs_prep_register(s, q);
		ASSERT_EQ(s->cpus, io_uring_submit(&s->ring));
	} else {
		ASSERT_EQ(0, hs_register_from(s, 0));
	}
	EXPECT_EQ(0, hs_roundtrip(s));
}

/* ---- the sweeps -------------------------------------------------------- */

FIXTURE(sweep) {
	struct hs s;
};

FIXTURE_VARIANT(sweep) {
	uint64_t flags;
};

FIXTURE_VARIANT_ADD(sweep, basic) { .flags = 0 };
FIXTURE_VARIANT_ADD(sweep, bufring) { .flags = FURING_URING_BUFRING };
FIXTURE_VARIANT_ADD(sweep, pinned_headers) {
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS,
};
FIXTURE_VARIANT_ADD(sweep, pinned_buffers) {
	.flags = FURING_URING_BUFRING | FURING_URING_PINNED_BUFFERS,
};
FIXTURE_VARIANT_ADD(sweep, zero_copy) { .flags = ALL_PINNED | FURING_URING_ZERO_COPY };
/* Buffer classes, each region pinned: 4 KiB for the small requests, BUF_SIZE for the write. */
FIXTURE_VARIANT_ADD(sweep, pinned_classes) { .flags = ALL_PINNED | FURING_URING_BUF_CLASSES };

FIXTURE_SETUP(sweep)
{
	if (faults_setup())
		SKIP(return, "no fault injection in this kernel");
	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_EQ(0, furing_wait_unused(10)) {
		show_held();
	}
	pins_base = furing_pins();
	ASSERT_LE(0, pins_base);
	ASSERT_EQ(0, hs_open(&self->s, variant->flags));
}

FIXTURE_TEARDOWN(sweep)
{
	if (self->s.fail_fd > 0) {
		hs_down(&self->s);
		hs_close(&self->s);
	}
}

/* Whether @err is one a command documents for a failed allocation or copy. */
static int alloc_errno(long err)
{
	return err == -ENOMEM || err == -EFAULT || err == -EAGAIN;
}

/*
 * A syscall's own errors for a failed allocation or a failed copy of its
 * arguments (a path, mount options): ENOMEM, EFAULT.
 */
static int syscall_errno(long err)
{
	return err == -ENOMEM || err == -EFAULT;
}

/* REGISTER of queue 0 (the first, which sets the queue up) with its n-th site failing. */
TEST_F_TIMEOUT(sweep, register, 900)
{
	struct hs *s = &self->s;
	int n, injected = 1, res;

	for (n = 1; injected && n < MAX_SITES; n++) {
		ASSERT_EQ(0, hs_dev(s));
		ASSERT_EQ(0, hs_mount_only(s));
		ASSERT_EQ(0, hs_read_init(s));
		ASSERT_EQ(0, hs_answer_init(s));
		ASSERT_EQ(0, hs_ring(s));
		hs_prep_register(s, 0);
		arm(s, n);
		res = io_uring_submit(&s->ring);
		injected = disarm(s);
		if (res == 1) {
			res = hs_wait_parked(s, 1);
		} else {
			res = res < 0 ? res : -EIO;
		}
		/* Parked, or refused with a documented errno; then it registers. */
		EXPECT_TRUE(res == 0 || alloc_errno(res)) {
			TH_LOG("site %d: REGISTER %d", n, res);
		}
		ASSERT_EQ(0, hs_register_from(s, res == 0 ? 1 : 0)) {
			TH_LOG("site %d: the queues do not register again", n);
		}
		EXPECT_EQ(0, hs_roundtrip(s)) {
			TH_LOG("site %d: no request after the fault", n);
		}
		round_end(_metadata, s, n);
	}
	TH_LOG("REGISTER (flags 0x%llx): %d fault sites", (unsigned long long)s->flags, n - 2);
	EXPECT_LT(n, MAX_SITES);
}

/*
 * A request's delivery to the ring (task work: copy in, and on a zero-copy
 * queue the registration of a 64 KiB write's pages), its n-th site failing:
 * the client gets its answer or EIO, and the entry takes the next request.
 */
static void delivery_sweep(struct __test_metadata *_metadata, struct hs *s, long (*fn)(void),
			   uint32_t after, uint32_t until, long ok, const char *what)
{
	int n, injected = 1, ret;

	for (n = 1; injected && n < MAX_SITES; n++) {
		struct fault_at f = { .n = n, .opcode = after, .until = until };
		struct client c;

		ASSERT_EQ(0, hs_up(s));
		client_start(&c, fn);
		ret = hs_serve(s, &c, 20, &f);
		injected = f.injected;
		EXPECT_EQ(0, ret) {
			TH_LOG("site %d: %s hangs", n, what);
		}
		/* A delivery that fails ends its request with EIO (as Linux 7.3). */
		EXPECT_TRUE(c.ret == ok || c.ret == -EIO) {
			TH_LOG("site %d: %s: %ld", n, what, c.ret);
		}
		if (f.cqe_err) {
			/* The entry went with its command: register it again. */
			EXPECT_TRUE(alloc_errno(f.cqe_err));
			ASSERT_EQ(0, hs_register_from(s, 0));
		}
		if (!injected && fn == write_f && s->flags & FURING_URING_ZERO_COPY) {
			struct furing_qstats st;

			/* The sweep reached the registration: the write went zero-copy. */
			ASSERT_EQ(0, furing_queue_stats(s->id, &st));
			EXPECT_EQ(1, st.zc_reqs);
		}
		EXPECT_EQ(0, hs_roundtrip(s)) {
			TH_LOG("site %d: no request after the fault", n);
		}
		round_end(_metadata, s, n);
	}
	TH_LOG("%s (flags 0x%llx): %d fault sites", what, (unsigned long long)s->flags, n - 2);
	EXPECT_LT(n, MAX_SITES);
}

TEST_F_TIMEOUT(sweep, first_request, 900)
{
	delivery_sweep(_metadata, &self->s, stat_root, 0, 0, 0, "first request");
}

TEST_F_TIMEOUT(sweep, data_request, 900)
{
	/*
	 * Armed from the commit of OPEN's answer to the WRITE's CQE: that commit, the
	 * requests the write makes first (GETXATTR of security.capability), and the
	 * WRITE's delivery with its copy or zero-copy registration.
	 */
	delivery_sweep(_metadata, &self->s, write_f, FUSE_OPEN, FUSE_WRITE, 64 << 10,
		       "OPEN reply and 64 KiB write");
}

/*
 * COMMIT_AND_FETCH of a reply, its n-th site failing: with payload (a READ's
 * data) and without (LOOKUP answered -ENOENT).
 */
static void commit_sweep(struct __test_metadata *_metadata, struct hs *s, long (*fn)(void),
			 uint32_t opcode, long ok, const char *what)
{
	int n, injected = 1, ret;

	for (n = 1; injected && n < MAX_SITES; n++) {
		struct fault_at f = { .n = n, .opcode = opcode, .commit = 1 };
		struct client c;

		ASSERT_EQ(0, hs_up(s));
		client_start(&c, fn);
		ret = hs_serve(s, &c, 20, &f);
		injected = f.injected;
		EXPECT_EQ(0, ret) {
			TH_LOG("site %d: %s hangs", n, what);
		}
		EXPECT_TRUE(c.ret == ok || c.ret == -EIO) {
			TH_LOG("site %d: %s: %ld", n, what, c.ret);
		}
		if (f.cqe_err) {
			EXPECT_TRUE(alloc_errno(f.cqe_err));
			ASSERT_EQ(0, hs_register_from(s, 0));
		}
		if (furing_entries(s->id, "available") < s->cpus) {
			/* A commit that failed before it re-parked: that entry is gone. */
			ASSERT_EQ(0, hs_wait_parked(s, s->cpus)) {
				TH_LOG("site %d: entries %ld of %d", n,
				       furing_entries(s->id, "available"), s->cpus);
			}
		}
		EXPECT_EQ(0, hs_roundtrip(s)) {
			TH_LOG("site %d: no request after the fault", n);
		}
		round_end(_metadata, s, n);
	}
	TH_LOG("%s (flags 0x%llx): %d fault sites", what, (unsigned long long)s->flags, n - 2);
	EXPECT_LT(n, MAX_SITES);
}

TEST_F_TIMEOUT(sweep, commit_with_payload, 900)
{
	commit_sweep(_metadata, &self->s, read_f, FUSE_READ, 4096, "READ reply");
}

TEST_F_TIMEOUT(sweep, commit_without_payload, 900)
{
	commit_sweep(_metadata, &self->s, stat_missing, FUSE_LOOKUP, -ENOENT, "error reply");
}

/* ---- mount-wide operations (one mode) --------------------------------- */

FIXTURE(conn) {
	struct hs s;
};

FIXTURE_SETUP(conn)
{
	if (faults_setup())
		SKIP(return, "no fault injection in this kernel");
	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_EQ(0, furing_wait_unused(10)) {
		show_held();
	}
	pins_base = furing_pins();
	ASSERT_LE(0, pins_base);
	ASSERT_EQ(0, hs_open(&self->s, FURING_URING_BUFRING));
}

FIXTURE_TEARDOWN(conn)
{
	if (self->s.fail_fd > 0) {
		hs_down(&self->s);
		hs_close(&self->s);
	}
}

/*
 * mount(2) with its n-th site failing: mounted, or ENOMEM, EFAULT (its options'
 * copy) or ENOTCONN (INIT not sent), with nothing left.
 */
TEST_F_TIMEOUT(conn, mount, 900)
{
	struct hs *s = &self->s;
	int n, injected = 1, res;

	for (n = 1; injected && n < MAX_SITES; n++) {
		ASSERT_EQ(0, hs_dev(s));
		arm(s, n);
		res = hs_mount_only(s);
		injected = disarm(s);
		/* ENOTCONN: the core could not send INIT (fuse_send_init(), as for fuse). */
		EXPECT_TRUE(res == 0 || syscall_errno(res) || res == -ENOTCONN) {
			TH_LOG("site %d: mount %d", n, res);
		}
		if (res == 0) {
			ASSERT_EQ(0, hs_read_init(s));
			ASSERT_EQ(0, hs_answer_init(s));
			ring_and_serve(_metadata, s);
		}
		round_end(_metadata, s, n);
	}
	TH_LOG("mount: %d fault sites", n - 2);
	EXPECT_LT(n, MAX_SITES);
}

/*
 * The INIT reply written with its n-th site failing: the connection gets
 * io-uring and serves, or the write fails and the mount unmounts cleanly.
 */
TEST_F_TIMEOUT(conn, init_reply, 900)
{
	struct hs *s = &self->s;
	int n, injected = 1, res;

	for (n = 1; injected && n < MAX_SITES; n++) {
		ASSERT_EQ(0, hs_dev(s));
		ASSERT_EQ(0, hs_mount_only(s));
		ASSERT_EQ(0, hs_read_init(s));
		arm(s, n);
		res = hs_answer_init(s);
		injected = disarm(s);
		EXPECT_TRUE(res == 0 || alloc_errno(res)) {
			TH_LOG("site %d: INIT reply %d", n, res);
		}
		if (res == 0)
			ring_and_serve(_metadata, s);
		round_end(_metadata, s, n);
	}
	TH_LOG("INIT reply: %d fault sites", n - 2);
	EXPECT_LT(n, MAX_SITES);
}

TEST_F_TIMEOUT(conn, umount, 900)
{
	struct hs *s = &self->s;
	int n, injected = 1, res;

	for (n = 1; injected && n < MAX_SITES; n++) {
		ASSERT_EQ(0, hs_up(s));
		EXPECT_EQ(0, hs_roundtrip(s));
		arm(s, n);
		res = umount2(MNT, 0) ? -errno : 0;
		injected = disarm(s);
		EXPECT_TRUE(res == 0 || syscall_errno(res)) {
			TH_LOG("site %d: umount %d", n, res);
		}
		round_end(_metadata, s, n);
	}
	TH_LOG("umount: %d fault sites", n - 2);
	EXPECT_LT(n, MAX_SITES);
}

TEST_F_TIMEOUT(conn, abort, 900)
{
	struct hs *s = &self->s;
	char path[96];
	struct stat st;
	int n, injected = 1, res;

	for (n = 1; injected && n < MAX_SITES; n++) {
		ASSERT_EQ(0, hs_up(s));
		EXPECT_EQ(0, hs_roundtrip(s));
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", s->id);
		{
			int fd = open(path, O_WRONLY | O_CLOEXEC);

			ASSERT_LE(0, fd);
			arm(s, n);
			res = write(fd, "1", 1) == 1 ? 0 : -errno;
			injected = disarm(s);
			close(fd);
		}
		EXPECT_TRUE(res == 0 || alloc_errno(res)) {
			TH_LOG("site %d: abort %d", n, res);
		}
		if (res == 0) {
			/* Aborted: every request fails at once, parked commands complete. */
			EXPECT_EQ(-1, stat(MNT, &st));
			EXPECT_EQ(ENOTCONN, errno);
		}
		round_end(_metadata, s, n);
	}
	TH_LOG("abort: %d fault sites", n - 2);
	EXPECT_LT(n, MAX_SITES);
}

/* A client whose own task fails its n-th fault site while it stats the root. */
struct armed_client {
	int n;
	long ret;
	int injected;
	int done;
};

static void *armed_client_thread(void *arg)
{
	struct armed_client *c = arg;
	struct hs t = { .fail_fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC) };

	c->ret = -EBADF;
	if (t.fail_fd >= 0) {
		arm(&t, c->n);
		c->ret = stat_root();
		c->injected = disarm(&t);
		close(t.fail_fd);
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The client's side of a request (the core's allocation, furing's send_req,
 * in the client's task) with its n-th site failing: the client gets its
 * answer, ENOMEM, or EFAULT (stat's copy of its path).
 */
TEST_F_TIMEOUT(conn, client_send, 900)
{
	struct hs *s = &self->s;
	int n, injected = 1, res;
	uint64_t tag;

	for (n = 1; injected && n < MAX_SITES; n++) {
		struct armed_client c = { .n = n };
		long deadline = now_ms() + 20000;
		pthread_t th;

		ASSERT_EQ(0, hs_up(s));
		ASSERT_EQ(0, pthread_create(&th, NULL, armed_client_thread, &c));
		while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE)) {
			ASSERT_GT(deadline, now_ms()) {
				TH_LOG("site %d: the client hangs", n);
			}
			res = furing_wait_cqe(&s->ring, 50, &tag);
			if (res == 0) {
				hs_prep_answer(s, (int)tag);
				io_uring_submit(&s->ring);
			}
		}
		pthread_join(th, NULL);
		injected = c.injected;
		EXPECT_TRUE(c.ret == 0 || syscall_errno(c.ret)) {
			TH_LOG("site %d: stat %ld", n, c.ret);
		}
		EXPECT_EQ(0, hs_roundtrip(s));
		round_end(_metadata, s, n);
	}
	TH_LOG("client send: %d fault sites", n - 2);
	EXPECT_LT(n, MAX_SITES);
}

TEST_HARNESS_MAIN
