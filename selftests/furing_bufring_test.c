// SPDX-License-Identifier: GPL-2.0
/*
 * Buffer-ring queues (FURING_URING_BUFRING) and pinned regions
 * (FURING_URING_PINNED_HEADERS / _PINNED_BUFFERS), set up by hand: every bad
 * REGISTER gets its documented errno; pinned regions are charged to the
 * server's locked memory and pinned once, and every teardown (umount, fusectl
 * abort, io_uring exit) gives back both the charge and the pins.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
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
	void *hdrs, *payload;
	struct iovec iov[2];
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
	ASSERT_NE(MAP_FAILED, self->hdrs);
	ASSERT_NE(MAP_FAILED, self->payload);
	self->iov[0] = (struct iovec){ self->hdrs, HDRS_LEN };
	self->iov[1] = (struct iovec){ self->payload, PAYLOAD_LEN };
}

FIXTURE_TEARDOWN(br)
{
	io_uring_queue_exit(&self->ring);
	umount2(MNT, MNT_DETACH);
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * REGISTER of entry @slot of queue 0 with @flags, @depth, @buf_size and
 * @iov; the command's result, or FURING_NO_CQE when it was parked.
 */
static int reg(FIXTURE_DATA(br) *self, uint64_t flags, uint32_t depth, uint32_t buf_size,
	       uint16_t slot, struct iovec *iov)
{
	struct furing_uring_cmd_req req = {
		.flags = flags,
		.init = { .queue_depth = depth, .buf_size = buf_size },
	};
	struct io_uring_sqe *sqe;

	sqe = furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req, iov, 2, slot);
	sqe->buf_index = slot;
	if (io_uring_submit(&self->ring) != 1)
		return -9999;
	return furing_wait_cqe(&self->ring, 200, NULL);
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

/* The default REGISTER: entry @slot of a DEPTH-deep ring with @flags. */
static int reg_ok(FIXTURE_DATA(br) *self, uint64_t flags, uint16_t slot)
{
	return reg(self, flags, DEPTH, BUF_SIZE, slot, self->iov);
}

TEST_F(br, flags)
{
	/* Unknown bits. */
	EXPECT_EQ(-EINVAL, reg_ok(self, FURING_URING_BUFRING | 1ULL << 4, 0));
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
		if (fd >= 0)
			close(fd);
		free(buf);
	}
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Commits the request in header slot 0 on queue @qid of @ring: error @error,
 * or @len bytes of @payload into its payload buffer. Waits @wait_ms for the
 * command's CQE (0: not at all) and returns its result, or FURING_NO_CQE.
 */
static int zc_commit(FIXTURE_DATA(br) *self, struct io_uring *ring, uint16_t qid, int error,
		     const void *payload, uint32_t len, int wait_ms)
{
	struct furing_uring_req_header *h = self->hdrs;
	struct fuse_in_header ih;
	struct fuse_out_header oh;
	struct furing_uring_cmd_req c = { .qid = qid };

	memcpy(&ih, h->in_out, sizeof(ih));
	oh = (struct fuse_out_header){ .unique = ih.unique, .error = error };
	c.commit_id = ih.unique;
	if (len)
		memcpy((char *)self->payload + h->ring_ent_in_out.buf_id * 4096, payload, len);
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = len;
	furing_prep_cmd(ring, self->fd, FURING_URING_CMD_COMMIT_AND_FETCH, &c, self->iov, 2,
			qid);
	if (io_uring_submit(ring) != 1)
		return -9999;
	return wait_ms ? furing_wait_cqe(ring, wait_ms, NULL) : FURING_NO_CQE;
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
	struct zc_client cl = { 0 };
	struct io_uring other;
	int cpus = sysconf(_SC_NPROCESSORS_CONF), q, res, zc_seen = 0;
	uint64_t tag;
	pthread_t th;

	ASSERT_EQ(0, io_uring_register_buffers_sparse(&self->ring, DEPTH));
	ASSERT_EQ(0, io_uring_queue_init(4, &other, IORING_SETUP_SQE128));
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
	ASSERT_EQ(0, pthread_create(&th, NULL, zc_client_thread, &cl));
	while (!__atomic_load_n(&cl.done, __ATOMIC_ACQUIRE)) {
		struct fuse_in_header ih;

		res = furing_wait_cqe(&self->ring, 200, &tag);
		if (res == FURING_NO_CQE)
			continue;
		/* Every CQE is a request for an entry (a commit that failed would show here). */
		ASSERT_EQ(0, res);
		memcpy(&ih, h->in_out, sizeof(ih));
		if (ih.opcode == FUSE_LOOKUP) {
			struct fuse_entry_out e = {
				.nodeid = 2, .entry_valid = 100, .attr_valid = 100,
				.attr = { .ino = 2, .mode = S_IFREG | 0644, .nlink = 1 },
			};

			zc_commit(self, &self->ring, tag, 0, &e, sizeof(e), 0);
		} else if (ih.opcode == FUSE_OPEN) {
			struct fuse_open_out o = { .fh = 1 };

			zc_commit(self, &self->ring, tag, 0, &o, sizeof(o), 0);
		} else if (ih.opcode == FUSE_WRITE) {
			struct fuse_write_out wo = { .size = 64 << 10 };

			zc_seen = !!(h->ring_ent_in_out.flags & FURING_URING_ENT_ZERO_COPY);
			EXPECT_TRUE(zc_seen);
			EXPECT_EQ(64 << 10, h->ring_ent_in_out.payload_sz);
			EXPECT_EQ(1, furing_zc_live());
			/* Another io_uring: refused, nothing changes. */
			EXPECT_EQ(-EINVAL, zc_commit(self, &other, tag, 0, &wo, sizeof(wo), 2000));
			EXPECT_EQ(1, furing_zc_live());
			EXPECT_EQ(1, furing_entries(self->id, "userspace"));
			/* The entry's own ring; the registration goes with the commit. */
			zc_commit(self, &self->ring, tag, 0, &wo, sizeof(wo), 0);
			for (q = 0; q < 100 && furing_zc_live() != 0; q++)
				usleep(10000);
			EXPECT_EQ(0, furing_zc_live());
		} else {
			/* FLUSH, RELEASE, GETATTR...: not needed here. */
			zc_commit(self, &self->ring, tag, -ENOSYS, NULL, 0, 0);
		}
	}
	pthread_join(th, NULL);
	EXPECT_EQ(64 << 10, cl.ret);
	EXPECT_TRUE(zc_seen);
	io_uring_queue_exit(&other);
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
 * it has its own io_uring on the same device.)
 */
