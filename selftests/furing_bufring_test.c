// SPDX-License-Identifier: GPL-2.0
/*
 * Buffer-ring queues (FURING_URING_BUFRING), their buffer classes
 * (FURING_URING_BUF_CLASSES, _STRICT) and pinned regions
 * (FURING_URING_PINNED_HEADERS / _PINNED_BUFFERS), set up by hand: every bad
 * REGISTER gets its documented errno; a request takes a buffer of the
 * smallest class that holds it, or a larger one (not strict) when that has
 * none free; pinned regions are charged to the server's locked memory and
 * pinned once, and every teardown (umount, fusectl abort, io_uring exit,
 * kill -9) gives back both the charge and the pins.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <linux/capability.h>
#include "furing_test.h"
#include "furing_ring.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-bufring-test"
#define MAX_WRITE (1 << 20)
#define BUF_SIZE MAX_WRITE	/* the smallest legal buf_size */
#define HDR_SZ sizeof(struct furing_uring_req_header)
#define HDRS_LEN 4096		/* room for 14 header slots, one page */
#define PAYLOAD_LEN (2 * BUF_SIZE)
#define DEPTH 4
#define ALL_PINNED (FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | \
		    FURING_URING_PINNED_BUFFERS)
/*
 * The classes queue of the tests (self->civ): class 0 NR_SMALL buffers of
 * SMALL bytes (ids 0, 1) in self->small, class 1 two of BUF_SIZE (ids 2, 3)
 * in self->payload.
 */
#define CLASSES (FURING_URING_BUFRING | FURING_URING_BUF_CLASSES)
#define SMALL 4096
#define NR_SMALL 2
#define SMALL_LEN (NR_SMALL * SMALL)
#define NR_LARGE (PAYLOAD_LEN / BUF_SIZE)
static const uint32_t class_sizes[FURING_URING_MAX_BUF_CLASSES] = { SMALL, BUF_SIZE };

static char reqbuf[MAX_WRITE + 4096];

/* FOLL_PIN pins held now beyond the baseline taken when the fixture was set up. */
static long pins_base;

static long pins_held(void)
{
	return furing_pins() - pins_base;
}

FIXTURE(br) {
	int fd;
	long id;
	struct io_uring ring;
	void *hdrs, *payload, *small;
	struct iovec iov[2];
	struct iovec civ[3];	/* the classes queue's: headers, class 0, class 1 */
};

FIXTURE_SETUP(br)
{
	struct fuse_in_header *ih;

	ASSERT_EQ(0, furing_ensure_loaded());
	/* The last test's connection and rings are gone (their pins with them). */
	ASSERT_EQ(0, furing_wait_unused(10));
	pins_base = furing_pins();
	/* Without the vmstat pin counters every pin check below would be 0 == 0. */
	ASSERT_LE(0, pins_base);
	self->fd = furing_open_and_mount(MNT);
	ASSERT_LE(0, self->fd);
	self->id = furing_conn_id(MNT);
	ASSERT_LE(0, self->id);
	ASSERT_LT(0, read(self->fd, reqbuf, sizeof(reqbuf)));
	ih = (struct fuse_in_header *)reqbuf;
	ASSERT_EQ(FUSE_INIT, ih->opcode);
	ASSERT_EQ(0, furing_answer_init(self->fd, (struct fuse_init_in *)(ih + 1), ih->unique, 1,
					MAX_WRITE));
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
	self->hdrs = mmap(NULL, HDRS_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	self->payload = mmap(NULL, PAYLOAD_LEN, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	self->small = mmap(NULL, SMALL_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			   -1, 0);
	ASSERT_NE(MAP_FAILED, self->hdrs);
	ASSERT_NE(MAP_FAILED, self->payload);
	ASSERT_NE(MAP_FAILED, self->small);
	self->iov[0] = (struct iovec){ self->hdrs, HDRS_LEN };
	self->iov[1] = (struct iovec){ self->payload, PAYLOAD_LEN };
	self->civ[0] = self->iov[0];
	self->civ[1] = (struct iovec){ self->small, SMALL_LEN };
	self->civ[2] = self->iov[1];
}

FIXTURE_TEARDOWN(br)
{
	io_uring_queue_exit(&self->ring);
	umount2(MNT, MNT_DETACH);
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * REGISTER of entry @slot of queue @qid with @flags, @depth, the class sizes
 * @sizes (furing_register_req()) and @nr_iov iovecs at @iov; the command's
 * result, or FURING_NO_CQE when it was parked.
 */
static int reg_q(FIXTURE_DATA(br) *self, uint16_t qid, uint64_t flags, uint32_t depth,
		 const uint32_t *sizes, uint16_t slot, struct iovec *iov, unsigned int nr_iov)
{
	struct furing_uring_cmd_req req = furing_register_req(flags, qid, depth, sizes);
	struct io_uring_sqe *sqe;

	sqe = furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req, iov, nr_iov,
			      slot);
	sqe->buf_index = slot;
	if (io_uring_submit(&self->ring) != 1)
		return -9999;
	return furing_wait_cqe(&self->ring, 200, NULL);
}

/* reg_q() on queue 0 with the classes @sizes and 1 + @nr_iov iovecs. */
static int reg_classes(FIXTURE_DATA(br) *self, uint64_t flags, const uint32_t *sizes,
		       uint16_t slot, struct iovec *iov, unsigned int nr_iov)
{
	return reg_q(self, 0, flags, DEPTH, sizes, slot, iov, nr_iov);
}

/* REGISTER of a one-class queue 0 with @flags, @depth, @buf_size and two iovecs at @iov. */
static int reg(FIXTURE_DATA(br) *self, uint64_t flags, uint32_t depth, uint32_t buf_size,
	       uint16_t slot, struct iovec *iov)
{
	const uint32_t sizes[FURING_URING_MAX_BUF_CLASSES] = { buf_size };

	return reg_q(self, 0, flags, depth, sizes, slot, iov, 2);
}

/* Waits (up to 5 s) until the last ring's entries are gone; 0 or -1. */
static int wait_queue_empty(FIXTURE_DATA(br) *self)
{
	struct furing_qstats st;
	int i;

	for (i = 0; i < 500; i++) {
		if (!furing_queue_stats(self->id, &st) && st.entries == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

/*
 * The default REGISTER: entry @slot of a DEPTH-deep ring with @flags; with
 * FURING_URING_BUF_CLASSES the classes of self->civ, else BUF_SIZE buffers.
 */
static int reg_ok(FIXTURE_DATA(br) *self, uint64_t flags, uint16_t slot)
{
	if (flags & FURING_URING_BUF_CLASSES)
		return reg_classes(self, flags, class_sizes, slot, self->civ, 3);
	return reg(self, flags, DEPTH, BUF_SIZE, slot, self->iov);
}

/* Pages the default REGISTER of @flags covers: its headers and payload regions. */
static long reg_ok_pages(uint64_t flags)
{
	return (HDRS_LEN + PAYLOAD_LEN + (flags & FURING_URING_BUF_CLASSES ? SMALL_LEN : 0)) / 4096;
}

TEST_F(br, flags)
{
	/* Unknown bits (the first after FURING_URING_BUF_CLASSES_STRICT). */
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | 1ULL << 6, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, 1ULL << 63, 0));
	/* PINNED_* without BUFRING. */
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_PINNED_HEADERS, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_PINNED_BUFFERS, 0));
	/* Zero-copy needs both pinned regions. */
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | FURING_URING_ZERO_COPY, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS |
					FURING_URING_ZERO_COPY, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | FURING_URING_PINNED_BUFFERS |
					FURING_URING_ZERO_COPY, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_ZERO_COPY, 0));
	/* Nothing was set up by any of them. */
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, FURING_URING_BUFRING, 0));
}

/*
 * IORING_URING_CMD_FIXED on REGISTER (the v2 series' server sets it on a
 * buffer-ring queue's commands, with buf_index the entry): accepted, parked.
 */
