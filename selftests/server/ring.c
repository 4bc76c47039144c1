// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server's io-uring transport: one thread, io_uring (SQE128) and set of
 * --depth entries per queue, pinned to the queue's CPU. The kernel queues a
 * request on the queue of the CPU the *client* runs on, and holds back all
 * requests until every possible CPU has a queue with a registered entry.
 * The commands are furing_ring.h's, as the tests that play the server by hand
 * send them.
 *
 * Where a request lives in a ring entry (fs/fuse/dev_uring.c,
 * fuse_uring_args_to_ring() / fuse_uring_copy_from_ring()):
 *  - header.in_out: struct fuse_in_header; the reply's struct
 *    fuse_out_header goes to the same place (its len is not used: the
 *    reply's size is ring_ent_in_out.payload_sz, which must match the
 *    out-arguments exactly unless the last one is of variable size, as
 *    for READ, READLINK and READDIR).
 *  - header.op_in: the request's first argument, the opcode's in-struct
 *    (e.g. struct fuse_read_in), copied only when it is not empty. LOOKUP,
 *    UNLINK, RMDIR and SYMLINK have an empty first argument (their names
 *    come next), READLINK and STATFS have no argument at all: op_in then
 *    holds stale bytes of an earlier request.
 *  - payload: every further in-argument, concatenated exactly as after the
 *    in-struct on /dev/fuse (names with their NULs, write data);
 *    ring_ent_in_out.payload_sz says how many bytes. All out-arguments of
 *    the reply go to the payload too (CREATE: fuse_entry_out then
 *    fuse_open_out).
 * So a ring request differs from a classic one only in where its first
 * argument sits: handlers get it as struct req.arg and the rest as
 * (data, datalen). In ring mode data and out are the same buffer, so a
 * handler consumes its input before it writes its output.
 *
 * Buffer-ring queues (--bufring: FURING_URING_BUFRING, furing only; see
 * "Buffer-ring queues" in <linux/furing.h>):
 *  - each queue thread mmap()s the headers region, --depth slots of struct
 *    furing_uring_req_header (288 bytes) back to back, and a payload region
 *    per buffer class: --bufs buffers of --buf-size bytes, or with
 *    --buf-class SIZExN (FURING_URING_BUF_CLASSES, up to four, sizes
 *    ascending) N buffers of SIZE bytes each, buffer j at j * SIZE. Every
 *    region starts on a page and is mapped in whole pages. Their iovecs give
 *    the exact size (depth * 288, N * SIZE), or, for a region pinned with
 *    --pin-headers / --pin-buffers (FURING_URING_PINNED_HEADERS / _BUFFERS),
 *    the whole pages, as the kernel wants a pinned region page aligned (it
 *    then carves a class's iov_len / SIZE buffers, maybe more than N).
 *  - entry i REGISTERs with sqe->buf_index = i and, like every entry of
 *    the queue, the queue's flags, init.queue_depth = --depth, the class
 *    sizes (init.buf_size: class 0's, class_buf_size: the others') and the
 *    same 1 + classes iovecs: the headers, then each class's region.
 *  - when entry i completes, its request is in header slot i as in basic
 *    mode, and its payload (payload_sz bytes) in the buffer that
 *    ring_ent_in_out.buf_id names: buffer ids count class 0's buffers
 *    first, then class 1's, and so on. The handler writes the reply's
 *    payload into that same buffer. A request with buf_id FURING_URING_NO_BUF
 *    has no payload and its reply must have none either: a handler that
 *    produces one anyway is a bug, answered with EIO. A buf_id or
 *    payload_sz out of range, a buffer smaller than the reply the request
 *    asks for (READ, READDIR, GETXATTR, LISTXATTR: their size), and with
 *    --buf-class-strict (FURING_URING_BUF_CLASSES_STRICT) a buffer of a
 *    larger class than the request needs, are the kernel's bugs: the request
 *    fails with EIO. Both kinds are logged and make the exit status 1.
 */
#include "server.h"
#include "../furing_ring.h"

/* Every in-struct fits the ring header's op_in area. */
_Static_assert(sizeof(struct fuse_setattr_in) <= FURING_URING_OP_IN_OUT_SZ, "op_in");
_Static_assert(sizeof(struct furing_uring_req_header) == 288, "req header");
_Static_assert(sizeof(struct furing_uring_cmd_req) == 40, "cmd req");

struct queue *queues;
/* a queue could not set up its buffer table or 7.3 pool: unmount and exit 1 */
static atomic_int setup_failed;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static unsigned int nr_registered;

static void queue_registered(void)
{
	pthread_mutex_lock(&reg_lock);
	nr_registered++;
	pthread_cond_broadcast(&reg_cond);
	pthread_mutex_unlock(&reg_lock);
}

static const char *cmd_name(uint32_t cmd_op)
{
	switch (cmd_op) {
	case FURING_URING_CMD_REGISTER:
		return "REGISTER";
	case FURING_URING_CMD_COMMIT_AND_FETCH:
		return "COMMIT_AND_FETCH";
	default:
		return "?";
	}
}

/*
 * 7.3 bufpool: queues a command of Linux 7.3's own struct fuse_uring_cmd_req:
 * REGISTER with the entry's header and no payload (the pool holds it), and on
 * a zero-copy queue the entry's slot in the buffer table; with a fixed pool,
 * REGISTER and COMMIT_AND_FETCH name the pool's buffer (IORING_URING_CMD_FIXED).
 */
static void prep_cmd_bufpool(struct queue *q, struct ring_ent *ent, uint32_t cmd_op,
			     uint64_t commit_id)
{
	struct fuse_uring_cmd_req req = { .commit_id = commit_id, .qid = q->qid };
	struct io_uring_sqe *sqe;

	if (cmd_op == FUSE_IO_URING_CMD_REGISTER && opt.fuse_zero_copy)
		req.ent_zero_copy_buf_index = ent - q->ents;
	sqe = furing_prep_cmd_raw(&q->ring, dev_fd, cmd_op, &req, sizeof(req), ent->iov,
				  ARRAY_SIZE(ent->iov), (uintptr_t)ent);
	if (opt.bufpool == POOL_FIXED) {
		sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
		sqe->buf_index = q->pool_index;
	}
	ent->cmd_op = cmd_op;
}

/*
 * Queues a ring command for @ent: sqe->addr points to two iovecs, basic mode
 * the entry's (header, payload), bufring the queue's (headers region, payload
 * region), with the entry's index in sqe->buf_index. A bufring REGISTER also
 * carries the queue's flags and geometry; COMMIT_AND_FETCH has flags 0 in
 * both modes.
 */
static void prep_cmd(struct queue *q, struct ring_ent *ent, uint32_t cmd_op, uint64_t commit_id)
{
	struct furing_uring_cmd_req req = { .commit_id = commit_id, .qid = q->qid };
	struct io_uring_sqe *sqe;

	if (opt.bufpool) {
		prep_cmd_bufpool(q, ent, cmd_op, commit_id);
		return;
	}

	if (opt.ring_flags && cmd_op == FURING_URING_CMD_REGISTER)
		req = furing_register_req(opt.ring_flags, q->qid, opt.depth, opt.class_size);
	if (opt.ring_flags) {
		sqe = furing_prep_cmd(&q->ring, dev_fd, cmd_op, &req, q->iov, 1 + opt.nr_classes,
				      (uintptr_t)ent);
		sqe->buf_index = ent - q->ents;
	} else {
		furing_prep_cmd(&q->ring, dev_fd, cmd_op, &req, ent->iov, ARRAY_SIZE(ent->iov),
				(uintptr_t)ent);
	}
	ent->cmd_op = cmd_op;
}

/* Logs a bufring request that fails with EIO for a bug; exit status 1. */
void ring_bad(struct queue *q, struct ring_ent *ent, const struct fuse_in_header *in,
	      const char *via, const char *what)
{
	const struct furing_uring_ent_in_out *eio = &ent->hdr->ring_ent_in_out;

	fprintf(stderr, "furing-server: %s: entry %td: %s(%u) unique %" PRIu64 ": %s "
		"(buf_id %#x payload_sz %u; %u buffers in %u classes): EIO\n", via,
		ent - q->ents, fs_op_name(in->opcode), in->opcode, (uint64_t)in->unique,
		what, eio->buf_id, eio->payload_sz, q->nr_bufs, opt.nr_classes);
	q->nr_bad++;
	atomic_store(&failed, 1);
}

/*
 * Commits the reply of the request in @ent (@in, @commit_id, @buf_id): @ret
 * payload bytes, -errno or NO_REPLY. Zero-copy: the first @zc_bytes of a
 * positive @ret are in the client's pages, not in a payload buffer.
 */
void ring_commit(struct queue *q, struct ring_ent *ent, const struct fuse_in_header *in,
		 uint64_t commit_id, uint32_t buf_id, ssize_t ret, size_t zc_bytes,
		 const char *via)
{
	struct furing_uring_req_header *hdr = ent->hdr;
	struct fuse_out_header oh = { .unique = in->unique };

	/* the kernel never rings no-reply requests; commit them empty anyway */
	if (ret == NO_REPLY)
		ret = 0;
	if (ret > (ssize_t)zc_bytes && opt.ring_flags && buf_id == FURING_URING_NO_BUF) {
		char what[96];

		snprintf(what, sizeof(what), "bug: %zd bytes of reply payload without a buffer",
			 ret - (ssize_t)zc_bytes);
		ring_bad(q, ent, in, via, what);
		ret = -EIO;
	}
	if (ret < 0)
		oh.error = ret;
	oh.len = sizeof(oh) + (ret > 0 ? ret : 0);
	memcpy(hdr->in_out, &oh, sizeof(oh));
	hdr->ring_ent_in_out.payload_sz = ret > 0 ? ret : 0;
	prep_cmd(q, ent, FURING_URING_CMD_COMMIT_AND_FETCH, commit_id);
}

/* bufring: the class buffer @buf_id belongs to, or NULL (out of range). */
static struct buf_class *class_of(struct queue *q, uint32_t buf_id)
{
	unsigned int k;

	for (k = 0; k < opt.nr_classes; k++)
		if (buf_id >= q->cls[k].first && buf_id - q->cls[k].first < q->cls[k].nr)
			return &q->cls[k];
	return NULL;
}

/* What the strict check takes for a reply that is a small struct or nothing (LOOKUP...). */
#define SMALL_REPLY	512

/*
 * The reply payload request @r (@zc: zero-copied) may take. READ, READDIR,
 * READDIRPLUS, GETXATTR and LISTXATTR ask for a size (*@exact: true; a
 * zero-copied READ's data is in the client's pages, a size-0 GETXATTR answers
 * fuse_getxattr_out); for the opcodes that answer a struct or nothing it is
 * at most SMALL_REPLY; 0 for the others (READLINK, IOCTL...): not checked.
 */
static size_t reply_bound(const struct req *r, bool zc, bool *exact)
{
	const struct fuse_read_in *ri = r->arg;
	const struct fuse_getxattr_in *gi = r->arg;

	*exact = true;
	switch (r->in.opcode) {
	case FUSE_READ:
		return zc ? 0 : ri->size;
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
		return ri->size;
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
		return gi->size ?: sizeof(struct fuse_getxattr_out);
	}
	*exact = false;
	switch (r->in.opcode) {
	case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_SETATTR: case FUSE_MKNOD:
	case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK: case FUSE_UNLINK: case FUSE_RMDIR:
	case FUSE_RENAME: case FUSE_RENAME2: case FUSE_OPEN: case FUSE_OPENDIR:
	case FUSE_CREATE: case FUSE_WRITE: case FUSE_STATFS: case FUSE_RELEASE:
	case FUSE_RELEASEDIR: case FUSE_FLUSH: case FUSE_FSYNC: case FUSE_FSYNCDIR:
	case FUSE_SETXATTR: case FUSE_REMOVEXATTR: case FUSE_ACCESS: case FUSE_FALLOCATE:
	case FUSE_LSEEK: case FUSE_COPY_FILE_RANGE: case FUSE_STATX:
		return SMALL_REPLY;
	}
	return 0;
}

/*
 * bufring: what is wrong with buffer class @c for request @r of @datalen
 * payload bytes (@zc: its data pages zero-copied), or NULL. A request's need
 * is the larger of its payload and its reply; it takes the smallest class
 * that holds it, a larger one only when that has no buffer free (never a
 * larger one with --buf-class-strict), the largest when none holds it.
 */
static const char *class_misfit(struct queue *q, const struct buf_class *c,
				const struct req *r, size_t datalen, bool zc)
{
	const struct buf_class *last = &q->cls[opt.nr_classes - 1];
	bool exact;
	size_t reply = reply_bound(r, zc, &exact);

	if (datalen > c->size)
		return "payload_sz above the buffer's size";
	if (exact && reply > c->size && c != last)
		return "a buffer smaller than the reply the request asks for";
	if (!(opt.ring_flags & FURING_URING_BUF_CLASSES_STRICT) || c == q->cls || !reply)
		return NULL;
	if (MAX(datalen, reply) <= c[-1].size)
		return "a larger class than the request needs, on a strict queue";
	return NULL;
}

static void ring_serve(struct queue *q, struct ring_ent *ent, const char *via)
{
	struct furing_uring_req_header *hdr = ent->hdr;
	struct furing_uring_ent_in_out *eio = &hdr->ring_ent_in_out;
	uint64_t commit_id = eio->commit_id;
	uint32_t buf_id = eio->buf_id;
	size_t datalen = eio->payload_sz;
	bool zc = eio->flags & FURING_URING_ENT_ZERO_COPY;
	char *buf = ent->payload;
	size_t bufsize = payload_size;
	char bvia[32];
	struct req r;
	ssize_t ret;

	memcpy(&r.in, hdr->in_out, sizeof(r.in));
	r.arg = hdr->op_in;
	r.move = NULL;
	atomic_fetch_add(&q->served, 1);
	if (zc && zc_accept(q, ent, &r, &datalen, via)) {
		ret = -EIO;
		goto reply;
	}
	if (opt.bufpool) {
		/*
		 * 7.3: the payload is in the pool, at the offset the header names. A
		 * request the kernel gave no buffer (no payload either way, or a
		 * zero-copied READ) says offset 0 too, which is another entry's buffer
		 * maybe: its handler writes nothing there (FUSE replies with payload are
		 * exactly the requests that get a buffer).
		 */
		uint32_t off = ((const struct fuse_uring_ent_in_out *)eio)->offset;

		if (off % payload_size || off + payload_size > q->pool_len ||
		    datalen > payload_size) {
			ring_bad(q, ent, &r.in, via, "pool offset or payload_sz out of range");
			ret = -EIO;
			goto reply;
		}
		buf = q->pool + off;
	} else if (!opt.ring_flags) {
		datalen = MIN(datalen, payload_size);
	} else {
		struct buf_class *c = class_of(q, buf_id);
		const char *misfit;

		if (buf_id == FURING_URING_NO_BUF) {
			/* a handler's payload lands here, to be refused below */
			buf = q->nobuf;
			bufsize = q->nobuf_size;
			if (datalen) {
				ring_bad(q, ent, &r.in, via, "payload without a buffer");
				ret = -EIO;
				goto reply;
			}
		} else if (!c) {
			ring_bad(q, ent, &r.in, via, "buf_id out of range");
			ret = -EIO;
			goto reply;
		} else {
			buf = c->base + (size_t)(buf_id - c->first) * c->size;
			bufsize = c->size;
			atomic_fetch_add(&c->used, 1);
			misfit = class_misfit(q, c, &r, datalen, zc);
			if (misfit) {
				ring_bad(q, ent, &r.in, via, misfit);
				ret = -EIO;
				goto reply;
			}
		}
		if (opt.debug) {
			if (buf_id == FURING_URING_NO_BUF)
				snprintf(bvia, sizeof(bvia), "%s/-", via);
			else
				snprintf(bvia, sizeof(bvia), "%s/b%u", via, buf_id);
			via = bvia;
		}
	}
	r.data = buf;
	r.datalen = datalen;
	r.out = buf;
	r.outsize = bufsize;
	if (zc)
		zc_attach(ent, &r, commit_id, buf_id, buf, bufsize);
	ret = handle(&r, via);
	if (ret == REPLY_PENDING) {
		/* the commit follows the fixed op's CQE (or at once with --zc-no-touch) */
		zc_start(q, ent, via);
		return;
	}
reply:
	ring_commit(q, ent, &r.in, commit_id, buf_id, ret, 0, via);
}

static void ring_complete(struct queue *q, struct ring_ent *ent, int res, const char *via)
{
	switch (res) {
	case 0:
		ring_serve(q, ent, via);
		return;
	case -EAGAIN:
		/* REGISTER before the kernel processed INIT's reply: retry */
		usleep(1000);
		prep_cmd(q, ent, FURING_URING_CMD_REGISTER, 0);
		return;
	/* teardown: unmounted, aborted, or the ring is going away */
	case -ENOTCONN:
		q->nr_enotconn++;
		break;
	case -ECONNABORTED:
		q->nr_econnaborted++;
		break;
	case -ECANCELED:
		q->nr_ecanceled++;
		break;
	default:
		fprintf(stderr, "furing-server: %s: entry %td: %s: %s (%s)\n", via,
			ent - q->ents, cmd_name(ent->cmd_op), strerrorname_np(-res) ?: "?",
			strerror(-res));
		/* the ring is not what was asked for */
		if (ent->cmd_op == FURING_URING_CMD_REGISTER)
			atomic_store(&failed, 1);
		q->nr_other++;
		q->last_other = res;
		break;
	}
	if (opt.debug)
		fprintf(stderr, "furing-server: %s: entry %td ended: %s\n", via,
			ent - q->ents, strerrorname_np(-res) ?: "?");
	q->live--;
}

static void queue_free(struct queue *q)
{
	unsigned int i;

	for (i = 0; q->ents && !opt.ring_flags && i < opt.depth; i++) {
		free(q->ents[i].hdr);
		if (!opt.bufpool)
			free(q->ents[i].payload);
	}
	free(q->ents);
	q->ents = NULL;
	if (q->hdrs)
		munmap(q->hdrs, q->hdrs_len);
	q->hdrs = NULL;
	for (i = 0; i < opt.nr_classes; i++) {
		if (q->cls[i].base)
			munmap(q->cls[i].base, q->cls[i].len);
		q->cls[i].base = NULL;
	}
	free(q->nobuf);
	q->nobuf = NULL;
	if (q->pool)
		munmap(q->pool, q->pool_len);
	q->pool = NULL;
}

/* Anonymous memory in whole pages, page aligned; NULL on failure. */
static void *map_region(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Bufring: maps the headers region and each class's payload region, numbers
 * the classes' buffers in order and points entry i at header slot i. A
 * pinned region's iovec spans its whole pages.
 */
static int queue_alloc_bufring(struct queue *q)
{
	size_t page = sysconf(_SC_PAGESIZE);
	size_t hdrs_sz = (size_t)opt.depth * sizeof(struct furing_uring_req_header);
	unsigned int i;
	int err;

	q->ents = calloc(opt.depth, sizeof(*q->ents));
	if (!q->ents)
		return -ENOMEM;
	q->hdrs_len = (hdrs_sz + page - 1) / page * page;
	q->hdrs = map_region(q->hdrs_len);
	if (!q->hdrs)
		goto fail;
	if (opt.ring_flags & FURING_URING_PINNED_HEADERS)
		hdrs_sz = q->hdrs_len;
	q->iov[0] = (struct iovec){ q->hdrs, hdrs_sz };
	q->nr_bufs = 0;
	for (i = 0; i < opt.nr_classes; i++) {
		struct buf_class *c = &q->cls[i];
		size_t sz = (size_t)opt.class_bufs[i] * opt.class_size[i];

		c->len = (sz + page - 1) / page * page;
		c->base = map_region(c->len);
		if (!c->base)
			goto fail;
		if (opt.ring_flags & FURING_URING_PINNED_BUFFERS)
			sz = c->len;
		c->size = opt.class_size[i];
		c->first = q->nr_bufs;
		c->nr = sz / c->size;
		q->nr_bufs += c->nr;
		q->iov[1 + i] = (struct iovec){ c->base, sz };
	}
	q->nobuf_size = opt.class_size[opt.nr_classes - 1];
	q->nobuf = malloc(q->nobuf_size);
	if (!q->nobuf)
		goto fail;
	for (i = 0; i < opt.depth; i++)
		q->ents[i].hdr = &q->hdrs[i];
	return 0;

fail:
	err = -errno ?: -ENOMEM;
	queue_free(q);
	return err;
}

/* Allocates the entries: a 288-byte header and a payload buffer each. */
static int queue_alloc(struct queue *q)
{
	size_t hdr_size = (sizeof(struct furing_uring_req_header) + 4095) & ~4095UL;
	size_t pl_size = (payload_size + 4095) & ~4095UL;
	unsigned int i;

	if (opt.ring_flags)
		return queue_alloc_bufring(q);
	q->ents = calloc(opt.depth, sizeof(*q->ents));
	if (!q->ents)
		return -ENOMEM;
	for (i = 0; i < opt.depth; i++) {
		struct ring_ent *ent = &q->ents[i];

		ent->hdr = aligned_alloc(4096, hdr_size);
		ent->payload = opt.bufpool ? NULL : aligned_alloc(4096, pl_size);
		if (!ent->hdr || (!opt.bufpool && !ent->payload)) {
			queue_free(q);
			return -ENOMEM;
		}
		memset(ent->hdr, 0, hdr_size);
		ent->iov[0] = (struct iovec){ ent->hdr, sizeof(*ent->hdr) };
		ent->iov[1] = (struct iovec){ ent->payload, payload_size };
		/* 7.3 bufpool: REGISTER names no payload, the pool has it */
		if (opt.bufpool)
			ent->iov[1] = (struct iovec){ NULL, 0 };
	}
	/* 7.3 bufpool: --bufs buffers of the kernel's max payload (payload_size) */
	if (opt.bufpool) {
		q->pool_len = (size_t)opt.bufs * payload_size;
		q->pool = map_region(q->pool_len);
		if (!q->pool) {
			queue_free(q);
			return -ENOMEM;
		}
	}
	return 0;
}

/*
 * The queue's io_uring buffer table: zero-copy queues get a sparse slot per
 * entry (the kernel registers a request's pages at the entry's index), and a
 * 7.3 fixed pool its own buffer after them. 0, or -errno (printed).
 */
static int buffer_table_setup(struct queue *q, const char *via)
{
	struct iovec pool = { q->pool, q->pool_len };
	unsigned int slots = zc_enabled() ? opt.depth : 0;
	int ret = 0;

	q->pool_index = slots;
	if (opt.bufpool == POOL_FIXED && !slots)
		ret = io_uring_register_buffers(&q->ring, &pool, 1);
	else if (slots)
		ret = io_uring_register_buffers_sparse(&q->ring,
						       slots + (opt.bufpool == POOL_FIXED));
	if (!ret && slots && opt.bufpool == POOL_FIXED)
		ret = io_uring_register_buffers_update_tag(&q->ring, slots, &pool, NULL, 1);
	if (ret < 0)
		fprintf(stderr, "furing-server: %s: io_uring buffer table (%u slots%s): %s (%s)\n",
			via, slots, opt.bufpool == POOL_FIXED ? " and the pool" : "",
			strerrorname_np(-ret) ?: "?", strerror(-ret));
	return ret < 0 ? ret : 0;
}

/* Runs one command that completes at once (ADD_QUEUE, ADD_BUFPOOL); its result. */
static int sync_cmd(struct queue *q, struct io_uring_sqe *sqe)
{
	struct io_uring_cqe *cqe;
	int ret;

	sqe->user_data = 0;
	ret = io_uring_submit_and_wait(&q->ring, 1);
	if (ret < 0)
		return ret;
	ret = io_uring_wait_cqe(&q->ring, &cqe);
	if (ret)
		return ret;
	ret = cqe->res;
	io_uring_cqe_seen(&q->ring, cqe);
	return ret;
}

/*
 * 7.3 bufpool: FUSE_IO_URING_CMD_ADD_QUEUE (zero-copy or not), then
 * FUSE_IO_URING_CMD_ADD_BUFPOOL with the pool (fixed: through its registered
 * buffer). 0, or -errno (printed).
 */
static int bufpool_setup(struct queue *q, const char *via)
{
	struct fuse_uring_cmd_req req = {
		.flags = opt.fuse_zero_copy ? FUSE_URING_ZERO_COPY : 0, .qid = q->qid,
	};
	struct io_uring_sqe *sqe;
	int ret;

	sqe = furing_prep_cmd_raw(&q->ring, dev_fd, FUSE_IO_URING_CMD_ADD_QUEUE, &req, sizeof(req),
				  NULL, 0, 0);
	ret = sync_cmd(q, sqe);
	if (ret) {
		fprintf(stderr, "furing-server: %s: ADD_QUEUE: %s\n", via, strerror(-ret));
		return ret;
	}
	req = (struct fuse_uring_cmd_req){ .qid = q->qid };
	req.bufpool.uaddr = (uintptr_t)q->pool;
	req.bufpool.len = q->pool_len;
	sqe = furing_prep_cmd_raw(&q->ring, dev_fd, FUSE_IO_URING_CMD_ADD_BUFPOOL, &req,
				  sizeof(req), NULL, 0, 0);
	if (opt.bufpool == POOL_FIXED) {
		sqe->uring_cmd_flags = IORING_URING_CMD_FIXED;
		sqe->buf_index = q->pool_index;
	}
	ret = sync_cmd(q, sqe);
	if (ret)
		fprintf(stderr, "furing-server: %s: ADD_BUFPOOL: %s\n", via, strerror(-ret));
	return ret;
}

static void *queue_thread(void *arg)
{
	struct queue *q = arg;
	struct io_uring_cqe *cqe;
	cpu_set_t cpus;
	unsigned int i;
	char via[16];
	int ret;

	snprintf(via, sizeof(via), "q%u", q->qid);
	/* the queue serves the clients on CPU qid: stay next to them */
	CPU_ZERO(&cpus);
	CPU_SET(q->qid, &cpus);
	ret = pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	if (ret && opt.debug)
		fprintf(stderr, "furing-server: %s: not pinned to CPU %u: %s\n", via, q->qid,
			strerror(ret));

	ret = queue_alloc(q);
	if (ret)
		goto fail;
	/* the ring belongs to this thread: requests reach it as its task work */
	ret = io_uring_queue_init(2 * opt.depth, &q->ring, IORING_SETUP_SQE128);
	if (ret)
		goto fail_free;
	if (buffer_table_setup(q, via) || (opt.bufpool && bufpool_setup(q, via))) {
		atomic_store(&setup_failed, 1);
		atomic_store(&failed, 1);
		io_uring_queue_exit(&q->ring);
		queue_free(q);
		queue_registered();
		return NULL;
	}
	for (i = 0; i < opt.depth; i++)
		prep_cmd(q, &q->ents[i], FURING_URING_CMD_REGISTER, 0);
	q->live = opt.depth;
	/*
	 * uring commands are issued inline by io_uring_enter(): once submit
	 * returns, each REGISTER either parked its entry or posted its error.
	 */
	ret = io_uring_submit(&q->ring);
	if (ret != (int)opt.depth) {
		ret = ret < 0 ? ret : -EIO;
		goto fail_exit;
	}
	queue_registered();

	while (q->live) {
		ret = io_uring_submit_and_wait(&q->ring, 1);
		if (ret < 0 && ret != -EINTR) {
			fprintf(stderr, "furing-server: %s: io_uring_enter: %s\n", via,
				strerror(-ret));
			atomic_store(&failed, 1);
			break;
		}
		while (!io_uring_peek_cqe(&q->ring, &cqe)) {
			uintptr_t ud = cqe->user_data;
			struct ring_ent *ent = (void *)(ud & ~ZC_TAG);
			int res = cqe->res;

			io_uring_cqe_seen(&q->ring, cqe);
			if (ud & ZC_TAG)
				zc_complete(q, ent, res, via);
			else
				ring_complete(q, ent, res, via);
		}
	}
	io_uring_queue_exit(&q->ring);
	queue_free(q);
	return NULL;

fail_exit:
	io_uring_queue_exit(&q->ring);
fail_free:
	queue_free(q);
fail:
	fprintf(stderr, "furing-server: %s: setup: %s\n", via, strerror(-ret));
	atomic_store(&failed, 1);
	queue_registered();
	return NULL;
}

/* Starts a thread per queue and waits until each registered its entries; 0 or -1. */
int ring_start(void)
{
	unsigned int i;
	int err;

	queues = calloc(opt.queues, sizeof(*queues));
	if (!queues)
		return -1;
	for (i = 0; i < opt.queues; i++) {
		queues[i].qid = i;
		err = pthread_create(&queues[i].thread, NULL, queue_thread, &queues[i]);
		if (err) {
			fprintf(stderr, "furing-server: pthread_create: %s\n", strerror(err));
			return -1;
		}
		queues[i].started = true;
	}
	pthread_mutex_lock(&reg_lock);
	while (nr_registered < opt.queues)
		pthread_cond_wait(&reg_cond, &reg_lock);
	pthread_mutex_unlock(&reg_lock);
	/* no buffer table for the kernel's registrations: not ready */
	if (atomic_load(&setup_failed)) {
		fprintf(stderr, "furing-server: a queue has no io_uring buffer table or pool\n");
		return -1;
	}
	return 0;
}

void ring_join(void)
{
	unsigned int i;

	for (i = 0; i < opt.queues; i++)
		if (queues[i].started)
			pthread_join(queues[i].thread, NULL);
}

unsigned long ring_served(void)
{
	unsigned long total = 0;
	unsigned int i;

	for (i = 0; i < opt.queues; i++)
		total += atomic_load(&queues[i].served);
	return total;
}

/*
 * The exit line's part per queue: requests served, how its entries ended;
 * with --buf-class, then the requests each class's buffers served.
 */
void ring_print_stats(FILE *f)
{
	unsigned int i, k;

	for (i = 0; i < opt.queues; i++) {
		struct queue *q = &queues[i];

		fprintf(f, "%s q%u %lu", i ? "," : " (", i, atomic_load(&q->served));
		if (atomic_load(&q->zero_copied))
			fprintf(f, " zc %lu", atomic_load(&q->zero_copied));
		if (q->nr_enotconn)
			fprintf(f, " ENOTCONN x%u", q->nr_enotconn);
		if (q->nr_econnaborted)
			fprintf(f, " ECONNABORTED x%u", q->nr_econnaborted);
		if (q->nr_ecanceled)
			fprintf(f, " ECANCELED x%u", q->nr_ecanceled);
		if (q->nr_other)
			fprintf(f, " %s x%u", strerrorname_np(-q->last_other) ?: "?", q->nr_other);
		if (q->nr_bad)
			fprintf(f, " bad-buf x%u", q->nr_bad);
	}
	fprintf(f, ")");
	if (!(opt.ring_flags & FURING_URING_BUF_CLASSES))
		return;
	/* per class, over the queues: the requests handed one of its buffers */
	fprintf(f, "; classes");
	for (k = 0; k < opt.nr_classes; k++) {
		unsigned long used = 0;

		for (i = 0; i < opt.queues; i++)
			used += atomic_load(&queues[i].cls[k].used);
		fprintf(f, "%s %ux%u used %lu", k ? "," : "", opt.class_size[k], opt.class_bufs[k],
			used);
	}
	if (opt.ring_flags & FURING_URING_BUF_CLASSES_STRICT)
		fprintf(f, " strict");
}
