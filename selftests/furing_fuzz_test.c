// SPDX-License-Identifier: GPL-2.0
/*
 * A seeded uring_cmd fuzzer: random and mutated-valid REGISTER,
 * COMMIT_AND_FETCH and unknown commands (every field of the command and of
 * the SQE: cmd_op, SQE flags, qid, commit_id, init, padding and reserved
 * bytes (buffer class sizes), buf_index, uring_cmd_flags, the iovec count,
 * iovec addresses and
 * lengths -- overlapping, unmapped, read-only, huge, unaligned, kernel
 * addresses), interleaved with client I/O, malformed replies from the server
 * side (random out headers, errors, unique ids and payload sizes), io_uring
 * exit, umount, fusectl abort and server close.
 *
 * Every command's result is 0 (parked, or a request for the server) or an
 * errno of the UAPI header's table; every client call returns (never
 * hangs); after the last round nothing is left (module reference, pins,
 * locked memory, zero-copy registrations); the VM runner fails the run on any
 * splat. FUZZ_SECS (default 60 on the debug kernel, 15 otherwise) and
 * FUZZ_SEED (default: the time) replay a run: the seed is printed.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <time.h>
#include "furing_test.h"
#include "furing_ring.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-fuzz"
#define MAX_WRITE (128 << 10)
#define BUF_SIZE MAX_WRITE
#define HDR_SZ sizeof(struct furing_uring_req_header)
#define HDRS_LEN 4096
#define DEPTH 2
#define MAX_Q 64

/* Tags: the queue and slot of a well-formed command, or a fuzzed one. */
#define TAG(q, slot) ((uint64_t)(q) | (uint64_t)(slot) << 16 | 1ULL << 32)
#define TAG_FUZZ 0

static char reqbuf[MAX_WRITE + 4096];

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: the whole run follows from the seed. */
static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* One of @n values, picked at random. */
#define PICK(...) ({ \
	const uint64_t _v[] = { __VA_ARGS__ }; \
	_v[below(sizeof(_v) / sizeof(_v[0]))]; \
})

struct client {
	pthread_t th;
	int stop;
	long ops, errors;
};

/* Random client calls on the mount until told to stop. */
static void *client_thread(void *arg)
{
	struct client *c = arg;
	struct stat st;
	void *b;
	int fd;

	if (posix_memalign(&b, 4096, 4096))
		return NULL;
	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		long r;

		switch (c->ops % 3) {
		case 0:
			r = stat(MNT, &st);
			break;
		case 1:
			r = stat(MNT "/f", &st);
			break;
		default:
			fd = open(MNT "/f", O_RDONLY | O_DIRECT);
			r = fd < 0 ? -1 : pread(fd, b, 4096, 0);
			if (fd >= 0)
				close(fd);
		}
		c->ops++;
		c->errors += r < 0;
	}
	free(b);
	return NULL;
}

struct fuzz {
	int fd;
	long id;
	int cpus;
	uint64_t flags;		/* the session's mode: basic, a buffer ring, or with classes */
	struct io_uring ring;
	int ring_up;
	int client_up;
	struct client cl;
	void *hdr[MAX_Q], *buf[MAX_Q];
	struct iovec iov[MAX_Q][3];
	void *ro, *gone;	/* a read-only page; an unmapped range */
	/* a fuzzed command's iovecs (read at submit) */
	struct iovec fiov[1 + FURING_URING_MAX_BUF_CLASSES];
	long cmds, bad_errno, requests, replies, resets, client_ops, client_errors;
	long class_requests;	/* requests served on a session with buffer classes */
};

/* Whether @res is a command result the UAPI header documents. */
static int documented(int res)
{
	switch (-res) {
	case 0: case EINVAL: case EAGAIN: case EOPNOTSUPP: case ENOTCONN: case EPERM:
	case ECANCELED: case EEXIST: case ENOSPC: case EFAULT: case ENOMEM: case ENOENT:
		return 1;
	}
	return 0;
}