TEST_F(br, cmd_fixed_flag_accepted)
{
	struct furing_uring_cmd_req req = {
		.flags = FURING_URING_BUFRING,
		.init = { .queue_depth = DEPTH, .buf_size = BUF_SIZE },
	};
	struct io_uring_sqe *sqe;
	uint16_t slot;

	for (slot = 0; slot < 2; slot++) {
		sqe = furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req,
				      self->iov, 2, slot);
		sqe->buf_index = slot;
		sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
	}
	ASSERT_EQ(2, io_uring_submit(&self->ring));
	EXPECT_EQ(0, furing_wait_entries(self->id, "available", 2));
	EXPECT_EQ(FURING_NO_CQE, furing_wait_cqe(&self->ring, 200, NULL));
}

/* Zero-copy: with every flag it needs and CAP_SYS_ADMIN; buffers may be small. */
TEST_F(br, zero_copy)
{
	struct furing_qstats st;

	EXPECT_EQ(FURING_NO_CQE, reg(self, ALL_PINNED | FURING_URING_ZERO_COPY, DEPTH, 4096, 0,
				     self->iov));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ((unsigned long)(ALL_PINNED | FURING_URING_ZERO_COPY), st.flags);
	EXPECT_EQ(PAYLOAD_LEN / 4096, st.bufs);
	/* Without zero-copy a 4 KiB buffer is too small for a 1 MiB write. */
	io_uring_queue_exit(&self->ring);
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
	EXPECT_EQ(0, wait_queue_empty(self));
	EXPECT_EQ(-EINVAL, reg(self, ALL_PINNED, DEPTH, 4096, 0, self->iov));
}

struct zc_client {
	ssize_t ret;
	int written;	/* ret is set */
	int keep_open;	/* set: the file stays open until may_close */
	int may_close;
	int done;
};