TEST_F(br, memlock_limit)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct iovec small[2] = { self->iov[0], { self->payload, PAYLOAD_LEN } };
		int ret;

		if (memlock_child(self, 1))
			_exit(10);
		/* 4 KiB of headers fit in 64 KiB; 2 MiB of buffers do not. */
		ret = reg(self, ALL_PINNED, DEPTH, BUF_SIZE, 0, small);
		if (ret != -ENOMEM)
			_exit(11);
		if (furing_vmlck_kb(0) != 0)
			_exit(12);
		ret = reg(self, FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS, DEPTH,
			  BUF_SIZE, 0, small);
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

/*
 * CAP_IPC_LOCK bypasses RLIMIT_MEMLOCK (as for mlock()): with the limit at 64
 * KiB, 2 MiB of buffers pin all the same and are charged to VmLck.
 */
TEST_F(br, memlock_cap_ipc_lock_bypass)
{
	int status;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (memlock_child(self, 0))
			_exit(10);
		if (reg(self, ALL_PINNED, DEPTH, BUF_SIZE, 0, self->iov) != FURING_NO_CQE)
			_exit(11);
		if (furing_vmlck_kb(0) != (HDRS_LEN + PAYLOAD_LEN) / 1024)
			_exit(12);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		TH_LOG("child status %#x (10: setup, 11: not pinned, 12: not charged)", status);
	}
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

enum teardown { UMOUNT, FUSECTL_ABORT, RING_EXIT };

static void pinned_teardown(struct __test_metadata *_metadata, FIXTURE_DATA(br) *self,
			    enum teardown how)
{
	long pages = (HDRS_LEN + PAYLOAD_LEN) / 4096;
	struct furing_qstats st;
	char path[128];
	int i;

	ASSERT_EQ(0, furing_vmlck_kb(0));
	ASSERT_EQ(0, pins_held());
	for (i = 0; i < DEPTH; i++)
		ASSERT_EQ(FURING_NO_CQE, reg_ok(self, ALL_PINNED, i));
	/* Pinned and charged once for the queue, not per entry. */
	EXPECT_EQ(pages * 4, furing_vmlck_kb(0));
	EXPECT_EQ(pages, pins_held());
	ASSERT_EQ(0, furing_queue_stats(self->id, &st));
	EXPECT_EQ(pages * 4096, st.pinned);
	EXPECT_EQ((unsigned long)ALL_PINNED, st.flags);

	switch (how) {
	case UMOUNT:
		ASSERT_EQ(0, umount2(MNT, 0));
		break;
	case FUSECTL_ABORT:
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", self->id);
		ASSERT_EQ(0, write_text(path, "1"));
		break;
	case RING_EXIT:
		io_uring_queue_exit(&self->ring);
		ASSERT_EQ(0, io_uring_queue_init(8, &self->ring, IORING_SETUP_SQE128));
		break;
	}
	EXPECT_EQ(0, wait_unpinned()) {
		TH_LOG("VmLck %ld KiB, %ld pins held", furing_vmlck_kb(0), pins_held());
	}
	if (how == RING_EXIT) {
		/* The queue can be set up again from scratch, by a new ring. */
		EXPECT_EQ(FURING_NO_CQE, reg_ok(self, ALL_PINNED, 0));
		EXPECT_EQ(pages, pins_held());
	}
}

TEST_F(br, umount_unpins)
{
	pinned_teardown(_metadata, self, UMOUNT);
}

TEST_F(br, abort_unpins)
{
	pinned_teardown(_metadata, self, FUSECTL_ABORT);
}

TEST_F(br, ring_exit_unpins)
{
	pinned_teardown(_metadata, self, RING_EXIT);
}

TEST_HARNESS_MAIN
