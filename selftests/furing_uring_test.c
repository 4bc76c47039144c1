// SPDX-License-Identifier: GPL-2.0
/*
 * The io_uring command interface of /dev/furing: every bad REGISTER or
 * COMMIT_AND_FETCH gets its errno and the mount keeps working; registered
 * entries park their commands, and every teardown (umount, fusectl abort,
 * io_uring exit, server exit) completes them with nothing left behind.
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <time.h>
#include "furing_test.h"
#include "furing_ring.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-uring-test"
#define MAX_WRITE (1 << 20)
#define PAYLOAD (MAX_WRITE + 4096)

static char reqbuf[PAYLOAD];

FIXTURE(ring) {
	int fd;
	struct io_uring ring;
	void *hdr, *payload;
	struct iovec iov[2];
	struct fuse_init_in init;
	uint64_t init_unique;
	uint16_t last_qid;
	/* fs.fuse.default_request_timeout as found, when a test changed it */
	char req_timeout[16];
};

#define REQ_TIMEOUT_SYSCTL "/proc/sys/fs/fuse/default_request_timeout"

FIXTURE_SETUP(ring)
{
	struct fuse_in_header *ih;

	ASSERT_EQ(0, furing_ensure_loaded());
	self->fd = furing_open_and_mount(MNT);
	ASSERT_LE(0, self->fd);
	ASSERT_LT(0, read(self->fd, reqbuf, sizeof(reqbuf)));
	ih = (struct fuse_in_header *)reqbuf;
	ASSERT_EQ(FUSE_INIT, ih->opcode);
	memcpy(&self->init, ih + 1, sizeof(self->init));
	self->init_unique = ih->unique;
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
	self->hdr = aligned_alloc(4096, 4096);
	self->payload = aligned_alloc(4096, PAYLOAD);
	ASSERT_NE(NULL, self->hdr);
	ASSERT_NE(NULL, self->payload);
	self->iov[0] = (struct iovec){ self->hdr, sizeof(struct furing_uring_req_header) };
	self->iov[1] = (struct iovec){ self->payload, PAYLOAD };
}

FIXTURE_TEARDOWN(ring)
{
	if (self->req_timeout[0])
		write_text(REQ_TIMEOUT_SYSCTL, self->req_timeout);
	io_uring_queue_exit(&self->ring);
	umount2(MNT, MNT_DETACH);
	if (self->fd >= 0)
		close(self->fd);
}

/* Answers INIT; @uring: whether the server asks for io-uring. */
static int answer_init(struct __test_metadata *_metadata, FIXTURE_DATA(ring) *self, int uring)
{
	return furing_answer_init(self->fd, &self->init, self->init_unique, uring, MAX_WRITE);
}

/* Submits one command and returns its result (FURING_NO_CQE when it was parked). */
static int cmd(FIXTURE_DATA(ring) *self, uint32_t op, const struct furing_uring_cmd_req *req,
	       struct iovec *iov, unsigned int nr_iov)
{
	/* Tagged with the queue: a command parked again completes with the next request. */
	furing_prep_cmd(&self->ring, self->fd, op, req, iov, nr_iov, req->qid);
	if (io_uring_submit(&self->ring) != 1)
		return -9999;
	return furing_wait_cqe(&self->ring, 200, NULL);
}

static int do_register(FIXTURE_DATA(ring) *self, uint16_t qid)
{
	struct furing_uring_cmd_req req = { .qid = qid };

	return cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 2);
}

TEST_F(ring, register_before_init)
{
	EXPECT_EQ(-EAGAIN, do_register(self, 0));
	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	EXPECT_EQ(FURING_NO_CQE, do_register(self, 0));
}

TEST_F(ring, io_uring_not_negotiated)
{
	ASSERT_EQ(0, answer_init(_metadata, self, 0));
	EXPECT_EQ(-EOPNOTSUPP, do_register(self, 0));
}

TEST_F(ring, bad_inputs_then_register)
{
	struct furing_uring_cmd_req req = { 0 };
	struct iovec iov[2];
	void *gone, *ro;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	/* Unknown command. */
	EXPECT_EQ(-EINVAL, cmd(self, 77, &req, self->iov, 2));
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_INVALID, &req, self->iov, 2));
	/* No such queue. */
	EXPECT_EQ(-EINVAL, do_register(self, 4096));
	/* Unknown or not yet supported flags. */
	req.flags = 1ULL << 40;
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 2));
	req.flags = 0;
	/* One iovec, or three. */
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 1));
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 3));
	/* The iovec array itself unmapped. */
	EXPECT_EQ(-EFAULT, cmd(self, FURING_URING_CMD_REGISTER, &req, (struct iovec *)8, 2));
	/* Header slot smaller than struct furing_uring_req_header. */
	iov[0] = (struct iovec){ self->hdr, sizeof(struct furing_uring_req_header) - 1 };
	iov[1] = self->iov[1];
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_REGISTER, &req, iov, 2));
	/* Payload smaller than the largest request. */
	iov[0] = self->iov[0];
	iov[1] = (struct iovec){ self->payload, MAX_WRITE - 1 };
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_REGISTER, &req, iov, 2));
	/* Unmapped header and payload. */
	gone = mmap(NULL, PAYLOAD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, gone);
	munmap(gone, PAYLOAD);
	iov[0] = (struct iovec){ gone, 4096 };
	iov[1] = self->iov[1];
	EXPECT_EQ(-EFAULT, cmd(self, FURING_URING_CMD_REGISTER, &req, iov, 2));
	iov[0] = self->iov[0];
	iov[1] = (struct iovec){ gone, PAYLOAD };
	EXPECT_EQ(-EFAULT, cmd(self, FURING_URING_CMD_REGISTER, &req, iov, 2));
	/* A read-only payload. */
	ro = mmap(NULL, PAYLOAD, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, ro);
	iov[1] = (struct iovec){ ro, PAYLOAD };
	EXPECT_EQ(-EFAULT, cmd(self, FURING_URING_CMD_REGISTER, &req, iov, 2));
	munmap(ro, PAYLOAD);
	/* A commit nobody asked for. */
	req.commit_id = 12345;
	EXPECT_EQ(-ENOENT, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req, self->iov, 2));
	/* After all that, a good REGISTER still parks. */
	EXPECT_EQ(FURING_NO_CQE, do_register(self, 0));
}

