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
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/uio.h>
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
};

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
	ASSERT_EQ(0, io_uring_queue_init(16, &self->ring, IORING_SETUP_SQE128));
	self->hdr = aligned_alloc(4096, 4096);
	self->payload = aligned_alloc(4096, PAYLOAD);
	ASSERT_NE(NULL, self->hdr);
	ASSERT_NE(NULL, self->payload);
	self->iov[0] = (struct iovec){ self->hdr, sizeof(struct furing_uring_req_header) };
	self->iov[1] = (struct iovec){ self->payload, PAYLOAD };
}

FIXTURE_TEARDOWN(ring)
{
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

/* Registers @n entries on every queue of this CPU count; all must park. */
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
	return furing_wait_cqe(&self->ring, 200, NULL) == FURING_NO_CQE ? parked : -1;
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
	return cpus;
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

/* A reply of the wrong size fails the request with EIO; the mount keeps working. */
TEST_F(ring, reply_with_wrong_size)
{
	struct fuse_in_header ih;
	struct stat st;
	pthread_t th;
	void *ret;

	ASSERT_EQ(0, answer_init(_metadata, self, 1));
	ASSERT_LT(0, register_all_one_entry(self));
	ASSERT_EQ(0, pthread_create(&th, NULL, stat_thread, &st));
	ASSERT_EQ(0, next_request(self, &ih));
	ASSERT_EQ(FUSE_GETATTR, ih.opcode);
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