static int fz_mount(struct fuzz *z)
{
	struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;
	struct fuse_init_in init;

	z->fd = furing_open_and_mount(MNT);
	if (z->fd < 0)
		return z->fd;
	if (read(z->fd, reqbuf, sizeof(reqbuf)) < (ssize_t)sizeof(*ih) ||
	    ih->opcode != FUSE_INIT)
		return -EPROTO;
	memcpy(&init, ih + 1, sizeof(init));
	z->id = furing_conn_id(MNT);
	if (furing_answer_init(z->fd, &init, ih->unique, 1, MAX_WRITE))
		return -EIO;
	z->flags = PICK(0, FURING_URING_BUFRING, FURING_URING_BUFRING | FURING_URING_BUF_CLASSES);
	if (io_uring_queue_init(64, &z->ring, IORING_SETUP_SQE128))
		return -ENOMEM;
	z->ring_up = 1;
	z->cl = (struct client){ 0 };
	if (pthread_create(&z->cl.th, NULL, client_thread, &z->cl))
		return -ENOMEM;
	z->client_up = 1;
	return 0;
}

/* Tears the session down the way @how says: umount, abort, io_uring exit + close. */
static int fz_down(struct __test_metadata *_metadata, struct fuzz *z, int how)
{
	char path[96];
	struct timespec ts;

	z->resets++;
	if (how == 1) {
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", z->id);
		write_text(path, "1");
	}
	if (how == 2 && z->ring_up) {
		/* The server's io_uring goes first, the device after. */
		io_uring_queue_exit(&z->ring);
		z->ring_up = 0;
	}
	umount2(MNT, MNT_DETACH);
	if (z->ring_up)
		io_uring_queue_exit(&z->ring);
	z->ring_up = 0;
	if (z->fd >= 0)
		close(z->fd);
	z->fd = -1;
	if (z->client_up) {
		__atomic_store_n(&z->cl.stop, 1, __ATOMIC_RELEASE);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 20;
		/* With the server gone every call ends: a client that does not is a hang. */
		EXPECT_EQ(0, pthread_timedjoin_np(z->cl.th, NULL, &ts)) {
			TH_LOG("a client call hangs after teardown %d", how);
			return -1;
		}
		z->client_up = 0;
		z->client_ops += z->cl.ops;
		z->client_errors += z->cl.errors;
	}
	return 0;
}

/*
 * The buffer classes of a classes session: SMALL_BUFS of 4 KiB (ids 0..31) in
 * the second half of a queue's buffer region, one of BUF_SIZE (id 32) in its
 * first half.
 */
#define SMALL_BUFS (BUF_SIZE / 4096)
static const uint32_t class_sizes[FURING_URING_MAX_BUF_CLASSES] = { 4096, BUF_SIZE };

/* A well-formed REGISTER of @q (slot @slot on a buffer ring). */
static void fz_register(struct fuzz *z, int q, int slot)
{
	const uint32_t one[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE };
	struct furing_uring_cmd_req req = { .flags = z->flags, .qid = q };
	struct iovec *iov = z->iov[q];
	struct io_uring_sqe *sqe;
	unsigned int nr_iov = 2;

	if (z->flags & FURING_URING_BUF_CLASSES) {
		req = furing_register_req(z->flags, q, DEPTH, class_sizes);
		iov[0] = (struct iovec){ z->hdr[q], HDRS_LEN };
		iov[1] = (struct iovec){ (char *)z->buf[q] + BUF_SIZE, BUF_SIZE };
		iov[2] = (struct iovec){ z->buf[q], BUF_SIZE };
		nr_iov = 3;
	} else if (z->flags) {
		req = furing_register_req(z->flags, q, DEPTH, one);
		iov[0] = (struct iovec){ z->hdr[q], HDRS_LEN };
		iov[1] = (struct iovec){ z->buf[q], DEPTH * BUF_SIZE };
	} else {
		slot = 0;
		iov[0] = (struct iovec){ z->hdr[q], HDR_SZ };
		iov[1] = (struct iovec){ z->buf[q], BUF_SIZE };
	}
	sqe = furing_prep_cmd(&z->ring, z->fd, FURING_URING_CMD_REGISTER, &req, iov, nr_iov,
			      TAG(q, slot));
	sqe->buf_index = slot;
}