TEST_F(ring, needs_sqe128)
{
	struct furing_uring_cmd_req req = { 0 };
	struct io_uring small;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_EQ(0, io_uring_queue_init(4, &small, 0));
	furing_prep_cmd(&small, self->fd, FURING_URING_CMD_REGISTER, &req, self->iov, 2, 0);
	ASSERT_EQ(1, io_uring_submit(&small));
	EXPECT_EQ(-EINVAL, furing_wait_cqe(&small, 1000, NULL));
	io_uring_queue_exit(&small);
}

TEST_F(ring, unmounted_fd)
{
	struct furing_uring_cmd_req req = { 0 };
	int fd = open("/dev/furing", O_RDWR);

	ASSERT_LE(0, fd);
	furing_prep_cmd(&self->ring, fd, FURING_URING_CMD_REGISTER, &req, self->iov, 2, 0);
	ASSERT_EQ(1, io_uring_submit(&self->ring));
	EXPECT_EQ(-EPERM, furing_wait_cqe(&self->ring, 1000, NULL));
	close(fd);
}

/* Registers @n entries on every queue of this CPU count; all must park (debugfs says so). */
static int register_all(FIXTURE_DATA(ring) *self, int n)
{
	struct furing_uring_cmd_req req = { 0 };
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	int q, i, parked = 0;

	for (q = 0; q < cpus; q++) {
		for (i = 0; i < n; i++) {
			req.qid = q;
			furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req,
				 self->iov, 2, 100 + q * n + i);
			parked++;
		}
	}
	if (io_uring_submit(&self->ring) != parked)
		return -1;
	return furing_wait_entries(furing_conn_id(MNT), "available", parked) ? -1 : parked;
}

/* Registers one entry per queue, all sharing the fixture's buffers. */
static int register_all_one_entry(FIXTURE_DATA(ring) *self)
{
	struct furing_uring_cmd_req req = { 0 };
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	int q;

	for (q = 0; q < cpus; q++) {
		req.qid = q;
		furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req, self->iov, 2, q);
	}
	if (io_uring_submit(&self->ring) != cpus)
		return -1;
	return furing_wait_entries(furing_conn_id(MNT), "available", cpus) ? -1 : cpus;
}

/* Collects @n CQEs, each must be -ENOTCONN; 0 when all came. */
static int expect_notconn(struct __test_metadata *_metadata, struct io_uring *ring, int n)
{
	int i, res;

	for (i = 0; i < n; i++) {
		res = furing_wait_cqe(ring, 5000, NULL);
		if (res != -ENOTCONN) {
			TH_LOG("CQE %d of %d: %d", i, n, res);
			return -1;
		}
	}
	return furing_wait_cqe(ring, 100, NULL) == FURING_NO_CQE ? 0 : -1;
}

TEST_F(ring, umount_completes_parked)
{
	int n;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	n = register_all(self, 2);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, umount2(MNT, 0));
	EXPECT_EQ(0, expect_notconn(_metadata, &self->ring, n));
	/* REGISTER after the abort is refused. */
	EXPECT_EQ(-ENOTCONN, do_register(self, 0));
}

TEST_F(ring, fusectl_abort_completes_parked)
{
	char line[512], mnt[256], path[128] = "";
	unsigned int major, minor;
	FILE *f;
	int n;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	n = register_all(self, 2);
	ASSERT_LT(0, n);
	f = fopen("/proc/self/mountinfo", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%*u %*u %u:%u %*s %255s", &major, &minor, mnt) == 3 &&
		    !strcmp(mnt, MNT))
			snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%u/abort",
				 major << 20 | minor);
	fclose(f);
	ASSERT_EQ(0, write_text(path, "1"));
	EXPECT_EQ(0, expect_notconn(_metadata, &self->ring, n));
	EXPECT_EQ(0, umount2(MNT, 0));
}

static void *stat_thread(void *arg)
{
	struct stat *st = arg;

	return (void *)(long)(stat(MNT, st) ? -errno : 0);
}