/* Opens MNT/f with O_DIRECT and writes 64 KiB (the zero-copy threshold) to it. */
static void *zc_client_thread(void *arg)
{
	struct zc_client *c = arg;
	char *buf;
	int fd;

	c->ret = -1;
	if (posix_memalign((void **)&buf, 4096, 64 << 10) == 0) {
		memset(buf, 'w', 64 << 10);
		fd = open(MNT "/f", O_RDWR | O_DIRECT);
		c->ret = fd < 0 ? -errno : pwrite(fd, buf, 64 << 10, 0);
		if (c->ret < 0 && fd >= 0)
			c->ret = -errno;
		__atomic_store_n(&c->written, 1, __ATOMIC_RELEASE);
		while (c->keep_open && !__atomic_load_n(&c->may_close, __ATOMIC_ACQUIRE))
			usleep(1000);
		if (fd >= 0)
			close(fd);
		free(buf);
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Commits the request in header slot @slot on queue @qid of @ring (the
 * command's tag: @tag): error @error, or @len bytes of @payload into its
 * payload buffer, at @buf. Waits @wait_ms for the command's CQE (0: not at
 * all) and returns its result, or FURING_NO_CQE.
 */
static int commit(FIXTURE_DATA(br) *self, struct io_uring *ring, uint16_t qid, uint16_t slot,
		  uint64_t tag, int error, void *buf, const void *payload, uint32_t len, int wait_ms)
{
	struct furing_uring_req_header *h = (struct furing_uring_req_header *)self->hdrs + slot;
	struct fuse_in_header ih;
	struct fuse_out_header oh;
	struct furing_uring_cmd_req c = { .qid = qid };

	memcpy(&ih, h->in_out, sizeof(ih));
	oh = (struct fuse_out_header){ .unique = ih.unique, .error = error };
	c.commit_id = ih.unique;
	if (len)
		memcpy(buf, payload, len);
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = len;
	furing_prep_cmd(ring, self->fd, FURING_URING_CMD_COMMIT_AND_FETCH, &c, self->iov, 2, tag);
	if (io_uring_submit(ring) != 1)
		return -9999;
	return wait_ms ? furing_wait_cqe(ring, wait_ms, NULL) : FURING_NO_CQE;
}

/* commit() of header slot 0 of queue @qid, whose buffers are 4096 bytes. */
static int zc_commit(FIXTURE_DATA(br) *self, struct io_uring *ring, uint16_t qid, int error,
		     const void *payload, uint32_t len, int wait_ms)
{
	struct furing_uring_req_header *h = self->hdrs;

	return commit(self, ring, qid, 0, qid, error,
		      (char *)self->payload + h->ring_ent_in_out.buf_id * 4096, payload, len,
		      wait_ms);
}

/*
 * Sets up a zero-copy queue per CPU on self->ring, one entry each (header
 * slot 0, buffer index 0; a command's tag is its queue).
 */
static void zc_register_all(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self, int cpus)
{
	int q;

	ASSERT_EQ(0, io_uring_register_buffers_sparse(&self->ring, DEPTH));
	for (q = 0; q < cpus; q++) {
		struct furing_uring_cmd_req req = {
			.flags = ALL_PINNED | FURING_URING_ZERO_COPY, .qid = q,
			.init = { .queue_depth = DEPTH, .buf_size = 4096 },
		};

		furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req, self->iov,
				2, q)->buf_index = 0;
	}
	ASSERT_EQ(cpus, io_uring_submit(&self->ring));
	ASSERT_EQ(0, furing_wait_entries(self->id, "available", cpus));
}

/*
 * Serves the zero-copy client's requests on self->ring by hand (LOOKUP and
 * OPEN; -ENOSYS for the rest) until a WRITE arrives, left to the caller in
 * header slot 0 (returns 1, its queue in *@qid), or the client is done (0).
 */
static int zc_serve_until_write(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
				struct zc_client *cl, uint64_t *qid)
{
	struct furing_uring_req_header *h = self->hdrs;
	struct fuse_in_header ih;
	int res;

	while (!__atomic_load_n(&cl->done, __ATOMIC_ACQUIRE)) {
		res = furing_wait_cqe(&self->ring, 200, qid);
		if (res == FURING_NO_CQE)
			continue;
		/* Every CQE is a request for an entry (a commit that failed would show here). */
		ASSERT_EQ(0, res);
		memcpy(&ih, h->in_out, sizeof(ih));
		if (ih.opcode == FUSE_LOOKUP) {
			/* Large enough that the write does not extend it (a failed extending
			 * direct write truncates: a SETATTR). */
			struct fuse_entry_out e = {
				.nodeid = 2, .entry_valid = 100, .attr_valid = 100,
				.attr = { .ino = 2, .mode = S_IFREG | 0644, .nlink = 1,
					  .size = 1 << 20 },
			};

			zc_commit(self, &self->ring, *qid, 0, &e, sizeof(e), 0);
		} else if (ih.opcode == FUSE_OPEN) {
			struct fuse_open_out o = { .fh = 1 };

			zc_commit(self, &self->ring, *qid, 0, &o, sizeof(o), 0);
		} else if (ih.opcode == FUSE_WRITE) {
			return 1;
		} else {
			/* FLUSH, RELEASE, GETATTR...: not needed here. */
			zc_commit(self, &self->ring, *qid, -ENOSYS, NULL, 0, 0);
		}
	}
	return 0;
}

/*
 * Zero-copy pages are registered with the entry's io_uring: a COMMIT_AND_FETCH
 * from another io_uring is refused with EINVAL and leaves the request (and its
 * registration) as it was; the entry's own ring commits it, and the
 * registration goes with that commit. The test serves LOOKUP and OPEN by hand.
 */
TEST_F_TIMEOUT(br, zero_copy_commit_from_other_ring, 120)
{
	struct furing_uring_req_header *h = self->hdrs;
	struct fuse_write_out wo = { .size = 64 << 10 };
	struct zc_client cl = { 0 };
	int cpus = sysconf(_SC_NPROCESSORS_CONF), i, zc_seen = 0;
	struct io_uring other;
	uint64_t qid;
	pthread_t th;

	ASSERT_EQ(0, io_uring_queue_init(4, &other, IORING_SETUP_SQE128));
	zc_register_all(_metadata, self, cpus);
	ASSERT_EQ(0, pthread_create(&th, NULL, zc_client_thread, &cl));
	while (zc_serve_until_write(_metadata, self, &cl, &qid)) {
		zc_seen = !!(h->ring_ent_in_out.flags & FURING_URING_ENT_ZERO_COPY);
		EXPECT_TRUE(zc_seen);
		EXPECT_EQ(64 << 10, h->ring_ent_in_out.payload_sz);
		EXPECT_EQ(1, furing_zc_live());
		/* Another io_uring: refused, nothing changes. */
		EXPECT_EQ(-EINVAL, zc_commit(self, &other, qid, 0, &wo, sizeof(wo), 2000));
		EXPECT_EQ(1, furing_zc_live());
		EXPECT_EQ(1, furing_entries(self->id, "userspace"));
		/* The entry's own ring; the registration goes with the commit. */
		zc_commit(self, &self->ring, qid, 0, &wo, sizeof(wo), 0);
		for (i = 0; i < 100 && furing_zc_live() != 0; i++)
			usleep(10000);
		EXPECT_EQ(0, furing_zc_live());
	}
	pthread_join(th, NULL);
	EXPECT_EQ(64 << 10, cl.ret);
	EXPECT_TRUE(zc_seen);
	io_uring_queue_exit(&other);
}

/*
 * Sets up a zero-copy queue per CPU, starts @cl's write (thread *@th) and
 * serves it until the server holds its WRITE (on queue *@qid). False with one
 * CPU: no second queue would keep a parked command for the ring's exit to
 * cancel (the caller skips).
 */
static bool zc_hold_write(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
			  struct zc_client *cl, pthread_t *th, uint64_t *qid)
{
	int cpus = sysconf(_SC_NPROCESSORS_CONF);

	if (cpus < 2)
		return false;
	zc_register_all(_metadata, self, cpus);
	ASSERT_EQ(0, pthread_create(th, NULL, zc_client_thread, cl));
	ASSERT_EQ(1, zc_serve_until_write(_metadata, self, cl, qid));
	return true;
}

/* Waits up to 10 s for the client's write to return; its result, or -ETIMEDOUT. */
static ssize_t zc_wait_written(struct zc_client *cl)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (__atomic_load_n(&cl->written, __ATOMIC_ACQUIRE))
			return cl->ret;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* Waits up to 5 s for every zero-copy page set to be gone; 0 or -1. */
static int zc_wait_unregistered(void)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (furing_zc_live() == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

/*
 * The server's io_uring goes while it holds a zero-copy WRITE, its device fd
 * stays: the WRITE's pages are unregistered and it ends with ECONNABORTED (the
 * client is not left waiting for the teardown), and its slot is free for a new
 * ring. A parked command of another queue is what the ring's exit cancels.
 */
TEST_F_TIMEOUT(br, zero_copy_ring_exit_ends_held, 120)
{
	const uint32_t sizes[FURING_URING_MAX_BUF_CLASSES] = { 4096 };
	struct zc_client cl = { 0 };
	uint64_t qid;
	pthread_t th;

	if (!zc_hold_write(_metadata, self, &cl, &th, &qid))
		SKIP(return, "one CPU: no second queue to hold a parked command");
	EXPECT_EQ(1, furing_zc_live());
	EXPECT_EQ(1, furing_entries(self->id, "userspace"));
	io_uring_queue_exit(&self->ring);
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
	EXPECT_EQ(-ECONNABORTED, zc_wait_written(&cl));
	EXPECT_EQ(0, zc_wait_unregistered());
	EXPECT_EQ(0, furing_entries(self->id, "userspace"));
	ASSERT_EQ(0, io_uring_register_buffers_sparse(&self->ring, DEPTH));
	EXPECT_EQ(FURING_NO_CQE, reg_q(self, qid, ALL_PINNED | FURING_URING_ZERO_COPY, DEPTH,
				       sizes, 0, self->iov, 2));
	/* Nothing serves the client's FLUSH (or, without the fix, its WRITE): abort. */
	EXPECT_EQ(0, furing_abort(self->id));
	pthread_join(th, NULL);
}

/* Requests of connection @id not ended yet (fusectl "waiting"), or -1. */
static long conn_waiting(long id)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/waiting", id);
	return read_text(path, buf, sizeof(buf)) < 0 ? -1 : strtol(buf, NULL, 10);
}

/*
 * IORING_REGISTER_CLONE_BUFFERS of every buffer of @src into @dst (Linux 6.13's
 * struct io_uring_clone_buffers: Debian 12's headers predate it); 0 or -errno.
 */
static int clone_buffers(struct io_uring *dst, struct io_uring *src)
{
	struct { uint32_t src_fd, flags, src_off, dst_off, nr, pad[3]; } arg = {
		.src_fd = src->ring_fd,
	};

	return syscall(__NR_io_uring_register, dst->ring_fd, 30, &arg, 1) < 0 ? -errno : 0;
}

enum zc_release { RELEASE_BY_CLONE_EXIT, RELEASE_BY_ABORT };

/*
 * The server's io_uring goes while it holds a zero-copy WRITE whose pages a
 * second io_uring holds too (a clone of its buffer table): the entry goes, but
 * the WRITE must not end while an io_uring can still reach its pages. It ends
 * with ECONNABORTED when the clone lets go of them (@how RELEASE_BY_CLONE_EXIT)
 * or at an abort, which waits for no server (RELEASE_BY_ABORT).
 */
static void zc_held_by_clone(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
			     enum zc_release how)
{
	struct zc_client cl = { .keep_open = 1 };
	struct io_uring clone;
	uint64_t qid;
	pthread_t th;

	if (!zc_hold_write(_metadata, self, &cl, &th, &qid))
		SKIP(return, "one CPU: no second queue to hold a parked command");
	ASSERT_EQ(0, io_uring_queue_init(4, &clone, 0));
	ASSERT_EQ(0, clone_buffers(&clone, &self->ring));
	io_uring_queue_exit(&self->ring);
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
	/* The entry went (the ring's exit cancelled the other queue's command)... */
	EXPECT_EQ(0, furing_wait_entries(self->id, "userspace", 0));
	/* ...but the WRITE has not ended (the one request; its file stays open): the
	 * clone still holds its pages. */
	EXPECT_EQ(1, conn_waiting(self->id));
	EXPECT_FALSE(__atomic_load_n(&cl.written, __ATOMIC_ACQUIRE));
	EXPECT_EQ(1, furing_zc_live());
	if (how == RELEASE_BY_CLONE_EXIT) {
		io_uring_queue_exit(&clone);
	} else {
		EXPECT_EQ(0, furing_abort(self->id));
	}
	EXPECT_EQ(-ECONNABORTED, zc_wait_written(&cl));
	if (how == RELEASE_BY_ABORT)
		io_uring_queue_exit(&clone);
	EXPECT_EQ(0, zc_wait_unregistered());
	/* Nothing serves the client's FLUSH: abort (again). */
	EXPECT_EQ(0, furing_abort(self->id));
	__atomic_store_n(&cl.may_close, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
}

TEST_F_TIMEOUT(br, zero_copy_held_by_clone_ends_on_release, 120)
{
	zc_held_by_clone(_metadata, self, RELEASE_BY_CLONE_EXIT);
}

TEST_F_TIMEOUT(br, zero_copy_held_by_clone_ends_on_abort, 120)
{
	zc_held_by_clone(_metadata, self, RELEASE_BY_ABORT);
}

/* Drops @cap from this process's capability sets; 0 or -errno. */
static int drop_cap(int cap)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];

	if (syscall(SYS_capget, &hdr, data))
		return -errno;
	data[cap / 32].effective &= ~(1U << (cap % 32));
	data[cap / 32].permitted &= ~(1U << (cap % 32));
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

/* Zero-copy without CAP_SYS_ADMIN: EPERM (from a child that dropped it). */
TEST_F(br, zero_copy_unprivileged)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		io_uring_queue_exit(&self->ring);
		if (drop_cap(CAP_SYS_ADMIN) ||
		    io_uring_queue_init(8, &self->ring, IORING_SETUP_SQE128))
			_exit(10);
		if (reg_ok(self, ALL_PINNED | FURING_URING_ZERO_COPY, 0) != -EPERM)
			_exit(11);
		/* The same queue without zero-copy is fine unprivileged. */
		if (reg_ok(self, ALL_PINNED, 0) != FURING_NO_CQE)
			_exit(12);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child status %#x (10: setup, 11: not EPERM, 12: pinned failed)", status);
	}
}

