/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for kselftests that play the FUSE server by hand on /dev/furing:
 * classic replies, the INIT answer, and io_uring furing commands.
 */
#ifndef _FURING_RING_H
#define _FURING_RING_H

#include <liburing.h>
#include <sys/uio.h>
#include <linux/furing.h>
#include FUSE_KERNEL_H

/* furing_wait_cqe(): nothing arrived in time. */
#define FURING_NO_CQE 1

/*
 * Writes a reply to request @unique on the device @fd: -errno @error, or
 * @len bytes of @payload; 0 or -errno.
 */
static inline int furing_reply(int fd, uint64_t unique, int error, const void *payload,
			       size_t len)
{
	struct fuse_out_header oh = {
		.len = sizeof(oh) + (error ? 0 : len), .error = error, .unique = unique,
	};
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)payload, error ? 0 : len } };

	return writev(fd, iov, 2) < 0 ? -errno : 0;
}

/*
 * The reply to an INIT that sent @in: the FUSE_* @flags agreed on (both
 * words), @max_write, and @max_background with a congestion threshold of 3/4
 * of it. The one INIT answer of the tests and of furing-server.
 */
static inline struct fuse_init_out furing_init_out(const struct fuse_init_in *in, uint64_t flags,
						   uint32_t max_write, uint16_t max_background)
{
	uint32_t pages = (max_write + 4095) / 4096;
	struct fuse_init_out out = {
		.major = FUSE_KERNEL_VERSION,
		.minor = in->minor < FUSE_KERNEL_MINOR_VERSION ? in->minor :
			 FUSE_KERNEL_MINOR_VERSION,
		.max_readahead = in->max_readahead,
		.flags = flags,
		.flags2 = flags >> 32,
		.max_background = max_background,
		.congestion_threshold = max_background * 3 / 4 ? max_background * 3 / 4 : 1,
		.max_write = max_write,
		.time_gran = 1,
		.max_pages = pages < 65535 ? pages : 65535,
	};

	return out;
}

/*
 * Answers the INIT request @unique (which sent @in) with @max_write;
 * @uring: whether the server asks for io-uring. 0 or -errno.
 */
static inline int furing_answer_init(int fd, const struct fuse_init_in *in, uint64_t unique,
				     int uring, uint32_t max_write)
{
	struct fuse_init_out out = furing_init_out(in, FUSE_INIT_EXT | FUSE_MAX_PAGES |
						   (uring ? FUSE_OVER_IO_URING : 0), max_write, 16);

	return furing_reply(fd, unique, 0, &out, sizeof(out));
}

/*
 * Queues one io-uring FUSE command on @ring (an SQE128 ring): @len bytes of
 * @cmd (a struct furing_uring_cmd_req, or Linux 7.3's struct
 * fuse_uring_cmd_req on /dev/fuse) in the command area.
 */
static inline struct io_uring_sqe *
furing_prep_cmd_raw(struct io_uring *ring, int fd, uint32_t op, const void *cmd, size_t len,
		    struct iovec *iov, unsigned int nr_iov, uint64_t tag)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (!sqe) {
		/* The ring is smaller than the commands a test queues (one per CPU each). */
		fprintf(stderr, "furing_prep_cmd: submission queue full\n");
		abort();
	}
	/* An SQE128 is two SQE slots; the command area runs into the second. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
	memset(sqe, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->cmd_op = op;
	sqe->addr = (uintptr_t)iov;
	sqe->len = nr_iov;
	sqe->user_data = tag;
	memcpy(sqe->cmd, cmd, len);
#pragma GCC diagnostic pop
	return sqe;
}

/*
 * The command of a buffer-ring queue's REGISTER: @flags, queue @qid of
 * @depth entries, and the buffer sizes of its classes: @sizes[0] in
 * init.buf_size, @sizes[1..3] in class_buf_size (FURING_URING_BUF_CLASSES;
 * 0 ends the list). Nothing is checked: the kernel is.
 */
static inline struct furing_uring_cmd_req
furing_register_req(uint64_t flags, uint16_t qid, uint16_t depth,
		    const uint32_t sizes[FURING_URING_MAX_BUF_CLASSES])
{
	struct furing_uring_cmd_req req = {
		.flags = flags, .qid = qid,
		.init = { .buf_size = sizes[0], .queue_depth = depth },
	};

	memcpy(req.class_buf_size, sizes + 1, sizeof(req.class_buf_size));
	return req;
}

/* Queues one furing command on @ring (an SQE128 ring). */
static inline struct io_uring_sqe *
furing_prep_cmd(struct io_uring *ring, int fd, uint32_t op, const struct furing_uring_cmd_req *req,
		struct iovec *iov, unsigned int nr_iov, uint64_t tag)
{
	return furing_prep_cmd_raw(ring, fd, op, req, sizeof(*req), iov, nr_iov, tag);
}

/* Waits up to @ms for a CQE; its result, or FURING_NO_CQE. */
static inline int furing_wait_cqe(struct io_uring *ring, int ms, uint64_t *tag)
{
	struct __kernel_timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
	struct io_uring_cqe *cqe;
	int res;

	if (io_uring_wait_cqe_timeout(ring, &cqe, &ts))
		return FURING_NO_CQE;
	res = cqe->res;
	if (tag)
		*tag = cqe->user_data;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

#endif /* _FURING_RING_H */