/*
 * Stats the mount from another thread (the test's own thread owns the ring, and
 * the ring's task work must be able to run) until it fails with ENOTCONN:
 * while a dead server's ring is still being torn down, a request may be sent
 * and aborted (ECONNABORTED). Returns the last errno.
 */
static int wait_enotconn(void)
{
	struct stat st;
	pthread_t th;
	void *ret;
	int i;

	for (i = 0; i < 50; i++) {
		if (pthread_create(&th, NULL, stat_thread, &st))
			return -1;
		pthread_join(th, &ret);
		if ((long)ret == -ENOTCONN)
			return ENOTCONN;
		if ((long)ret != -ECONNABORTED)
			return -(long)ret;
		usleep(100000);
	}
	return ECONNABORTED;
}

/* The server's ring goes away with commands parked: io_uring cancels them. */
TEST_F(ring, ring_exit_cancels_parked)
{
	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_LT(0, register_all(self, 4));
	io_uring_queue_exit(&self->ring);
	/* The ring held the device file; now the server can close it. */
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(ENOTCONN, wait_enotconn());
	EXPECT_EQ(0, umount2(MNT, 0));
	/* Nothing of the connection is left: the module unloads. */
	EXPECT_EQ(0, furing_unload());
	EXPECT_EQ(0, furing_load());
	/* Keep the teardown's queue_exit harmless. */
	ASSERT_EQ(0, io_uring_queue_init(4, &self->ring, IORING_SETUP_SQE128));
}

/*
 * A request travels the ring: GETATTR arrives as a completed REGISTER with the
 * in header, op header and commit id filled in, the reply goes back with
 * COMMIT_AND_FETCH, and nothing went the classic way.
 */
TEST_F(ring, request_over_ring)
{
	struct furing_uring_req_header *h = self->hdr;
	struct fuse_attr_out *ao = self->payload;
	struct furing_uring_cmd_req req = { 0 };
	struct fuse_out_header oh = { 0 };
	struct fuse_in_header ih;
	long id, classic, sent;
	uint64_t tag = 0;
	struct stat st;
	pthread_t th;
	void *ret;
	char c;
	int n;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	n = register_all_one_entry(self);
	ASSERT_LT(0, n);
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
	ASSERT_EQ(0, furing_wait_cqe(&self->ring, 5000, &tag));
	self->last_qid = tag;
	memcpy(&ih, h->in_out, sizeof(ih));
	EXPECT_EQ(FUSE_GETATTR, ih.opcode);
	EXPECT_EQ(1, ih.nodeid);
	EXPECT_EQ(ih.unique, h->ring_ent_in_out.commit_id);
	EXPECT_NE(0, h->ring_ent_in_out.commit_id);
	EXPECT_EQ(0, h->ring_ent_in_out.payload_sz); /* fuse_getattr_in is the op header */
	/* Nothing is waiting on the classic path. */
	fcntl(self->fd, F_SETFL, O_NONBLOCK);
	EXPECT_EQ(-1, read(self->fd, &c, 1));
	/* The reply. */
	memset(ao, 0, sizeof(*ao));
	ao->attr_valid = 100;
	ao->attr.ino = 1;
	ao->attr.mode = S_IFDIR | 0750;
	ao->attr.nlink = 2;
	oh.unique = ih.unique;
	oh.len = sizeof(oh) + sizeof(*ao);
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = sizeof(*ao);
	req.commit_id = ih.unique;
	/* Commit on the queue that got it (the completed REGISTER's tag). */
	req.qid = self->last_qid;
	EXPECT_EQ(FURING_NO_CQE, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req, self->iov, 2));
	pthread_join(th, &ret);
	EXPECT_EQ(0, (long)ret);
	EXPECT_EQ(S_IFDIR | 0750, st.st_mode);
	/* debugfs: GETATTR went over the ring, only INIT the classic way. */
	id = furing_conn_id(MNT);
	ASSERT_LE(0, id);
	ASSERT_EQ(0, furing_stats(id, &classic, &sent));
	EXPECT_EQ(1, sent);
	EXPECT_EQ(1, classic);
	/* The same commit again is unknown now. */
	EXPECT_EQ(-ENOENT, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req, self->iov, 2));
	/* commit_id 0 is never valid. */
	req.commit_id = 0;
	EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req, self->iov, 2));
}

/* Waits for the next request on the ring; its in header (and the queue in last_qid). */
static int next_request(FIXTURE_DATA(ring) *self, struct fuse_in_header *ih)
{
	struct furing_uring_req_header *h = self->hdr;
	uint64_t tag = 0;
	int res = furing_wait_cqe(&self->ring, 5000, &tag);

	if (res)
		return res;
	self->last_qid = tag;
	memcpy(ih, h->in_out, sizeof(*ih));
	return 0;
}

/* Commits a GETATTR reply of @payload_sz bytes (a directory attr) for @ih. */
static int commit_getattr(FIXTURE_DATA(ring) *self, const struct fuse_in_header *ih,
			  uint32_t payload_sz)
{
	struct furing_uring_req_header *h = self->hdr;
	struct fuse_out_header oh = { .unique = ih->unique };
	struct furing_uring_cmd_req req = { .commit_id = ih->unique, .qid = self->last_qid };
	struct fuse_attr_out *ao = self->payload;

	memset(ao, 0, sizeof(*ao));
	ao->attr.ino = 1;
	ao->attr.mode = S_IFDIR | 0700;
	ao->attr.nlink = 2;
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = payload_sz;
	return cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req, self->iov, 2);
}