TEST_F(br, geometry)
{
	struct iovec iov[2];

	EXPECT_EQ(-EINVAL, reg(self, FURING_URING_BUFRING, 0, BUF_SIZE, 0, self->iov));
	EXPECT_EQ(-EINVAL, reg(self, FURING_URING_BUFRING, FURING_URING_MAX_QUEUE_DEPTH + 1,
			       BUF_SIZE, 0, self->iov));
	/* The headers region must hold depth slots: 14 fit in a page, 15 do not. */
	EXPECT_EQ(-EINVAL, reg(self, FURING_URING_BUFRING, HDRS_LEN / HDR_SZ + 1, BUF_SIZE, 0,
			       self->iov));
	/* buf_size below the largest payload, and 0. */
	EXPECT_EQ(-EINVAL, reg(self, FURING_URING_BUFRING, DEPTH, BUF_SIZE - 1, 0, self->iov));
	EXPECT_EQ(-EINVAL, reg(self, FURING_URING_BUFRING, DEPTH, 0, 0, self->iov));
	/* Not one whole buffer in the payload region. */
	iov[0] = self->iov[0];
	iov[1] = (struct iovec){ self->payload, BUF_SIZE - 1 };
	EXPECT_EQ(-EINVAL, reg(self, FURING_URING_BUFRING, DEPTH, BUF_SIZE, 0, iov));
	/* buf_index beyond the depth. */
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING, DEPTH));
	/* Then a good one. */
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, FURING_URING_BUFRING, DEPTH - 1));
}

TEST_F(br, second_register)
{
	struct furing_qstats st;

	ASSERT_EQ(FURING_NO_CQE, reg_ok(self, FURING_URING_BUFRING, 0));
	/* The same slot twice. */
	EXPECT_EQ(-EEXIST, reg_ok(self, FURING_URING_BUFRING, 0));
	/* Other flags than the queue's first REGISTER, or basic mode. */
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS, 1));
	EXPECT_EQ(-EINVAL, reg_ok(self, 0, 1));
	/* A later REGISTER's init and iovecs are not read again. */
	EXPECT_EQ(FURING_NO_CQE, reg(self, FURING_URING_BUFRING, 0, 0, 1, NULL));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ(2, st.entries);
	EXPECT_EQ(FURING_URING_BUFRING, st.flags);
	EXPECT_EQ(2, st.bufs);
	EXPECT_EQ(0, st.bufs_used);
	EXPECT_EQ(0, st.pinned);
}

TEST_F(br, basic_queue_refuses_bufring)
{
	struct iovec iov[2] = { { self->hdrs, HDR_SZ }, { self->payload, PAYLOAD_LEN } };

	ASSERT_EQ(FURING_NO_CQE, reg(self, 0, 0, 0, 0, iov));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING, 1));
}

/*
 * A pinned region's address must be page aligned (EINVAL); its length need not
 * be (the v2 series' server passes depth * 288 for its headers): the pages it
 * covers are pinned.
 */
TEST_F(br, pinned_alignment)
{
	struct iovec iov[2];

	iov[0] = (struct iovec){ (char *)self->hdrs + 64, HDRS_LEN - 64 };
	iov[1] = self->iov[1];
	EXPECT_EQ(-EINVAL, reg(self, ALL_PINNED, DEPTH, BUF_SIZE, 0, iov));
	iov[0] = self->iov[0];
	iov[1] = (struct iovec){ (char *)self->payload + 512, BUF_SIZE };
	EXPECT_EQ(-EINVAL, reg(self, ALL_PINNED, DEPTH, BUF_SIZE, 0, iov));
	EXPECT_EQ(0, pins_held());
	/* Neither length a page multiple: one page of headers, the payload's pages. */
	iov[0] = (struct iovec){ self->hdrs, DEPTH * HDR_SZ };
	iov[1] = (struct iovec){ self->payload, PAYLOAD_LEN - 512 };
	EXPECT_EQ(FURING_NO_CQE, reg(self, ALL_PINNED, DEPTH, BUF_SIZE, 0, iov));
	EXPECT_EQ(0, furing_wait_entries(self->id, "available", 1));
	EXPECT_EQ(1 + PAYLOAD_LEN / 4096, pins_held());
}

TEST_F(br, unmapped_or_read_only)
{
	const uint64_t modes[] = { FURING_URING_BUFRING, ALL_PINNED };
	void *gone, *ro;
	struct iovec iov[2];
	unsigned int i;

	gone = mmap(NULL, PAYLOAD_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, gone);
	munmap(gone, PAYLOAD_LEN);
	ro = mmap(NULL, PAYLOAD_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	for (i = 0; i < 2; i++) {
		iov[0] = (struct iovec){ gone, HDRS_LEN };
		iov[1] = self->iov[1];
		EXPECT_EQ(-EFAULT, reg(self, modes[i], DEPTH, BUF_SIZE, 0, iov));
		iov[0] = self->iov[0];
		iov[1] = (struct iovec){ gone, PAYLOAD_LEN };
		EXPECT_EQ(-EFAULT, reg(self, modes[i], DEPTH, BUF_SIZE, 0, iov));
		iov[1] = (struct iovec){ ro, PAYLOAD_LEN };
		EXPECT_EQ(-EFAULT, reg(self, modes[i], DEPTH, BUF_SIZE, 0, iov));
		iov[0] = (struct iovec){ ro, HDRS_LEN };
		iov[1] = self->iov[1];
		EXPECT_EQ(-EFAULT, reg(self, modes[i], DEPTH, BUF_SIZE, 0, iov));
	}
	munmap(ro, PAYLOAD_LEN);
	/* Nothing stays pinned or charged from the failed attempts. */
	EXPECT_EQ(0, pins_held());
	EXPECT_EQ(0, furing_vmlck_kb(0));
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, ALL_PINNED, 0));
}

/*
 * In a forked child: RLIMIT_MEMLOCK at 64 KiB (and CAP_IPC_LOCK dropped with
 * @drop_ipc_lock), then an io_uring of its own on the same device; 0 or -1.
 */
static int memlock_child(FIXTURE_DATA(br) *self, int drop_ipc_lock)
{
	struct rlimit lim = { .rlim_cur = 64 << 10, .rlim_max = 64 << 10 };

	io_uring_queue_exit(&self->ring);
	if ((drop_ipc_lock && drop_cap(CAP_IPC_LOCK)) || setrlimit(RLIMIT_MEMLOCK, &lim) ||
	    io_uring_queue_init(8, &self->ring, IORING_SETUP_SQE128))
		return -1;
	return 0;
}

/*
 * Pinning more than RLIMIT_MEMLOCK without CAP_IPC_LOCK: ENOMEM, nothing left
 * pinned or charged; within the limit it works. (A child drops the capability;
 * it has its own io_uring on the same device.) @classes: the queue of
 * self->civ, every class region pinned and charged (FURING_URING_BUF_CLASSES),
 * else one payload region.
 */
static void memlock_limit(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
			  uint64_t classes)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		int ret;

		if (memlock_child(self, 1))
			_exit(10);
		/* 4 KiB of headers (and 8 KiB of small buffers) fit in 64 KiB; 2 MiB do not. */
		ret = reg_ok(self, ALL_PINNED | classes, 0);
		if (ret != -ENOMEM)
			_exit(11);
		if (furing_vmlck_kb(0) != 0)
			_exit(12);
		ret = reg_ok(self, FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS | classes, 0);
		if (ret != FURING_NO_CQE)
			_exit(13);
		if (furing_vmlck_kb(0) != 4)
			_exit(14);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child status %#x (10: setup, 11: not ENOMEM, 12: charged, 13: small pin failed, 14: not charged)",
		       status);
	}
}