/* Where buffer @buf_id of queue @q is (a bad id: the region's start, as good as any). */
static char *fz_payload(struct fuzz *z, int q, unsigned int buf_id)
{
	char *base = z->buf[q];

	if (z->flags & FURING_URING_BUF_CLASSES)
		return buf_id < SMALL_BUFS ? base + BUF_SIZE + buf_id * 4096 : base;
	return z->flags && buf_id < DEPTH ? base + (size_t)buf_id * BUF_SIZE : base;
}

/* Some user address: valid, unaligned, read-only, unmapped, NULL, kernel, huge. */
static uint64_t fz_addr(struct fuzz *z, int q)
{
	switch (below(9)) {
	case 0: return (uintptr_t)z->hdr[q];
	case 1: return (uintptr_t)z->buf[q];
	case 2: return (uintptr_t)z->buf[q] + below(BUF_SIZE);
	case 3: return (uintptr_t)z->hdr[(q + 1) % z->cpus];	/* another queue's */
	case 4: return (uintptr_t)z->ro;
	case 5: return (uintptr_t)z->gone;
	case 6: return 0;
	case 7: return 0xffff888000000000ULL + below(1 << 20);
	default: return rnd();
	}
}

static uint64_t fz_len(void)
{
	return PICK(0, 1, HDR_SZ - 1, HDR_SZ, HDR_SZ + 1, 4095, 4096, 8192, BUF_SIZE - 1,
		    BUF_SIZE, BUF_SIZE + 1, DEPTH * BUF_SIZE, 1ULL << 31, ~0ULL, below(1 << 22));
}

/* A fuzzed command: a mutated well-formed one, or random fields. */
static void fz_command(struct fuzz *z)
{
	int q = below(z->cpus + 2), i;
	struct furing_uring_cmd_req req = { 0 };
	struct io_uring_sqe *sqe;
	uint32_t op;

	op = PICK(FURING_URING_CMD_REGISTER, FURING_URING_CMD_COMMIT_AND_FETCH,
		  FURING_URING_CMD_REGISTER, FURING_URING_CMD_COMMIT_AND_FETCH,
		  FURING_URING_CMD_INVALID, 3, 0x80000001, rnd());
	req.flags = PICK(0, z->flags, FURING_URING_BUFRING,
			 FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS,
			 FURING_URING_BUFRING | FURING_URING_PINNED_BUFFERS,
			 FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS |
			 FURING_URING_PINNED_BUFFERS | FURING_URING_ZERO_COPY,
			 FURING_URING_BUFRING | FURING_URING_BUF_CLASSES,
			 FURING_URING_BUFRING | FURING_URING_BUF_CLASSES |
			 FURING_URING_BUF_CLASSES_STRICT,
			 FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS |
			 FURING_URING_PINNED_BUFFERS | FURING_URING_BUF_CLASSES,
			 FURING_URING_ZERO_COPY, 1ULL << below(64), rnd());
	req.commit_id = PICK(0, 0, 1, rnd(), ~0ULL);
	req.qid = below(4) ? q : rnd();
	req.init.queue_depth = PICK(0, 1, DEPTH, 2048, 65535, rnd());
	req.init.buf_size = PICK(0, 1, 4096, BUF_SIZE, BUF_SIZE - 1, ~0U, rnd());
	/* Padding and reserved bytes: mostly 0. */
	if (!below(8))
		req.padding = rnd();
	if (!below(8))
		req.init.padding = rnd();
	if (!below(8))
		req.reserved[below(sizeof(req.reserved))] = rnd() | 1;
	/* Class sizes: increasing or not, a 0 in the middle, huge. */
	if ((req.flags & FURING_URING_BUF_CLASSES) && below(2))
		for (i = 0; i < FURING_URING_MAX_BUF_CLASSES - 1; i++)
			req.class_buf_size[i] = PICK(0, 0, 1, 512, 4096, BUF_SIZE - 1, BUF_SIZE,
						     2 * BUF_SIZE, ~0U, rnd());
	for (i = 0; i < 1 + FURING_URING_MAX_BUF_CLASSES; i++)
		z->fiov[i] = (struct iovec){ (void *)(uintptr_t)fz_addr(z, q % z->cpus),
					    fz_len() };
	if (below(2)) {
		/* Two overlapping iovecs in the same region. */
		z->fiov[1].iov_base = (char *)z->fiov[0].iov_base + below(HDRS_LEN);
	}
	sqe = furing_prep_cmd(&z->ring, z->fd, op, &req, z->fiov, 2, TAG_FUZZ);
	sqe->len = PICK(2, 2, 2, 0, 1, 3, 3, 4, 5, 6, 1 << 20, ~0U);
	switch (below(6)) {
	case 0: sqe->addr = 0; break;
	case 1: sqe->addr = (uintptr_t)z->gone; break;
	case 2: sqe->addr = (uintptr_t)z->ro; break;
	case 3: sqe->addr = 0xffff888000000000ULL; break;
	default: break;
	}
	sqe->buf_index = PICK(0, 1, DEPTH - 1, DEPTH, 65535, rnd());
	sqe->uring_cmd_flags = PICK(0, 0, IORING_URING_CMD_FIXED, 1U << below(32));
	if (!below(10))
		sqe->flags |= IOSQE_ASYNC;
}