/* INIT answered, an entry per queue, and a stat() of the mount on its way: its GETATTR. */
static void pending_getattr(struct __test_metadata *_metadata, FIXTURE_DATA(ring) *self,
			    pthread_t *th, struct stat *st, struct fuse_in_header *ih)
{
	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_LT(0, register_all_one_entry(self));
	ASSERT_EQ(0, pthread_create(th, NULL, stat_thread, st));
	ASSERT_EQ(0, next_request(self, ih));
	ASSERT_EQ(FUSE_GETATTR, ih->opcode);
}

/* A reply of the wrong size fails the request with EIO; the mount keeps working. */
TEST_F(ring, reply_with_wrong_size)
{
	struct fuse_in_header ih;
	struct stat st;
	pthread_t th;
	void *ret;

	pending_getattr(_metadata, self, &th, &st, &ih);
	/* One byte short: the entry is parked again all the same. */
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out) - 1));
	pthread_join(th, &ret);
	EXPECT_EQ(-EIO, (long)ret);
	/* The next request works. */
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
	ASSERT_EQ(0, next_request(self, &ih));
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out)));
	pthread_join(th, &ret);
	EXPECT_EQ(0, (long)ret);
	EXPECT_EQ(S_IFDIR | 0700, st.st_mode);
}

/*
 * The reply's out header must name the request (Linux 7.3 checks unique too):
 * a wrong or zero unique fails the request with EIO, the entry waits again.
 */
TEST_F(ring, reply_unique_checked)
{
	struct furing_uring_req_header *h = self->hdr;
	static const uint64_t bad[] = { 0, 1 };
	struct fuse_in_header ih;
	struct stat st;
	unsigned int i;
	pthread_t th;
	void *ret;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_LT(0, register_all_one_entry(self));
	for (i = 0; i < 2; i++) {
		struct fuse_out_header oh;

		ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
		ASSERT_EQ(0, next_request(self, &ih));
		ASSERT_EQ(FUSE_GETATTR, ih.opcode);
		/* commit_getattr() with the out header's unique changed afterwards */
		oh = (struct fuse_out_header){ .unique = bad[i] ? ih.unique + 2 * bad[i] : 0 };
		memcpy(h->in_out, &oh, sizeof(oh));
		{
			struct furing_uring_cmd_req req = { .commit_id = ih.unique,
							    .qid = self->last_qid };
			struct fuse_attr_out *ao = self->payload;

			memset(ao, 0, sizeof(*ao));
			ao->attr.mode = S_IFDIR | 0700;
			h->ring_ent_in_out.payload_sz = sizeof(*ao);
			EXPECT_EQ(FURING_NO_CQE, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req,
						     self->iov, 2));
		}
		pthread_join(th, &ret);
		EXPECT_EQ(-EIO, (long)ret) {
			TH_LOG("out header unique %#llx", (unsigned long long)oh.unique);
		}
	}
	EXPECT_EQ(0, furing_wait_entries(furing_conn_id(MNT), "available",
					 sysconf(_SC_NPROCESSORS_CONF)));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
	ASSERT_EQ(0, next_request(self, &ih));
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out)));
	pthread_join(th, &ret);
	EXPECT_EQ(0, (long)ret);
}

/*
 * A request handed to the server is its entry's, as in Linux 7.3 (whose ring
 * requests are on their queue's own processing list): a reply written to the
 * device with write() does not find it (ENOENT) and changes nothing; the
 * commit on the ring still answers it. Before furing's entries held their
 * requests, they were hashed on the device's processing queue -- one lock for
 * every queue of a server with one fd -- and write() answered them there.
 */
TEST_F(ring, write_does_not_reach_ring_request)
{
	struct fuse_in_header ih;
	struct {
		struct fuse_out_header oh;
		struct fuse_attr_out ao;
	} w;
	struct stat st;
	pthread_t th;
	void *ret;

	pending_getattr(_metadata, self, &th, &st, &ih);
	memset(&w, 0, sizeof(w));
	w.oh = (struct fuse_out_header){ .len = sizeof(w), .unique = ih.unique };
	w.ao.attr.mode = S_IFREG | 0600;
	EXPECT_EQ(-1, write(self->fd, &w, sizeof(w)));
	EXPECT_EQ(ENOENT, errno);
	/* Still in the server's hands: the commit answers it (a directory, not the file). */
	EXPECT_EQ(1, furing_entries(furing_conn_id(MNT), "userspace"));
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out)));
	pthread_join(th, &ret);
	EXPECT_EQ(0, (long)ret);
	EXPECT_EQ(S_IFDIR | 0700, st.st_mode);
}

/*
 * Every byte the UAPI says must be 0 is checked (so it can carry an
 * extension later): padding, init (basic mode, COMMIT), reserved, REGISTER's
 * commit_id, COMMIT's flags. Each gets EINVAL and registers nothing.
 */