TEST_F(br, memlock_limit)
{
	memlock_limit(_metadata, self, 0);
}

TEST_F(br, memlock_limit_classes)
{
	memlock_limit(_metadata, self, FURING_URING_BUF_CLASSES);
}

/*
 * CAP_IPC_LOCK bypasses RLIMIT_MEMLOCK (as for mlock()): with the limit at 64
 * KiB, 2 MiB of buffers pin all the same and are charged to VmLck (with
 * @classes, every class region's pages).
 */
static void memlock_bypass(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
			   uint64_t classes)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (memlock_child(self, 0))
			_exit(10);
		if (reg_ok(self, ALL_PINNED | classes, 0) != FURING_NO_CQE)
			_exit(11);
		if (furing_vmlck_kb(0) != reg_ok_pages(classes) * 4)
			_exit(12);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child status %#x (10: setup, 11: not pinned, 12: not charged)", status);
	}
}

TEST_F(br, memlock_cap_ipc_lock_bypass)
{
	memlock_bypass(_metadata, self, 0);
}

TEST_F(br, memlock_cap_ipc_lock_bypass_classes)
{
	memlock_bypass(_metadata, self, FURING_URING_BUF_CLASSES);
}

static void *lookup_thread(void *arg)
{
	struct stat st;

	return (void *)(long)(stat(arg, &st) ? -errno : 0);
}

/*
 * Pinned copies go through the kernel mapping: with the payload region
 * PROT_NONE in the server's page tables, a LOOKUP (its name is payload) is
 * delivered into a pinned region; into an unpinned one its copy fails and the
 * request ends with EIO (the entry stays).
 */
TEST_F(br, pinned_copy_uses_kernel_mapping)
{
	static const uint64_t modes[] = { FURING_URING_BUFRING, ALL_PINNED };
	struct furing_uring_req_header *h = self->hdrs;
	int name_ok = 0, opcode = -1;
	uint64_t tag = 0;
	unsigned int i;
	pthread_t th;
	long res;
	void *ret;

	for (i = 0; i < 2; i++) {
		if (i) {
			io_uring_queue_exit(&self->ring);
			ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
			ASSERT_EQ(0, wait_queue_empty(self));
		}
		/* One entry on every queue, so the LOOKUP finds one wherever it runs. */
		for (int q = 0; q < sysconf(_SC_NPROCESSORS_CONF); q++) {
			struct furing_uring_cmd_req req = {
				.flags = modes[i], .qid = q,
				.init = { .queue_depth = DEPTH, .buf_size = BUF_SIZE },
			};

			furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req,
					self->iov, 2, q)->buf_index = 0;
		}
		ASSERT_LT(0, io_uring_submit(&self->ring));
		ASSERT_EQ(0, furing_wait_entries(self->id, "available",
						 sysconf(_SC_NPROCESSORS_CONF)));
		ASSERT_EQ(0, mprotect(self->payload, PAYLOAD_LEN, PROT_NONE));
		ASSERT_EQ(0, pthread_create(&th, NULL, lookup_thread, MNT "/name"));
		res = furing_wait_cqe(&self->ring, 3000, &tag);
		ASSERT_EQ(0, mprotect(self->payload, PAYLOAD_LEN, PROT_READ | PROT_WRITE));
		if (res == 0) {
			/* Delivered: answer it (ENOENT), whatever the mode expects. */
			struct fuse_in_header *ih = (struct fuse_in_header *)h[0].in_out;
			struct fuse_out_header oh = { .unique = ih->unique, .error = -ENOENT };
			struct furing_uring_cmd_req c = { .commit_id = ih->unique, .qid = tag };

			opcode = ih->opcode;
			name_ok = !strcmp("name", (char *)self->payload +
						   h[0].ring_ent_in_out.buf_id * BUF_SIZE);
			memcpy(h[0].in_out, &oh, sizeof(oh));
			h[0].ring_ent_in_out.payload_sz = 0;
			furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_COMMIT_AND_FETCH, &c,
					self->iov, 2, tag);
			io_uring_submit(&self->ring);
		}
		pthread_join(th, &ret);
		if (modes[i] & FURING_URING_PINNED_BUFFERS) {
			EXPECT_EQ(0, res);
			EXPECT_EQ(FUSE_LOOKUP, opcode);
			EXPECT_TRUE(name_ok);
			EXPECT_EQ(-ENOENT, (long)ret);
			continue;
		}
		EXPECT_EQ(FURING_NO_CQE, res);
		EXPECT_EQ(-EIO, (long)ret);
	}
}

/* ------------------------------------------------------------------ */
/* Buffer classes: every REGISTER rule, and the class a request's buffer is of. */

/* An anonymous mapping of @len bytes (freed with the test's process), or NULL. */
static void *map_anon(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A classes REGISTER is accepted, and the queue says so in debugfs. */
TEST_F(br, classes_accepted)
{
	struct furing_qstats st;

	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, CLASSES, 0));
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, CLASSES, 1));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ(2, st.entries);
	EXPECT_EQ((unsigned long)CLASSES, st.flags);
	/* The queues file counts the buffers of every class. */
	EXPECT_EQ(NR_SMALL + NR_LARGE, st.bufs);
	EXPECT_EQ(0, st.bufs_used);
}

/* FURING_URING_BUF_CLASSES needs FURING_URING_BUFRING. */
TEST_F(br, classes_need_bufring)
{
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUF_CLASSES, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUF_CLASSES |
					FURING_URING_BUF_CLASSES_STRICT, 0));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, CLASSES, 0));
}

/*
 * FURING_URING_BUF_CLASSES_STRICT needs FURING_URING_BUF_CLASSES: refused on a
 * one-class queue that would be fine without it.
 */
TEST_F(br, classes_strict_needs_classes)
{
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | FURING_URING_BUF_CLASSES_STRICT, 0));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, CLASSES | FURING_URING_BUF_CLASSES_STRICT, 0));
}

/*
 * Class sizes strictly increase: two equal, or a larger before a smaller (all
 * of them large enough, each region a whole buffer): EINVAL.
 */
TEST_F(br, classes_sizes_increase)
{
	const uint32_t equal[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE, BUF_SIZE };
	const uint32_t down[FURING_URING_MAX_BUF_CLASSES] = { 2 * BUF_SIZE, BUF_SIZE };
	const uint32_t up[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE, 2 * BUF_SIZE };
	char *more = map_anon(BUF_SIZE);
	struct iovec iov[3];

	ASSERT_NE(NULL, more);
	iov[0] = self->iov[0];
	iov[1] = (struct iovec){ self->payload, BUF_SIZE };
	iov[2] = (struct iovec){ (char *)self->payload + BUF_SIZE, BUF_SIZE };
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, equal, 0, iov, 3));
	iov[1] = self->iov[1];
	iov[2] = (struct iovec){ more, BUF_SIZE };
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, down, 0, iov, 3));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	/* The same regions the other way round. */
	iov[1] = (struct iovec){ more, BUF_SIZE };
	iov[2] = self->iov[1];
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, up, 0, iov, 3));
}

/*
 * A 0 ends the class list: a size after it is EINVAL, whether the iovecs
 * count it or not (the classes before it alone would be a good queue).
 */
TEST_F(br, classes_nothing_after_zero)
{
	const uint32_t gap[FURING_URING_MAX_BUF_CLASSES] = { SMALL, BUF_SIZE, 0, 2 * BUF_SIZE };
	char *more = map_anon(2 * BUF_SIZE);
	struct iovec iov[4] = { self->civ[0], self->civ[1], self->civ[2], { more, 2 * BUF_SIZE } };

	ASSERT_NE(NULL, more);
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, gap, 0, iov, 3));
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, gap, 0, iov, 4));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, class_sizes, 0, iov, 3));
}

/*
 * Without FURING_URING_BUF_CLASSES the class sizes are reserved bytes: not 0
 * is EINVAL (with two iovecs, or with one per class).
 */