/* Answers the request in @q's slot @slot: well formed, or malformed. */
static void fz_answer(struct fuzz *z, int q, int slot)
{
	struct furing_uring_req_header *h =
		(void *)((char *)z->hdr[q] + (z->flags ? slot * HDR_SZ : 0));
	struct furing_uring_cmd_req c = { .qid = q };
	struct fuse_in_header ih;
	struct fuse_out_header oh;
	uint32_t len = 0;
	char *payload = fz_payload(z, q, h->ring_ent_in_out.buf_id);

	memcpy(&ih, h->in_out, sizeof(ih));
	oh = (struct fuse_out_header){ .unique = ih.unique };
	c.commit_id = ih.unique;
	switch (ih.opcode) {
	case FUSE_GETATTR: {
		struct fuse_attr_out a = { .attr = { .ino = ih.nodeid, .nlink = 1,
				.mode = ih.nodeid == 1 ? S_IFDIR | 0755 : S_IFREG | 0644,
				.size = 1 << 20 } };

		memcpy(payload, &a, sizeof(a));
		len = sizeof(a);
		break;
	}
	case FUSE_LOOKUP: {
		struct fuse_entry_out e = { .nodeid = 2, .attr = { .ino = 2, .nlink = 1,
				.mode = S_IFREG | 0644, .size = 1 << 20 } };

		memcpy(payload, &e, sizeof(e));
		len = sizeof(e);
		break;
	}
	case FUSE_OPEN: {
		struct fuse_open_out o = { .fh = 1 };

		memcpy(payload, &o, sizeof(o));
		len = sizeof(o);
		break;
	}
	case FUSE_READ:
		memset(payload, 'r', 4096);
		len = 4096;
		break;
	case FUSE_RELEASE:
		break;
	default:
		oh.error = -ENOSYS;
	}
	if (!below(4)) {
		/* Malformed: the client must get an errno, the entry must go on. */
		switch (below(5)) {
		case 0: oh.unique = PICK(0, rnd(), ih.unique + 1); break;
		case 1: oh.error = -(int)below(600) + (int)below(8); break;
		case 2: len = PICK(1, len + 1, len ? len - 1 : 0, BUF_SIZE, BUF_SIZE + 1,
				   ~0U); break;
		case 3: oh.len = rnd(); break;
		default: c.commit_id = PICK(0, rnd(), ih.unique + 1); break;
		}
	}
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = len;
	furing_prep_cmd(&z->ring, z->fd, FURING_URING_CMD_COMMIT_AND_FETCH, &c, z->iov[q], 2,
			TAG(q, slot));
	z->replies++;
}

/* Takes every CQE there is: checks its result, answers requests. */
static void fz_reap(struct __test_metadata *_metadata, struct fuzz *z)
{
	struct io_uring_cqe *cqe;

	while (io_uring_peek_cqe(&z->ring, &cqe) == 0) {
		uint64_t tag = cqe->user_data;
		int res = cqe->res;

		io_uring_cqe_seen(&z->ring, cqe);
		if (!documented(res)) {
			z->bad_errno++;
			EXPECT_TRUE(documented(res)) {
				TH_LOG("command result %d is not in the UAPI table (tag %llx)", res,
				       (unsigned long long)tag);
			}
		}
		if (res == 0 && tag != TAG_FUZZ) {
			/* A request for a well-formed entry. */
			z->requests++;
			z->class_requests += !!(z->flags & FURING_URING_BUF_CLASSES);
			fz_answer(z, tag & 0xffff, (tag >> 16) & 0xffff);
		}
	}
}