TEST_F(ring, reserved_bytes_checked)
{
	struct furing_uring_cmd_req good = { 0 }, req;
	unsigned int off;
	long id;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	id = furing_conn_id(MNT);
	for (off = 8; off < sizeof(req); off++) {
		if (off >= 16 && off < 18) /* qid */
			continue;
		req = good;
		((unsigned char *)&req)[off] = 1;
		EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 2)) {
			TH_LOG("REGISTER byte %u", off);
		}
	}
	for (off = 0; off < sizeof(req); off++) {
		if ((off >= 8 && off < 18)) /* commit_id, qid */
			continue;
		req = good;
		req.commit_id = 2;
		((unsigned char *)&req)[off] = 1;
		EXPECT_EQ(-EINVAL, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req, self->iov, 2)) {
			TH_LOG("COMMIT_AND_FETCH byte %u", off);
		}
	}
	EXPECT_EQ(0, furing_entries(id, NULL));
	/* The zero command registers. */
	EXPECT_EQ(FURING_NO_CQE, cmd(self, FURING_URING_CMD_REGISTER, &good, self->iov, 2));
	EXPECT_EQ(0, furing_wait_entries(id, "available", 1));
}

/* A basic queue takes FURING_URING_MAX_QUEUE_DEPTH entries; one more: ENOSPC. */
TEST_F(ring, basic_entry_limit)
{
	struct furing_uring_cmd_req req = { 0 };
	long id;
	int i;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	id = furing_conn_id(MNT);
	for (i = 0; i < FURING_URING_MAX_QUEUE_DEPTH; i++) {
		furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req, self->iov, 2,
				i);
		if (i % 8 == 7)
			ASSERT_EQ(8, io_uring_submit(&self->ring));
	}
	ASSERT_EQ(0, furing_wait_entries(id, "available", FURING_URING_MAX_QUEUE_DEPTH));
	EXPECT_EQ(-ENOSPC, cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 2));
	EXPECT_EQ(FURING_URING_MAX_QUEUE_DEPTH, furing_entries(id, NULL));
}

static void *stat_thread_path(void *arg)
{
	struct stat st;

	return (void *)(long)(stat(arg, &st) ? -errno : 0);
}

/* Joins @th within @secs seconds; its result, or -ETIMEDOUT (the request hangs). */
static long join_within(pthread_t th, int secs)
{
	struct timespec ts;
	void *ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	if (pthread_timedjoin_np(th, &ret, &ts))
		return -ETIMEDOUT;
	return (long)ret;
}

/*
 * The entries of a device file own the requests they hold: when the file goes
 * (a cloned fd closed while its ring lives on), those requests end
 * (ECONNABORTED) instead of waiting for an umount, since only that file's
 * commands could commit them; the connection goes on.
 */
TEST_F(ring, closed_fd_ends_its_requests)
{
	struct furing_uring_cmd_req req = { .qid = 0 };
	struct fuse_in_header ih;
	int mount_fd = self->fd, clone;
	uint32_t master = mount_fd;
	struct stat st;
	pthread_t th;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	clone = open("/dev/furing", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, clone);
	ASSERT_EQ(0, ioctl(clone, FUSE_DEV_IOC_CLONE, &master));
	/* One entry, on the clone: the request is the only thing of the file's left. */
	self->fd = clone;
	EXPECT_EQ(FURING_NO_CQE, cmd(self, FURING_URING_CMD_REGISTER, &req, self->iov, 2));
	self->fd = mount_fd;
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
	ASSERT_EQ(0, next_request(self, &ih));
	ASSERT_EQ(FUSE_GETATTR, ih.opcode);
	EXPECT_EQ(1, furing_entries(furing_conn_id(MNT), "userspace"));
	close(clone);
	EXPECT_EQ(-ECONNABORTED, join_within(th, 10));
	EXPECT_EQ(0, furing_entries(furing_conn_id(MNT), NULL));
	/* The connection lives on: the mount fd's entry serves the next request. */
	ASSERT_EQ(FURING_NO_CQE, do_register(self, 0));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
	ASSERT_EQ(0, next_request(self, &ih));
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out)));
	EXPECT_EQ(0, join_within(th, 10));
}

/*
 * A request the server holds in a ring entry counts for the connection's
 * request timeout (fs.fuse.default_request_timeout, read when INIT is
 * answered), as one on the core's own lists does: once it is older than the
 * timeout, a scan aborts the connection and the request ends (ECONNABORTED).
 * furing scans every 15 s from INIT, as the core does: with a 20 s timeout
 * the first scan finds the request younger than that and the second aborts,
 * about 30 s after INIT; never before the request is 20 s old (a timeout taken
 * for jiffies, or in the wrong unit, would abort at the first scan).
 */