TEST_F(br, classes_reserved_without_flag)
{
	const uint32_t two[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE, 2 * BUF_SIZE };
	char *more = map_anon(2 * BUF_SIZE);
	struct iovec iov[3] = { self->iov[0], self->iov[1], { more, 2 * BUF_SIZE } };

	ASSERT_NE(NULL, more);
	EXPECT_EQ(-EINVAL, reg_classes(self, FURING_URING_BUFRING, two, 0, iov, 2));
	EXPECT_EQ(-EINVAL, reg_classes(self, FURING_URING_BUFRING, two, 0, iov, 3));
	EXPECT_EQ(-EINVAL, reg_classes(self, ALL_PINNED, two, 0, iov, 2));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(0, pins_held());
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, two, 0, iov, 3));
}

/* sqe->len is 1 + classes: one iovec fewer or more is EINVAL. */
TEST_F(br, classes_iovec_count)
{
	const uint32_t one[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE };
	struct iovec iov[4] = { self->civ[0], self->civ[1], self->civ[2], self->civ[2] };

	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, class_sizes, 0, iov, 2));
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, class_sizes, 0, iov, 4));
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, class_sizes, 0, iov, 1));
	/* One class: two iovecs, as without classes. */
	iov[1] = self->iov[1];
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, one, 0, iov, 3));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, one, 0, iov, 2));
}

/* Each class region holds at least one whole buffer of its class. */
TEST_F(br, classes_whole_buffer)
{
	struct iovec iov[3];

	memcpy(iov, self->civ, sizeof(iov));
	iov[1].iov_len = SMALL - 1;
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, class_sizes, 0, iov, 3));
	iov[1].iov_len = 0;
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, class_sizes, 0, iov, 3));
	iov[1] = self->civ[1];
	iov[2].iov_len = BUF_SIZE - 1;
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, class_sizes, 0, iov, 3));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	/* One buffer each is enough. */
	iov[1].iov_len = SMALL;
	iov[2].iov_len = BUF_SIZE;
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, class_sizes, 0, iov, 3));
}

/* At most 65535 buffers over every class: one more is EINVAL. */
TEST_F(br, classes_max_bufs)
{
	const uint32_t tiny[FURING_URING_MAX_BUF_CLASSES] = { 64, BUF_SIZE };
	char *many = map_anon(65535 * 64);
	struct iovec iov[3] = { self->iov[0], { many, 65535 * 64 }, { self->payload, BUF_SIZE } };
	struct furing_qstats st;

	ASSERT_NE(NULL, many);
	/* 65535 + 1 */
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, tiny, 0, iov, 3));
	iov[1].iov_len = 65534 * 64;
	iov[2].iov_len = 2 * BUF_SIZE;
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, tiny, 0, iov, 3));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	/* 65534 + 1 */
	iov[2].iov_len = BUF_SIZE;
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, tiny, 0, iov, 3));
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ(65535, st.bufs);
}

/*
 * The largest class holds the largest request payload (max_write here): one
 * byte less is EINVAL, however many classes; a zero-copy queue's classes may
 * all be small (its large reads and writes need no buffer).
 */
TEST_F(br, classes_largest_holds_payload)
{
	const uint32_t short1[FURING_URING_MAX_BUF_CLASSES] = { SMALL, BUF_SIZE - 1 };
	const uint32_t short3[FURING_URING_MAX_BUF_CLASSES] = { 512, SMALL, 64 << 10, BUF_SIZE - 1 };
	const uint32_t small2[FURING_URING_MAX_BUF_CLASSES] = { 512, SMALL };
	struct iovec iov[5] = { self->civ[0], self->civ[1], self->civ[2] };

	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, short1, 0, iov, 3));
	iov[1] = (struct iovec){ self->small, SMALL };
	iov[2] = (struct iovec){ (char *)self->small + SMALL, SMALL };
	iov[3] = (struct iovec){ self->payload, 64 << 10 };
	iov[4] = (struct iovec){ (char *)self->payload + BUF_SIZE, BUF_SIZE };
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, short3, 0, iov, 5));
	EXPECT_EQ(-EINVAL, reg_classes(self, CLASSES, small2, 0, iov, 3));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, ALL_PINNED | FURING_URING_ZERO_COPY |
					     FURING_URING_BUF_CLASSES, small2, 0, iov, 3));
}

/*
 * With FURING_URING_PINNED_BUFFERS every class region is pinned: its address
 * page aligned (EINVAL, nothing pinned), and then each region's pages pinned
 * once.
 */
TEST_F(br, classes_pinned_alignment)
{
	const uint64_t flags = ALL_PINNED | FURING_URING_BUF_CLASSES;
	struct iovec iov[3];

	memcpy(iov, self->civ, sizeof(iov));
	iov[1] = (struct iovec){ (char *)self->small + 512, SMALL };
	EXPECT_EQ(-EINVAL, reg_classes(self, flags, class_sizes, 0, iov, 3));
	iov[1] = self->civ[1];
	iov[2] = (struct iovec){ (char *)self->payload + 512, BUF_SIZE };
	EXPECT_EQ(-EINVAL, reg_classes(self, flags, class_sizes, 0, iov, 3));
	EXPECT_EQ(0, pins_held());
	EXPECT_EQ(0, furing_vmlck_kb(0));
	EXPECT_EQ(0, furing_entries(self->id, NULL));
	EXPECT_EQ(FURING_NO_CQE, reg_ok(self, flags, 0));
	EXPECT_EQ(reg_ok_pages(flags), pins_held());
	EXPECT_EQ(reg_ok_pages(flags) * 4, furing_vmlck_kb(0));
}

/*
 * Every REGISTER of a classes queue carries its flags (EINVAL: without the
 * classes, or strict when the queue is not); a later one's sizes and iovecs
 * are not read again, as for init.
 */
TEST_F(br, classes_second_register)
{
	const uint32_t none[FURING_URING_MAX_BUF_CLASSES] = { 0 };

	ASSERT_EQ(FURING_NO_CQE, reg_ok(self, CLASSES, 0));
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING, 1));
	EXPECT_EQ(-EINVAL, reg_ok(self, CLASSES | FURING_URING_BUF_CLASSES_STRICT, 1));
	EXPECT_EQ(-EEXIST, reg_ok(self, CLASSES, 0));
	EXPECT_EQ(FURING_NO_CQE, reg_classes(self, CLASSES, none, 1, NULL, 3));
	EXPECT_EQ(2, furing_entries(self->id, "available"));
}

/*
 * debugfs furing/<conn>/classes: a line per class of each buffer-ring queue
 * (its size, buffers, none in use, no waits); a queue without classes has
 * one, class 0.
 */
TEST_F(br, classes_debugfs)
{
	const uint32_t four[FURING_URING_MAX_BUF_CLASSES] = { 512, SMALL, 64 << 10, BUF_SIZE };
	const uint32_t one[FURING_URING_MAX_BUF_CLASSES] = { BUF_SIZE };
	const long bufs[4] = { SMALL / 512, 1, BUF_SIZE / (64 << 10), 1 };
	struct iovec iov[5] = {
		self->iov[0], { self->small, SMALL }, { (char *)self->small + SMALL, SMALL },
		{ self->payload, BUF_SIZE }, { (char *)self->payload + BUF_SIZE, BUF_SIZE },
	};
	struct furing_class c[8];
	int cpus = sysconf(_SC_NPROCESSORS_CONF), i;

	ASSERT_EQ(FURING_NO_CQE, reg_q(self, 0, CLASSES, DEPTH, four, 0, iov, 5));
	ASSERT_EQ(4, furing_classes(self->id, c, 8));
	for (i = 0; i < 4; i++) {
		EXPECT_EQ(0, c[i].qid);
		EXPECT_EQ(i, c[i].cls);
		EXPECT_EQ(four[i], c[i].buf_size);
		EXPECT_EQ(bufs[i], c[i].bufs);
		EXPECT_EQ(0, c[i].in_use);
		EXPECT_EQ(0, c[i].waits);
	}
	if (cpus < 2)
		return;
	/* Another queue without classes (a queue's flags are its own): one line more. */
	ASSERT_EQ(FURING_NO_CQE, reg_q(self, cpus - 1, FURING_URING_BUFRING, DEPTH, one, 0,
				       self->iov, 2));
	ASSERT_EQ(5, furing_classes(self->id, c, 8));
	EXPECT_EQ(cpus - 1, c[4].qid);
	EXPECT_EQ(0, c[4].cls);
	EXPECT_EQ(BUF_SIZE, c[4].buf_size);
	EXPECT_EQ(NR_LARGE, c[4].bufs);
}

