// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server's zero-copy requests, on the io-uring transport's queues.
 *
 * Zero-copy queues (--zero-copy: FURING_URING_ZERO_COPY on top of
 * --bufring --pin-headers --pin-buffers; needs CAP_SYS_ADMIN):
 *  - before its first REGISTER each queue thread gives its io_uring a sparse
 *    buffer table of --depth slots (io_uring_register_buffers_sparse()):
 *    the kernel registers a request's data pages at slot buf_index, the
 *    entry's id, and unregisters them when the reply is committed. A failure
 *    is fatal: the server unmounts and exits 1 before "ready".
 *  - a READ or WRITE whose ring_ent_in_out.flags has
 *    FURING_URING_ENT_ZERO_COPY has its data in those pages, not in the
 *    payload buffer: a WRITE's payload_sz counts fuse_write_in.size bytes
 *    that are not in the buffer, a READ gets no buffer (buf_id
 *    FURING_URING_NO_BUF). op_read() / op_write() then only note the backing
 *    fd, offset and size, and the entry moves on in two steps:
 *      request CQE   -> IORING_OP_READ_FIXED / WRITE_FIXED on the backing fd,
 *                       buf_index = entry id, addr = offset into the
 *                       registered pages (0 first), tagged user_data
 *                       (entry | ZC_TAG); back to the loop;
 *      fixed-op CQE  -> a short result is continued from where it stopped
 *                       (as op_read()'s pread() loop does) until EOF, an error
 *                       or the whole size; then the reply is committed: READ
 *                       error 0 and payload_sz = bytes read (nothing in the
 *                       buffer), WRITE struct fuse_write_out in its payload
 *                       buffer; -errno when nothing moved.
 *    Other CQEs of the ring (other entries' requests, teardown) are served in
 *    between as usual.
 *  - --zc-no-touch issues no fixed op: READ answers the requested size
 *    (data unspecified), WRITE the requested size as written; the kernel
 *    must still release the pages at the commit.
 *  - the exit line adds " zc N" to a queue's part when N of its requests
 *    were zero-copied.
 */
#include "server.h"

/* Whether the queues are zero-copy ones: furing's, or Linux 7.3's on /dev/fuse. */
bool zc_enabled(void)
{
	return (opt.ring_flags & FURING_URING_ZERO_COPY) || opt.fuse_zero_copy;
}

/*
 * A request with FURING_URING_ENT_ZERO_COPY: checks the flag belongs there
 * (READ or WRITE of a zero-copy queue) and takes a WRITE's data, which counts
 * in payload_sz but stays in the client's pages, off *@datalen. 0, or -EIO
 * (logged: the kernel's bug).
 */
int zc_accept(struct queue *q, struct ring_ent *ent, struct req *r, size_t *datalen,
	      const char *via)
{
	atomic_fetch_add(&q->zero_copied, 1);
	if (!zc_enabled() || (r->in.opcode != FUSE_READ && r->in.opcode != FUSE_WRITE)) {
		ring_bad(q, ent, &r->in, via, "zero-copy flag on this opcode or queue");
		return -EIO;
	}
	if (r->in.opcode == FUSE_WRITE) {
		const struct fuse_write_in *wi = (const void *)ent->hdr->op_in;

		if (wi->size > *datalen) {
			ring_bad(q, ent, &r->in, via, "payload_sz below the write size");
			return -EIO;
		}
		*datalen -= wi->size;
	}
	return 0;
}

/* req.move of a zero-copied request: notes what the fixed READ/WRITE must move. */
static ssize_t zc_move(struct req *r, int fd, uint64_t offset, uint32_t size, bool write)
{
	struct zc_io *zc = r->priv;

	zc->fd = fd;
	zc->write = write;
	zc->offset = offset;
	zc->size = size;
	return REPLY_PENDING;
}

/* Hands @r (in @ent) to the handler as zero-copied: its data moves with zc_start(). */
void zc_attach(struct ring_ent *ent, struct req *r, uint64_t commit_id, uint32_t buf_id,
	       char *buf, size_t bufsize)
{
	ent->zc = (struct zc_io){
		.in = r->in, .commit_id = commit_id, .buf_id = buf_id,
		.buf = buf, .bufsize = bufsize,
	};
	r->move = zc_move;
	r->priv = &ent->zc;
}

/*
 * Zero-copy: queues the fixed READ/WRITE of what is left of @ent's request,
 * between the backing file and the pages the kernel registered at the entry's
 * index. A kernel-registered buffer is addressed from 0: "addr" is the offset
 * into it.
 */
static void prep_zc(struct queue *q, struct ring_ent *ent)
{
	struct zc_io *zc = &ent->zc;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	void *addr = (void *)(uintptr_t)zc->done;
	unsigned int len = zc->size - zc->done;
	uint64_t off = zc->offset + zc->done;
	int index = ent - q->ents;

	/* it takes the place of the entry's command: the ring has room */
	if (!sqe)
		abort();
	memset(sqe, 0, 2 * sizeof(*sqe));
	if (zc->write)
		io_uring_prep_write_fixed(sqe, zc->fd, addr, len, off, index);
	else
		io_uring_prep_read_fixed(sqe, zc->fd, addr, len, off, index);
	sqe->user_data = (uintptr_t)ent | ZC_TAG;
}

/*
 * Zero-copy: the data of @ent's request moved (@res bytes in all, or -errno
 * when none did): commits the reply. A READ's bytes are in the client's pages
 * and only counted in payload_sz; a WRITE answers fuse_write_out through its
 * payload buffer.
 */
static void zc_reply(struct queue *q, struct ring_ent *ent, ssize_t res, const char *via)
{
	struct zc_io *zc = &ent->zc;
	size_t zc_bytes = 0;
	ssize_t ret = res;

	if (zc->write) {
		if (res >= 0) {
			struct fuse_write_out wo = { .size = res };
			struct req r = { .out = zc->buf, .outsize = zc->bufsize };

			ret = reply_copy(&r, &wo, sizeof(wo));
		}
	} else if (res > 0) {
		zc_bytes = res;
	}
	if (opt.debug) {
		fprintf(stderr, "furing-server: %-7s %s(%u) unique %" PRIu64 " zero-copy%s: %s %u"
			" of %u bytes at %" PRIu64 " -> %s\n", via, fs_op_name(zc->in.opcode),
			zc->in.opcode, (uint64_t)zc->in.unique, opt.zc_no_touch ? " no-touch" : "",
			zc->write ? "wrote" : "read", zc->done, zc->size, zc->offset,
			res < 0 ? strerrorname_np(-res) ?: "?" : "ok");
	}
	ring_commit(q, ent, &zc->in, zc->commit_id, zc->buf_id, ret, zc_bytes, via);
}

/* Moves the (rest of) @ent's data, or commits once there is none. */
void zc_start(struct queue *q, struct ring_ent *ent, const char *via)
{
	struct zc_io *zc = &ent->zc;

	if (opt.zc_no_touch)
		zc->done = zc->size;
	if (zc->done >= zc->size)
		zc_reply(q, ent, zc->done, via);
	else
		prep_zc(q, ent);
}

/*
 * Zero-copy: the CQE of @ent's fixed READ/WRITE (@res: bytes or -errno). A
 * short result goes on from where it stopped, as op_read()'s and op_write()'s
 * loops do, until EOF (0), an error or the whole size.
 */
void zc_complete(struct queue *q, struct ring_ent *ent, int res, const char *via)
{
	struct zc_io *zc = &ent->zc;

	if (res == -EINTR) {
		prep_zc(q, ent);
		return;
	}
	if (res < 0) {
		/* e.g. EFAULT when an abort took the pages meanwhile */
		fprintf(stderr, "furing-server: %s: entry %td: %s of %u bytes at %" PRIu64
			" (done %u): %s (%s)\n", via, ent - q->ents,
			zc->write ? "WRITE_FIXED" : "READ_FIXED", zc->size - zc->done,
			zc->offset + zc->done, zc->done, strerrorname_np(-res) ?: "?",
			strerror(-res));
		zc_reply(q, ent, zc->done ? (ssize_t)zc->done : res, via);
		return;
	}
	zc->done += MIN((uint32_t)res, zc->size - zc->done);
	if (res > 0 && zc->done < zc->size)
		prep_zc(q, ent);
	else
		zc_reply(q, ent, zc->done, via);
}