TEST_F_TIMEOUT(ring, held_request_times_out, 120)
{
	struct timespec t0, t1;
	struct fuse_in_header ih;
	struct stat st;
	pthread_t th;
	char path[64];
	long ret, id;

	ASSERT_LT(0, read_text(REQ_TIMEOUT_SYSCTL, self->req_timeout, sizeof(self->req_timeout)));
	ASSERT_EQ(0, write_text(REQ_TIMEOUT_SYSCTL, "20"));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pending_getattr(_metadata, self, &th, &st, &ih);
	/* The timeout is the channel's from INIT on: the default goes back now. */
	EXPECT_EQ(0, write_text(REQ_TIMEOUT_SYSCTL, self->req_timeout));
	self->req_timeout[0] = 0;
	id = furing_conn_id(MNT);
	EXPECT_EQ(1, furing_entries(id, "userspace"));
	ret = join_within(th, 75);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	EXPECT_EQ(-ECONNABORTED, ret);
	EXPECT_LE(20, t1.tv_sec - t0.tv_sec);
	if (ret == -ETIMEDOUT) {
		/* No abort came: abort by hand, so that the client returns. */
		snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", id);
		write_text(path, "1");
		pthread_join(th, NULL);
	}
}

/*
 * payload_sz is exactly the request's arguments after the op header: a LOOKUP
 * of "name" (its op header is empty) carries the 5 bytes "name\0". An error
 * reply (payload_sz 0) ends it with that error.
 */
TEST_F(ring, payload_size_exact)
{
	struct furing_uring_req_header *h = self->hdr;
	struct fuse_in_header ih;
	struct fuse_out_header oh;
	pthread_t th;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_LT(0, register_all_one_entry(self));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread_path, MNT "/name"));
	ASSERT_EQ(0, next_request(self, &ih));
	ASSERT_EQ(FUSE_LOOKUP, ih.opcode);
	EXPECT_EQ(5, h->ring_ent_in_out.payload_sz);
	EXPECT_EQ(0, memcmp(self->payload, "name", 5));
	oh = (struct fuse_out_header){ .unique = ih.unique, .error = -ENOENT };
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = 0;
	{
		struct furing_uring_cmd_req req = { .commit_id = ih.unique, .qid = self->last_qid };

		EXPECT_EQ(FURING_NO_CQE, cmd(self, FURING_URING_CMD_COMMIT_AND_FETCH, &req,
					     self->iov, 2));
	}
	EXPECT_EQ(-ENOENT, join_within(th, 10));
}

/* Commits a GETATTR reply for @ih through header @h on whichever queue holds it. */
static void commit_anywhere(FIXTURE_DATA(ring) *self, struct furing_uring_req_header *h,
			    struct iovec *iov, const struct fuse_in_header *ih)
{
	struct fuse_out_header oh = { .unique = ih->unique };
	struct fuse_attr_out *ao = self->payload;
	struct furing_uring_cmd_req c = { .commit_id = ih->unique };
	long cpus = sysconf(_SC_NPROCESSORS_CONF);
	int q;

	memset(ao, 0, sizeof(*ao));
	ao->attr.mode = S_IFDIR | 0700;
	memcpy(h->in_out, &oh, sizeof(oh));
	h->ring_ent_in_out.payload_sz = sizeof(*ao);
	for (q = 0; q < cpus; q++) {
		c.qid = q;
		furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_COMMIT_AND_FETCH, &c, iov, 2,
				q);
		io_uring_submit(&self->ring);
		/* the wrong queue says ENOENT at once; the right one parks the command */
		if (furing_wait_cqe(&self->ring, 300, NULL) == FURING_NO_CQE)
			break;
	}
}

/*
 * The copy of a request into an entry fails (the server made its header slot
 * PROT_NONE): the request ends with EIO and, as in Linux 7.3, the entry stays
 * registered and takes the next request once the memory is back.
 */
TEST_F(ring, failed_copy_keeps_entry)
{
	struct furing_uring_cmd_req req = { 0 };
	struct furing_uring_req_header *h;
	struct iovec iov[2];
	struct fuse_in_header ih;
	long cpus = sysconf(_SC_NPROCESSORS_CONF), id;
	pthread_t th;
	int q;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	id = furing_conn_id(MNT);
	h = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, h);
	iov[0] = (struct iovec){ h, sizeof(*h) };
	iov[1] = self->iov[1];
	for (q = 0; q < cpus; q++) {
		req.qid = q;
		furing_prep_cmd(&self->ring, self->fd, FURING_URING_CMD_REGISTER, &req, iov, 2, q);
	}
	ASSERT_EQ(cpus, io_uring_submit(&self->ring));
	ASSERT_EQ(0, furing_wait_entries(id, "available", cpus));
	ASSERT_EQ(0, mprotect(h, 4096, PROT_NONE));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread_path, MNT));
	/* The task work runs while we wait: no CQE (the entry keeps its command). */
	EXPECT_EQ(FURING_NO_CQE, furing_wait_cqe(&self->ring, 500, NULL));
	EXPECT_EQ(-EIO, join_within(th, 10));
	EXPECT_EQ(0, furing_wait_entries(id, "available", cpus));
	/* The memory is back: the same entries serve the next request. */
	ASSERT_EQ(0, mprotect(h, 4096, PROT_READ | PROT_WRITE));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread_path, MNT));
	ASSERT_EQ(0, furing_wait_cqe(&self->ring, 5000, NULL));
	memcpy(&ih, h->in_out, sizeof(ih));
	ASSERT_EQ(FUSE_GETATTR, ih.opcode);
	commit_anywhere(self, h, iov, &ih);
	EXPECT_EQ(0, join_within(th, 10));
}