#define CDEPTH 8	/* entries of the waiting tests' queue: more than its buffers */

/*
 * A client of the classes queue, on CPU 0. Its request needs class 0 (a
 * stat(): a LOOKUP of a name, or a GETATTR of the root; the reply a small
 * struct) or class 1 (a getxattr() of the root into 8 KiB). Without
 * FUSE_PARALLEL_DIROPS the LOOKUPs of a directory go one at a time: those
 * held together are GETATTRs.
 */
struct client {
	pthread_t th;
	const char *path;	/* stat() it; NULL: the getxattr() */
	long ret;		/* 0 or -errno */
};

static void *client_thread(void *arg)
{
	struct client *c = arg;
	char value[8192];
	struct stat st;

	furing_pin_cpu(0);
	if (c->path)
		c->ret = stat(c->path, &st) ? -errno : 0;
	else
		c->ret = getxattr(MNT, "user.furing", value, sizeof(value)) < 0 ? -errno : 0;
	return NULL;
}

/* Registers CDEPTH entries of the classes queue 0 (self->civ) with @flags; 0 or -1. */
static int classes_queue(FIXTURE_DATA(br) *self, uint64_t flags)
{
	int i;

	for (i = 0; i < CDEPTH; i++)
		if (reg_q(self, 0, flags, CDEPTH, class_sizes, i, self->civ, 3) != FURING_NO_CQE)
			return -1;
	return furing_wait_entries(self->id, "available", CDEPTH);
}

/* Buffer @id of the classes queue: class 0's in self->small, class 1's in self->payload. */
static char *class_buf(FIXTURE_DATA(br) *self, int id)
{
	if (id < NR_SMALL)
		return (char *)self->small + id * SMALL;
	return (char *)self->payload + (size_t)(id - NR_SMALL) * BUF_SIZE;
}

/*
 * Waits (up to 5 s) for the next request on the fixture's ring: its header
 * slot in *@slot and its buf_id; -1 (logged) unless one of @opcode came whose
 * payload is @name (when not NULL) in the buffer its buf_id names.
 */
static int arrive(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self, uint32_t opcode,
		  const char *name, int *slot)
{
	struct furing_uring_req_header *h;
	struct fuse_in_header ih;
	uint64_t tag;
	int id, res;

	*slot = -1;
	res = furing_wait_cqe(&self->ring, 5000, &tag);
	if (res) {
		TH_LOG("no request (%d) where opcode %u was expected", res, opcode);
		return -1;
	}
	*slot = tag;
	h = (struct furing_uring_req_header *)self->hdrs + tag;
	memcpy(&ih, h->in_out, sizeof(ih));
	id = h->ring_ent_in_out.buf_id;
	if (ih.opcode != opcode || id >= NR_SMALL + NR_LARGE ||
	    (name && strcmp(class_buf(self, id), name))) {
		TH_LOG("opcode %u buf_id %d%s in slot %d, not opcode %u%s%s", ih.opcode, id,
		       name && id < NR_SMALL + NR_LARGE ? " with another payload" : "",
		       *slot, opcode, name ? " of " : "", name ?: "");
		return -1;
	}
	return id;
}

/* Answers the request in header slot @slot of queue 0 with -@err. */
static void refuse(FIXTURE_DATA(br) *self, int slot, int err)
{
	commit(self, &self->ring, 0, slot, slot, -err, NULL, NULL, 0, 0);
}

/* Class @cls of queue 0, or a line of -1s. */
static struct furing_class class0(FIXTURE_DATA(br) *self, int cls)
{
	struct furing_class c = { -1, -1, -1, -1, -1, -1 };

	furing_class(self->id, 0, cls, &c);
	return c;
}

/* Waits (up to 5 s) until @n requests waited for class @cls of queue 0; 0 or -1. */
static int wait_class_waits(FIXTURE_DATA(br) *self, int cls, long n)
{
	int i;

	for (i = 0; i < 500; i++) {
		if (class0(self, cls).waits == n)
			return 0;
		usleep(10000);
	}
	return -1;
}

/*
 * Not strict: with the small buffers held, GETATTRs take large ones without
 * waiting; with every buffer held the next one waits (its class counts it),
 * in no entry, and takes the first buffer given back, a large one. (Strict,
 * below: a large one back does not let it through.)
 */
TEST_F(br, classes_fallback)
{
	struct client cl[5] = {
		{ .path = MNT }, { .path = MNT }, { .path = MNT }, { .path = MNT }, { .path = MNT },
	};
	int slot[5], id[5], i;

	ASSERT_EQ(0, classes_queue(self, CLASSES));
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, pthread_create(&cl[i].th, NULL, client_thread, &cl[i]));
		id[i] = arrive(_metadata, self, FUSE_GETATTR, NULL, &slot[i]);
		ASSERT_LE(0, id[i]) TH_LOG("GETATTR %d", i);
		/* The first two in class 0 (ids 0, 1), the next two in class 1 (2, 3). */
		EXPECT_EQ(i >= NR_SMALL, id[i] >= NR_SMALL) TH_LOG("GETATTR %d: buf_id %d", i, id[i]);
	}
	EXPECT_NE(id[0], id[1]);
	EXPECT_NE(id[2], id[3]);
	EXPECT_EQ(NR_SMALL, class0(self, 0).in_use);
	EXPECT_EQ(NR_LARGE, class0(self, 1).in_use);
	EXPECT_EQ(0, class0(self, 0).waits);
	EXPECT_EQ(0, class0(self, 1).waits);

	/* Every buffer held: the fifth waits for one, not for an entry. */
	ASSERT_EQ(0, pthread_create(&cl[4].th, NULL, client_thread, &cl[4]));
	ASSERT_EQ(0, wait_class_waits(self, 0, 1));
	EXPECT_EQ(4, furing_entries(self->id, "userspace"));
	EXPECT_EQ(CDEPTH - 4, furing_entries(self->id, "available"));
	EXPECT_EQ(0, class0(self, 1).waits);

	/* A large buffer back: not strict, the waiting GETATTR takes it. */
	refuse(self, slot[2], ENOENT);
	id[4] = arrive(_metadata, self, FUSE_GETATTR, NULL, &slot[4]);
	EXPECT_EQ(id[2], id[4]);
	EXPECT_EQ(NR_LARGE, class0(self, 1).in_use);
	for (i = 0; i < 5; i++)
		if (i != 2)
			refuse(self, slot[i], ENOENT);
	for (i = 0; i < 5; i++) {
		pthread_join(cl[i].th, NULL);
		EXPECT_EQ(-ENOENT, cl[i].ret) TH_LOG("client %d", i);
	}
	EXPECT_EQ(0, furing_wait_entries(self->id, "available", CDEPTH));
	EXPECT_EQ(0, class0(self, 0).in_use);
	EXPECT_EQ(0, class0(self, 1).in_use);
}

/*
 * Strict: with the small buffers held a LOOKUP waits (its class counts it,
 * no entry takes it) while a GETXATTR of the large class, sent after it,
 * goes; a large buffer back does not let the LOOKUP through, a small one
 * does.
 */