FIXTURE(fuzz) {
	int unused;
};

FIXTURE_SETUP(fuzz)
{
}

FIXTURE_TEARDOWN(fuzz)
{
}

/* FUZZ_SECS plus time for teardowns and the final checks. */
TEST_F_TIMEOUT(fuzz, commands, 840)
{
	const char *e = getenv("FUZZ_SECS");
	long secs = e ? atol(e) : furing_debug_kernel() ? 60 : 15, end, pins0;
	uint64_t seed;
	struct fuzz z = { .fd = -1 };
	int q, ret;

	e = getenv("FUZZ_SEED");
	seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) * 2654435761ULL;
	rng = seed | 1;
	TH_LOG("seed 0x%llx (FUZZ_SEED=0x%llx to replay), %ld s", (unsigned long long)seed,
	       (unsigned long long)seed, secs);
	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_EQ(0, furing_wait_unused(10));
	pins0 = furing_pins();
	ASSERT_LE(0, pins0);
	z.cpus = sysconf(_SC_NPROCESSORS_CONF);
	ASSERT_GE(MAX_Q, z.cpus);
	for (q = 0; q < z.cpus; q++) {
		z.hdr[q] = mmap(NULL, HDRS_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
		z.buf[q] = mmap(NULL, DEPTH * BUF_SIZE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		ASSERT_NE(MAP_FAILED, z.hdr[q]);
		ASSERT_NE(MAP_FAILED, z.buf[q]);
	}
	z.ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	z.gone = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, z.ro);
	ASSERT_NE(MAP_FAILED, z.gone);
	munmap(z.gone, 4096);

	end = now_ms() + secs * 1000;
	while (now_ms() < end) {
		if (z.fd < 0) {
			ASSERT_EQ(0, fz_mount(&z));
			for (q = 0; q < z.cpus; q++)
				fz_register(&z, q, 0);
		}
		switch (below(40)) {
		case 0:
			/* Teardown: umount, fusectl abort, or the server's io_uring first. */
			ASSERT_EQ(0, fz_down(_metadata, &z, below(3)));
			continue;
		case 1:
			/* The io_uring goes, the mount stays; a new one registers again. */
			io_uring_queue_exit(&z.ring);
			ASSERT_EQ(0, io_uring_queue_init(64, &z.ring, IORING_SETUP_SQE128));
			for (q = 0; q < z.cpus; q++)
				fz_register(&z, q, 0);
			break;
		case 2: case 3: case 4:
			q = below(z.cpus);
			fz_register(&z, q, below(DEPTH + 1));
			break;
		default:
			fz_command(&z);
			z.cmds++;
		}
		ret = io_uring_submit(&z.ring);
		EXPECT_LE(0, ret) {
			TH_LOG("io_uring_submit: %d", ret);
		}
		/* Give the client's requests a moment to arrive, then take the CQEs. */
		if (!below(8))
			usleep(1000);
		fz_reap(_metadata, &z);
	}
	if (z.fd >= 0)
		ASSERT_EQ(0, fz_down(_metadata, &z, 0));
	TH_LOG("%ld fuzzed commands, %ld requests served (%ld with buffer classes), %ld replies "
	       "(1 in 4 malformed), %ld sessions, client: %ld calls, %ld errors", z.cmds,
	       z.requests, z.class_requests, z.replies, z.resets, z.client_ops, z.client_errors);
	EXPECT_EQ(0, z.bad_errno);
	/* Nothing left: module references, pins, locked memory, registrations. */
	EXPECT_EQ(0, furing_wait_unused(20));
	EXPECT_EQ(pins0, furing_pins());
	EXPECT_EQ(0, furing_vmlck_kb(0));
	EXPECT_EQ(0, furing_zc_live());
}

TEST_HARNESS_MAIN