/*
 * The server's io_uring goes away while its /dev/furing fd stays open, with a
 * request in its hands: that request ends (ECONNABORTED, no hang), every entry
 * of the ring goes, and a new ring registers the same slots and serves.
 */
TEST_F(ring, ring_exit_fd_stays)
{
	long cpus = sysconf(_SC_NPROCESSORS_CONF), id;
	struct fuse_in_header ih;
	pthread_t th;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	id = furing_conn_id(MNT);
	ASSERT_EQ(cpus, register_all_one_entry(self));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread_path, MNT));
	ASSERT_EQ(0, next_request(self, &ih));
	EXPECT_EQ(1, furing_entries(id, "userspace"));
	io_uring_queue_exit(&self->ring);
	EXPECT_EQ(-ECONNABORTED, join_within(th, 10));
	EXPECT_EQ(0, furing_wait_entries(id, NULL, 0));
	/* A new ring, the same slots: requests are served again. */
	ASSERT_EQ(0, io_uring_queue_init(64, &self->ring, IORING_SETUP_SQE128));
	ASSERT_EQ(cpus, register_all_one_entry(self));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread_path, MNT));
	ASSERT_EQ(0, next_request(self, &ih));
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out)));
	EXPECT_EQ(0, join_within(th, 10));
}

/* The number of CPUs in the sysfs list @name ("0-3,5"): possible, online; -1 on error. */
static int cpu_count(const char *name)
{
	char path[64], buf[256], *p;
	int n = 0, a, b;

	snprintf(path, sizeof(path), "/sys/devices/system/cpu/%s", name);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	for (p = strtok(buf, ",\n"); p; p = strtok(NULL, ",\n")) {
		if (sscanf(p, "%d-%d", &a, &b) == 2)
			n += b - a + 1;
		else if (sscanf(p, "%d", &a) == 1)
			n++;
	}
	return n;
}

struct cpu_stat {
	int cpu;
	long ret;
};

/* stat() of the root (a GETATTR) from CPU @cpu. */
static void *stat_on_cpu(void *arg)
{
	struct cpu_stat *c = arg;
	struct stat st;

	c->ret = furing_pin_cpu(c->cpu);
	if (!c->ret)
		c->ret = stat(MNT, &st) ? -errno : 0;
	return NULL;
}

struct reg_exit {
	FIXTURE_DATA(ring) *self;
	uint16_t qid;
};

/* Another thread of the server: submits a REGISTER on the shared ring, and exits. */
static void *register_and_exit(void *arg)
{
	struct reg_exit *r = arg;
	struct furing_uring_cmd_req req = { .qid = r->qid };

	furing_prep_cmd(&r->self->ring, r->self->fd, FURING_URING_CMD_REGISTER, &req, r->self->iov,
			2, 77);
	return (void *)(long)io_uring_submit(&r->self->ring);
}

/*
 * A thread of the server registers an entry on the shared ring and exits; the
 * ring lives on. A request handed to that entry runs its task work from
 * io_uring's fallback (cancelled: the task is gone): the command completes with
 * ECANCELED and the request goes to another entry. The request the server
 * holds on the ring stays its to answer: only the ring's own exit takes it
 * (ring_exit_fd_stays).
 */
TEST_F(ring, thread_exit_keeps_held_requests)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN), id;
	struct fuse_in_header ih1, ih2;
	int got_cancel = 0, got_req = 0, i, res;
	struct cpu_stat cs;
	struct reg_exit r;
	uint64_t tag = 0;
	pthread_t th, t2;
	struct stat st;
	void *ret;

	if (cpus < 2 || cpus != sysconf(_SC_NPROCESSORS_CONF))
		SKIP(return, "needs 2+ CPUs, all online");
	pending_getattr(_metadata, self, &th, &st, &ih1);
	id = furing_conn_id(MNT);
	r = (struct reg_exit){ self, (self->last_qid + 1) % cpus };
	ASSERT_EQ(0, pthread_create(&t2, NULL, register_and_exit, &r));
	ASSERT_EQ(0, pthread_join(t2, &ret));
	ASSERT_EQ(1, (long)ret);
	ASSERT_EQ(0, furing_wait_entries(id, "available", cpus));
	/* A GETATTR on that queue: the dead thread's entry is the first to take it. */
	cs = (struct cpu_stat){ .cpu = r.qid };
	ASSERT_EQ(0, pthread_create(&t2, NULL, stat_on_cpu, &cs));
	for (i = 0; i < 2; i++) {
		res = furing_wait_cqe(&self->ring, 5000, &tag);
		if (res == -ECANCELED && tag == 77) {
			got_cancel++;
		} else if (res == 0 && tag == r.qid) {
			got_req++;
			memcpy(&ih2, ((struct furing_uring_req_header *)self->hdr)->in_out,
			       sizeof(ih2));
		} else {
			TH_LOG("CQE %d: res %d tag %llu", i, res, (unsigned long long)tag);
		}
	}
	EXPECT_EQ(1, got_cancel);
	ASSERT_EQ(1, got_req);
	/* Both GETATTRs are the server's, the first one too. */
	EXPECT_EQ(2, furing_entries(id, "userspace"));
	self->last_qid = (r.qid + cpus - 1) % cpus;
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih1, sizeof(struct fuse_attr_out)));
	EXPECT_EQ(0, join_within(th, 10));
	self->last_qid = r.qid;
	EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih2, sizeof(struct fuse_attr_out)));
	EXPECT_EQ(0, join_within(t2, 10));
	EXPECT_EQ(0, cs.ret);
}