TEST_F(br, classes_strict_waits)
{
	struct client cl[4] = {
		{ .path = MNT }, { .path = MNT }, { .path = MNT "/s2" }, { .path = NULL },
	};
	int slot[4], id[4], i;

	ASSERT_EQ(0, classes_queue(self, CLASSES | FURING_URING_BUF_CLASSES_STRICT));
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, pthread_create(&cl[i].th, NULL, client_thread, &cl[i]));
		id[i] = arrive(_metadata, self, FUSE_GETATTR, NULL, &slot[i]);
		ASSERT_LE(0, id[i]) TH_LOG("GETATTR %d", i);
		EXPECT_GT(NR_SMALL, id[i]);
	}
	/* A LOOKUP waits for class 0, with large buffers free. */
	ASSERT_EQ(0, pthread_create(&cl[2].th, NULL, client_thread, &cl[2]));
	ASSERT_EQ(0, wait_class_waits(self, 0, 1));
	EXPECT_EQ(2, furing_entries(self->id, "userspace"));
	EXPECT_EQ(NR_SMALL, class0(self, 0).in_use);
	EXPECT_EQ(0, class0(self, 1).in_use);

	/* A GETXATTR needing 8 KiB, sent later, goes in a large buffer. */
	ASSERT_EQ(0, pthread_create(&cl[3].th, NULL, client_thread, &cl[3]));
	id[3] = arrive(_metadata, self, FUSE_GETXATTR, "user.furing", &slot[3]);
	ASSERT_LE(NR_SMALL, id[3]);
	EXPECT_EQ(1, class0(self, 1).in_use);
	EXPECT_EQ(0, class0(self, 1).waits);
	EXPECT_EQ(1, class0(self, 0).waits);
	EXPECT_EQ(3, furing_entries(self->id, "userspace"));

	/* Its buffer back: the LOOKUP still waits (every entry but two available). */
	refuse(self, slot[3], ENODATA);
	pthread_join(cl[3].th, NULL);
	EXPECT_EQ(-ENODATA, cl[3].ret);
	ASSERT_EQ(0, furing_wait_entries(self->id, "available", CDEPTH - 2));
	EXPECT_EQ(0, class0(self, 1).in_use);
	EXPECT_EQ(NR_SMALL, class0(self, 0).in_use);

	/* A small buffer back: the LOOKUP gets it. */
	refuse(self, slot[0], ENOENT);
	id[2] = arrive(_metadata, self, FUSE_LOOKUP, "s2", &slot[2]);
	EXPECT_EQ(id[0], id[2]);
	refuse(self, slot[1], ENOENT);
	refuse(self, slot[2], ENOENT);
	for (i = 0; i < 3; i++) {
		pthread_join(cl[i].th, NULL);
		EXPECT_EQ(-ENOENT, cl[i].ret) TH_LOG("client %d", i);
	}
	EXPECT_EQ(0, furing_wait_entries(self->id, "available", CDEPTH));
	EXPECT_EQ(0, class0(self, 0).in_use);
	EXPECT_EQ(1, class0(self, 0).waits);
}

/* ------------------------------------------------------------------ */
/* Pinned memory goes back on every teardown. */

/* Waits up to 10 s for the charge and the pins to be back at 0. */
static int wait_unpinned(void)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (furing_vmlck_kb(0) == 0 && pins_held() == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

enum teardown { UMOUNT, FUSECTL_ABORT, RING_EXIT, SERVER_KILL };

/*
 * Sets up a pinned queue 0 (@classes: the classes of self->civ), then tears
 * it down the way @how says; the charge and the pins go back. With @classes,
 * and a teardown that does not wait for the clients (all but umount), a
 * request of each class is in the server's hands then and ends with
 * ECONNABORTED. SERVER_KILL: a child registers the queue and holds the
 * requests, and dies of SIGKILL.
 */
static void pinned_teardown(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
			    enum teardown how, uint64_t classes)
{
	const uint64_t flags = ALL_PINNED | classes;
	long pages = reg_ok_pages(flags);
	struct client cl[2] = { { .path = MNT "/held" }, { .path = NULL } };
	int hold = classes && how != UMOUNT, i, status;
	struct furing_qstats st;
	int ready[2] = { -1, -1 };
	char ready_ok = 0;
	pid_t server = 0;

	ASSERT_EQ(0, furing_vmlck_kb(0));
	ASSERT_EQ(0, pins_held());
	if (how == SERVER_KILL) {
		ASSERT_EQ(0, pipe(ready));
		server = fork();
		ASSERT_LE(0, server);
		if (server == 0) {
			/* The server: its own io_uring and queue; says so, then answers nothing. */
			char ok = 1;

			/* gone with the test, whatever happens to it */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			io_uring_queue_exit(&self->ring);
			if (io_uring_queue_init(8, &self->ring, IORING_SETUP_SQE128))
				ok = 0;
			for (i = 0; ok && i < DEPTH; i++)
				ok = reg_ok(self, flags, i) == FURING_NO_CQE;
			if (write(ready[1], &ok, 1) != 1 || !ok)
				_exit(1);
			for (;;)
				pause();
		}
		ASSERT_EQ(1, read(ready[0], &ready_ok, 1));
		ASSERT_EQ(1, ready_ok);
	} else {
		for (i = 0; i < DEPTH; i++)
			ASSERT_EQ(FURING_NO_CQE, reg_ok(self, flags, i));
	}
	/* Pinned and charged (to the registering process) once for the queue, not per entry. */
	EXPECT_EQ(pages * 4, furing_vmlck_kb(server));
	EXPECT_EQ(pages, pins_held());
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ(pages * 4096, st.pinned);
	EXPECT_EQ((unsigned long)flags, st.flags);
	if (hold) {
		for (i = 0; i < 2; i++)
			ASSERT_EQ(0, pthread_create(&cl[i].th, NULL, client_thread, &cl[i]));
		ASSERT_EQ(0, furing_wait_entries(self->id, "userspace", 2));
		EXPECT_EQ(1, class0(self, 0).in_use);
		EXPECT_EQ(1, class0(self, 1).in_use);
	}

	switch (how) {
	case UMOUNT:
		ASSERT_EQ(0, umount2(MNT, 0));
		break;
	case FUSECTL_ABORT:
		ASSERT_EQ(0, furing_abort(self->id));
		break;
	case RING_EXIT:
		io_uring_queue_exit(&self->ring);
		ASSERT_EQ(0, io_uring_queue_init(8, &self->ring, IORING_SETUP_SQE128));
		break;
	case SERVER_KILL:
		ASSERT_EQ(0, kill(server, SIGKILL));
		ASSERT_EQ(server, waitpid(server, &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
			TH_LOG("server status %#x", status);
		}
		break;
	}
	EXPECT_EQ(0, wait_unpinned()) {
		TH_LOG("VmLck %ld KiB, %ld pins held", furing_vmlck_kb(0), pins_held());
	}
	for (i = 0; hold && i < 2; i++) {
		pthread_join(cl[i].th, NULL);
		EXPECT_EQ(-ECONNABORTED, cl[i].ret) TH_LOG("client %d", i);
	}
	if (how == RING_EXIT || how == SERVER_KILL) {
		/* The queue can be set up again from scratch, by a new ring. */
		EXPECT_EQ(FURING_NO_CQE, reg_ok(self, flags, 0));
		EXPECT_EQ(pages, pins_held());
	}
}

TEST_F(br, umount_unpins)
{
	pinned_teardown(_metadata, self, UMOUNT, 0);
}

TEST_F(br, abort_unpins)
{
	pinned_teardown(_metadata, self, FUSECTL_ABORT, 0);
}

TEST_F(br, ring_exit_unpins)
{
	pinned_teardown(_metadata, self, RING_EXIT, 0);
}

TEST_F(br, kill_unpins)
{
	pinned_teardown(_metadata, self, SERVER_KILL, 0);
}

TEST_F(br, umount_unpins_classes)
{
	pinned_teardown(_metadata, self, UMOUNT, FURING_URING_BUF_CLASSES);
}

TEST_F(br, abort_unpins_classes)
{
	pinned_teardown(_metadata, self, FUSECTL_ABORT, FURING_URING_BUF_CLASSES);
}

TEST_F(br, ring_exit_unpins_classes)
{
	pinned_teardown(_metadata, self, RING_EXIT, FURING_URING_BUF_CLASSES);
}

TEST_F(br, kill_unpins_classes)
{
	pinned_teardown(_metadata, self, SERVER_KILL, FURING_URING_BUF_CLASSES);
}

TEST_HARNESS_MAIN
