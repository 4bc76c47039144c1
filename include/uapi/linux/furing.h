/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * furing: FUSE over io_uring on /dev/furing, with buffer rings, pinned
 * memory and zero-copy.
 *
 * The server opens /dev/furing, mounts a "furing" filesystem with fd=N,
 * answers FUSE_INIT with read()/write() on the fd and then serves requests
 * with IORING_OP_URING_CMD on that fd (the ring must use IORING_SETUP_SQE128;
 * struct furing_uring_cmd_req lives in the SQE's 80-byte command area).
 *
 * Basic mode (flags == 0) is wire compatible with Linux 7.3's basic
 * FUSE_IO_URING_CMD_REGISTER / FUSE_IO_URING_CMD_COMMIT_AND_FETCH: the same
 * command numbers, the same 40-byte command and the same 288-byte request
 * header, so existing servers work unchanged. Linux 7.3's <linux/fuse.h>
 * merged a different buffer design ("bufpool"); every name here carries the
 * FURING_ / furing_ prefix so that both headers can be included together.
 *
 * Byte layout (little endian, offsets in bytes):
 *
 *  struct furing_uring_cmd_req (40; bytes 0-27 as the v2 series' server
 *  speaks them):
 *     0 u64 flags        REGISTER: FURING_URING_* queue flags; COMMIT: 0
 *     8 u64 commit_id    COMMIT_AND_FETCH: id from furing_uring_ent_in_out;
 *                        REGISTER: 0
 *    16 u16 qid          queue index, 0 .. nr_cpu_ids - 1
 *    18 u16 padding      must be 0
 *    20 u32 init.buf_size      bufring REGISTER: size of one payload buffer
 *    24 u16 init.queue_depth   bufring REGISTER: entries of the queue
 *    26 u16 init.padding       must be 0
 *    28 u8  reserved[12]       must be 0, but in a REGISTER with
 *                              FURING_URING_BUF_CLASSES, where they are
 *    28 u32 class_buf_size[3]  the buffer sizes of classes 1-3 (below)
 *  init is read only from a buffer-ring queue's first REGISTER; it must be 0
 *  in basic mode and on COMMIT_AND_FETCH.
 *
 *  struct furing_uring_req_header (288), one per entry:
 *     0 u8  in_out[128]  struct fuse_in_header / struct fuse_out_header
 *   128 u8  op_in[128]   the opcode's in-struct (e.g. struct fuse_read_in)
 *   256 struct furing_uring_ent_in_out (32):
 *       256 u64 flags       FURING_URING_ENT_*
 *       264 u64 commit_id   never 0
 *       272 u32 payload_sz  bytes of payload in the payload buffer
 *       276 u16 buf_id      bufring: payload buffer of this request
 *       278 u16 padding
 *       280 u64 reserved
 *
 * Buffer-ring queues (FURING_URING_BUFRING in flags):
 *  - Every REGISTER of the queue carries the same flags, init.queue_depth,
 *    init.buf_size and the same two iovecs (sqe->addr, sqe->len == 2; with
 *    buffer classes, below, one payload region per class):
 *      iov[0]  headers region: queue_depth slots of struct
 *              furing_uring_req_header (288 bytes each, back to back);
 *      iov[1]  payload region: carved into iov[1].iov_len / buf_size buffers
 *              of buf_size bytes, buffer i at offset i * buf_size.
 *    The first REGISTER sets the queue up from them; later ones only add
 *    their entry (their init, class sizes and iovecs are not read again).
 *  - sqe->buf_index is the entry's id, 0 .. queue_depth - 1: its header slot
 *    is at iov[0] + buf_index * 288, and with zero-copy it is also where the
 *    request's pages are registered in the ring's buffer table.
 *  - A request with payload (arguments after the op header, or a reply with
 *    output arguments) gets a free buffer: ring_ent_in_out.buf_id names it
 *    and the server writes its reply's payload into the same buffer. A
 *    request without payload gets buf_id FURING_URING_NO_BUF. The buffer is
 *    free again once the reply is committed (or the request ends). With fewer
 *    buffers than entries, requests wait for a buffer; they do not fail.
 *  - FURING_URING_PINNED_HEADERS / _PINNED_BUFFERS: that region's address must
 *    be page aligned (its length need not be: the pages it covers are pinned);
 *    it is pinned and mapped into the kernel once,
 *    at the first REGISTER, and charged to the server's RLIMIT_MEMLOCK
 *    (CAP_IPC_LOCK bypasses the limit); the kernel then copies with memcpy.
 *
 * Buffer classes (FURING_URING_BUF_CLASSES, with BUFRING): payload buffers of
 * up to FURING_URING_MAX_BUF_CLASSES sizes, e.g. a few of max_write for large
 * reads and writes and many small ones for metadata.
 *  - Class 0's buffer size is init.buf_size, class k's class_buf_size[k - 1]
 *    (k = 1..3); a 0 ends the list. The sizes strictly increase, and the
 *    largest must hold the largest request payload (as buf_size above).
 *  - REGISTER passes 1 + classes iovecs (sqe->len): iov[0] the headers region,
 *    iov[1 + k] class k's payload region, carved into iov_len / size buffers.
 *    Buffer ids number the classes' buffers in order, class 0's first: class
 *    k's buffer j has id first_k + j (first_k: the buffers of the classes
 *    before k) and lies at iov[1 + k] + j * size_k. 65535 buffers in all at
 *    most. With PINNED_BUFFERS every class region is pinned (page aligned).
 *  - A request's payload need is the larger of its arguments after the op
 *    header and the reply it may take (zero-copied pages not counted). It
 *    takes a free buffer of the smallest class that holds that need. When
 *    the class has none free, with FURING_URING_BUF_CLASSES_STRICT it waits
 *    for one; without, it takes a free buffer of the next larger class that
 *    has one, and waits only when none has.
 *  - Requests waiting for different classes do not wait behind each other:
 *    each class has its own line, and the oldest request that can go, goes.
 *  - On a zero-copy queue, "larger than buf_size" means larger than the
 *    largest class.
 *
 * Zero-copy queues (FURING_URING_ZERO_COPY, with BUFRING and both PINNED
 * flags; CAP_SYS_ADMIN):
 *  - The data pages of a FUSE_READ (the reply's data) or FUSE_WRITE (the
 *    request's data) of at least 64 KiB, or larger than buf_size, are not
 *    copied (smaller ones are, as on a pinned queue, without the flag below:
 *    a fixed-buffer operation costs more than copying a few pages): the
 *    client's pages are registered as
 *    buffer buf_index of the io_uring the entry's command came from
 *    (io_buffer_register_bvec()), and ring_ent_in_out.flags has
 *    FURING_URING_ENT_ZERO_COPY. The server moves the data with
 *    IORING_OP_READ_FIXED (READ: into the pages) or IORING_OP_WRITE_FIXED
 *    (WRITE: from the pages) at buffer index buf_index, offset 0 in the buffer,
 *    so its ring needs a buffer table of at least queue_depth entries
 *    (IORING_REGISTER_BUFFERS2 sparse) before the first such request, and each
 *    zero-copy queue an io_uring of its own (the index is the entry's slot).
 *  - payload_sz counts the zero-copied bytes as if they were in the payload
 *    buffer: a WRITE's size on the way in, the bytes read in a READ's reply.
 *    Other arguments still go through the payload buffer, which a request gets
 *    only if it has such arguments (a READ gets FURING_URING_NO_BUF).
 *  - init.buf_size may be smaller than max_write (it must hold every other
 *    payload: names, directory entries, xattr values, write_out...).
 *  - The pages are unregistered when the reply is committed (or the request
 *    ends otherwise); after an abort, when the server's io_uring lets go of
 *    them (the module stays loaded until then).
 *  - Other requests with page arguments (READDIR, READLINK, IOCTL) are copied.
 *
 * Errors of every command (the CQE's res):
 *  EINVAL   an SQE without SQE128; an unknown cmd_op; a padding, init or
 *           reserved byte that must be 0 and is not; qid >= nr_cpu_ids
 *  EAGAIN   FUSE_INIT not answered yet
 *  EOPNOTSUPP  the server's INIT reply did not ask for FUSE_OVER_IO_URING
 *  ENOTCONN the connection is aborted or being torn down; also the result
 *           of a parked command completed at teardown (umount, abort,
 *           server exit)
 *  EPERM    the fd is not mounted
 *  ECANCELED  a command whose request was being sent when its io_uring went
 *           away (the request goes to another entry, or the classic path)
 *
 * REGISTER errors:
 *  EINVAL  unknown flags; PINNED_* without BUFRING; ZERO_COPY without BUFRING
 *          and both PINNED flags; BUF_CLASSES without BUFRING;
 *          BUF_CLASSES_STRICT without BUF_CLASSES; class sizes that do not
 *          strictly increase or that go on after a 0; with BUF_CLASSES, a
 *          sqe->len other than 1 + classes or a class region without a
 *          whole buffer; flags other than the queue's first REGISTER;
 *          commit_id not 0; queue_depth 0 or above
 *          FURING_URING_MAX_QUEUE_DEPTH; a headers region smaller than
 *          queue_depth slots; buf_size smaller than the largest request
 *          payload (max_write; zero-copy queues excepted); no whole buffer,
 *          or more than 65535; buf_index >= queue_depth; a pinned region
 *          whose address is not page aligned (its length need not be: the
 *          pages it covers are pinned); basic mode: not two iovecs, a header
 *          slot smaller than 288 bytes or a payload buffer smaller than the
 *          largest request payload
 *  EPERM   ZERO_COPY without CAP_SYS_ADMIN
 *  EEXIST  a buf_index already registered
 *  ENOSPC  basic mode: the queue has FURING_URING_MAX_QUEUE_DEPTH entries
 *  EFAULT  a region (or an iovec) that is not mapped writable
 *  ENOMEM  pinning would exceed RLIMIT_MEMLOCK (CAP_IPC_LOCK bypasses it),
 *          or no memory
 *
 * COMMIT_AND_FETCH errors (the reply's request is left as it was):
 *  EINVAL  commit_id 0; flags not 0; a zero-copy queue's commit from another
 *          io_uring than the entry's REGISTER (its pages are registered there)
 *  ENOENT  no request commit_id in the server's hands on this queue
 * A reply that is malformed (an out header whose unique is not the
 * request's, an error outside -511..0, a payload_sz the request cannot take,
 * a buffer it cannot read) fails the request with EIO for the client; the
 * entry stays registered and the command waits for the next request.
 * A request whose copy into the entry fails (e.g. a buffer unmapped) also
 * ends with EIO, and the entry takes the next one (as Linux 7.3 does).
 */
#ifndef _UAPI_LINUX_FURING_H
#define _UAPI_LINUX_FURING_H

#include <linux/types.h>

/* Path of the character device. */
#define FURING_DEV_NAME			"furing"

/* Sizes of the two header parts (same as Linux 7.3). */
#define FURING_URING_IN_OUT_HEADER_SZ	128
#define FURING_URING_OP_IN_OUT_SZ	128

/* uring_cmd opcodes (sqe->cmd_op); same values as Linux 7.3. */
enum furing_uring_cmd {
	FURING_URING_CMD_INVALID = 0,
	/* Register an entry and wait for a request. */
	FURING_URING_CMD_REGISTER = 1,
	/* Commit the reply of commit_id and wait for the next request. */
	FURING_URING_CMD_COMMIT_AND_FETCH = 2,
};

/*
 * Queue flags, in furing_uring_cmd_req.flags of REGISTER. Every REGISTER of
 * a queue carries the same flags as its first one.
 *
 * FURING_URING_BUFRING: the first REGISTER of the queue passes two iovecs
 *   for the whole queue (headers region, payload region); the payload region
 *   is carved into init.buf_size buffers, picked per request; sqe->buf_index
 *   is the entry's id and selects its header slot.
 * FURING_URING_PINNED_HEADERS: the headers region is pinned and vmapped once.
 * FURING_URING_PINNED_BUFFERS: the payload region is pinned and vmapped once.
 * FURING_URING_ZERO_COPY: client pages are registered as io_uring buffers at
 *   the entry's id (needs CAP_SYS_ADMIN and both PINNED flags).
 * FURING_URING_BUF_CLASSES: payload buffers of several sizes, one region per
 *   class (needs BUFRING); a request takes the smallest class that holds it,
 *   or a larger one with a free buffer when its own has none.
 * FURING_URING_BUF_CLASSES_STRICT: a request only ever takes a buffer of the
 *   smallest class that holds it, and waits for one (needs BUF_CLASSES).
 */
#define FURING_URING_BUFRING		(1ULL << 0)
#define FURING_URING_PINNED_HEADERS	(1ULL << 1)
#define FURING_URING_PINNED_BUFFERS	(1ULL << 2)
#define FURING_URING_ZERO_COPY		(1ULL << 3)
#define FURING_URING_BUF_CLASSES	(1ULL << 4)
#define FURING_URING_BUF_CLASSES_STRICT	(1ULL << 5)
#define FURING_URING_FLAGS_ALL		(FURING_URING_BUFRING | \
					 FURING_URING_PINNED_HEADERS | \
					 FURING_URING_PINNED_BUFFERS | \
					 FURING_URING_ZERO_COPY | \
					 FURING_URING_BUF_CLASSES | \
					 FURING_URING_BUF_CLASSES_STRICT)

/* Most payload buffer classes of a queue (init.buf_size + class_buf_size). */
#define FURING_URING_MAX_BUF_CLASSES	4

/* Largest init.queue_depth of a buffer-ring queue. */
#define FURING_URING_MAX_QUEUE_DEPTH	1024

/* furing_uring_ent_in_out.buf_id of a request that has no payload buffer. */
#define FURING_URING_NO_BUF		0xffffU

/* furing_uring_ent_in_out.flags: the payload was zero-copied. */
#define FURING_URING_ENT_ZERO_COPY	(1ULL << 0)

struct furing_uring_ent_in_out {
	__u64 flags;
	/* id to commit the reply with; never 0 */
	__u64 commit_id;
	/* bytes of payload in the payload buffer */
	__u32 payload_sz;
	/* bufring queues: the payload buffer of this request */
	__u16 buf_id;
	__u16 padding;
	__u64 reserved;
};

struct furing_uring_req_header {
	/* struct fuse_in_header / struct fuse_out_header */
	__u8 in_out[FURING_URING_IN_OUT_HEADER_SZ];
	/* per opcode header */
	__u8 op_in[FURING_URING_OP_IN_OUT_SZ];
	struct furing_uring_ent_in_out ring_ent_in_out;
};

/* In the 80-byte command area of an SQE128. */
struct furing_uring_cmd_req {
	__u64 flags;
	__u64 commit_id;
	__u16 qid;
	__u16 padding;
	struct {
		__u32 buf_size;
		__u16 queue_depth;
		__u16 padding;
	} init;
	union {
		/* 0, but in a FURING_URING_BUF_CLASSES REGISTER */
		__u8 reserved[12];
		/* FURING_URING_BUF_CLASSES: buffer sizes of classes 1-3 */
		__u32 class_buf_size[FURING_URING_MAX_BUF_CLASSES - 1];
	};
};

#endif /* _UAPI_LINUX_FURING_H */