/*
 * Serves a GETATTR from every online CPU with the only queue registered,
 * @qid: each goes over that queue, none the classic way.
 */
static void serve_every_cpu(struct __test_metadata *_metadata, FIXTURE_DATA(ring) *self,
			    uint16_t qid)
{
	int online = cpu_count("online"), c;
	long id = furing_conn_id(MNT), classic0, classic, sent;

	ASSERT_LT(0, online);
	ASSERT_EQ(0, furing_stats(id, &classic0, &sent));
	for (c = 0; c < online; c++) {
		struct cpu_stat cs = { .cpu = c };
		struct fuse_in_header ih;
		pthread_t th;

		ASSERT_EQ(0, pthread_create(&th, NULL, stat_on_cpu, &cs));
		ASSERT_EQ(0, next_request(self, &ih)) {
			TH_LOG("no request from CPU %d", c);
		}
		EXPECT_EQ(FUSE_GETATTR, ih.opcode);
		EXPECT_EQ(qid, self->last_qid);
		EXPECT_EQ(FURING_NO_CQE, commit_getattr(self, &ih, sizeof(struct fuse_attr_out)));
		pthread_join(th, NULL);
		EXPECT_EQ(0, cs.ret) {
			TH_LOG("stat on CPU %d: %ld", c, cs.ret);
		}
	}
	ASSERT_EQ(0, furing_stats(id, &classic, &sent));
	EXPECT_EQ(online, sent);
	EXPECT_EQ(classic0, classic);
}

/*
 * A server with queues on some CPUs only (queue 0 alone): the requests of
 * every online CPU go over queue 0.
 */
TEST_F(ring, queues_on_some_cpus)
{
	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_EQ(FURING_NO_CQE, do_register(self, 0));
	ASSERT_EQ(0, furing_wait_entries(furing_conn_id(MNT), "available", 1));
	serve_every_cpu(_metadata, self, 0);
}

/*
 * A possible CPU that is not online has a queue too: REGISTER on it parks,
 * and as the only queue it serves every online CPU; the queue after the last
 * possible CPU does not exist (EINVAL).
 */
TEST_F(ring, queue_of_offline_cpu)
{
	int possible = cpu_count("possible"), online = cpu_count("online");

	ASSERT_LT(0, online);
	if (possible <= online)
		SKIP(return, "every possible CPU is online (the smp4 run has one that is not)");
	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	EXPECT_EQ(-EINVAL, do_register(self, possible));
	ASSERT_EQ(FURING_NO_CQE, do_register(self, possible - 1));
	ASSERT_EQ(0, furing_wait_entries(furing_conn_id(MNT), "available", 1));
	serve_every_cpu(_metadata, self, possible - 1);
}

/* A server killed with commands parked leaves a mount that says ENOTCONN. */
TEST(server_killed_with_parked_commands)
{
	int pipefd[2], status;
	pid_t pid;
	char c;

	ASSERT_EQ(0, furing_ensure_loaded());
	mkdir(MNT, 0755);
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct furing_uring_cmd_req req = { 0 };
		struct fuse_init_out out = {
			.major = FUSE_KERNEL_VERSION, .minor = 46,
			.flags = FUSE_INIT_EXT | FUSE_MAX_PAGES,
			.flags2 = FUSE_OVER_IO_URING >> 32,
			.max_write = MAX_WRITE, .max_pages = MAX_WRITE / 4096,
		};
		static char hdr[4096], payload[PAYLOAD];
		struct iovec iov[2] = { { hdr, sizeof(struct furing_uring_req_header) },
					{ payload, PAYLOAD } };
		struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;
		struct io_uring ring;
		int fd = furing_open_and_mount(MNT);

		if (fd < 0 || read(fd, reqbuf, sizeof(reqbuf)) <= 0 ||
		    furing_reply(fd, ih->unique, 0, &out, sizeof(out)) ||
		    io_uring_queue_init(4, &ring, IORING_SETUP_SQE128))
			_exit(1);
		furing_prep_cmd(&ring, fd, FURING_URING_CMD_REGISTER, &req, iov, 2, 1);
		io_uring_submit(&ring);
		if (write(pipefd[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	ASSERT_EQ(1, read(pipefd[0], &c, 1));
	usleep(100000);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFSIGNALED(status));
	/* The dead server's ring is torn down asynchronously (see wait_enotconn()). */
	EXPECT_EQ(ENOTCONN, wait_enotconn());
	EXPECT_EQ(0, umount2(MNT, 0));
	EXPECT_EQ(0, furing_unload());
	EXPECT_EQ(0, furing_load());
	close(pipefd[0]);
	close(pipefd[1]);
}

TEST_HARNESS_MAIN
