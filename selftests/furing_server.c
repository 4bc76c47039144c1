// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server: the passthrough FUSE server of furing's tests.
 *
 * It serves <backing-dir> at <mnt> through /dev/furing (fstype "furing") or
 * the kernel's own /dev/fuse (fstype "fuse"), answering requests either with
 * read()/write() on the device fd ("classic") or through io_uring
 * IORING_OP_URING_CMD ring entries (REGISTER / COMMIT_AND_FETCH, basic mode:
 * the same bytes for furing and for Linux 7.3's FUSE io-uring, or with
 * --bufring furing's buffer-ring queues).
 *
 * Threads:
 *  - main: mounts, answers FUSE_INIT, starts the others, waits for the
 *    unmount and prints per-transport request counts.
 *  - classic readers (one with io-uring, two without): read()/write() on the
 *    fd. With io-uring they still carry FORGET, BATCH_FORGET and INTERRUPT,
 *    which the kernel never puts on the ring, and anything queued before the
 *    ring became ready.
 *  - one thread per ring queue, pinned to the queue's CPU, with its own
 *    io_uring (SQE128) and --depth entries. The kernel queues a request on
 *    the queue of the CPU the *client* runs on, and holds back all requests
 *    until every possible CPU has a queue with a registered entry.
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
 *  - each queue thread mmap()s two regions: the headers, --depth slots of
 *    struct furing_uring_req_header (288 bytes) back to back, and the
 *    payload buffers, --bufs buffers of --buf-size bytes, buffer b at
 *    b * --buf-size. Both start on a page and are mapped in whole pages.
 *    Their iovecs give the exact size (depth * 288, bufs * buf_size), or,
 *    for a region pinned with --pin-headers / --pin-buffers
 *    (FURING_URING_PINNED_HEADERS / _BUFFERS), the whole pages, as the
 *    kernel wants a pinned region page aligned.
 *  - entry i REGISTERs with sqe->buf_index = i and, like every entry of
 *    the queue, the queue's flags, init.queue_depth = --depth,
 *    init.buf_size = --buf-size and the same two iovecs.
 *  - when entry i completes, its request is in header slot i as in basic
 *    mode, and its payload (payload_sz bytes) in the buffer that
 *    ring_ent_in_out.buf_id names; the handler writes the reply's payload
 *    into that same buffer. A request with buf_id FURING_URING_NO_BUF has
 *    no payload and its reply must have none either: a handler that
 *    produces one anyway is a bug, answered with EIO. A buf_id or
 *    payload_sz out of range is the kernel's bug: the request fails with
 *    EIO. Both are logged and make the exit status 1.
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
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <linux/furing.h>
/* the Makefile points FUSE_KERNEL_H at the pinned kernel's <linux/fuse.h> */
#ifdef FUSE_KERNEL_H
#include FUSE_KERNEL_H
#else
#include <linux/fuse.h>
#endif

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))
#define __maybe_unused	__attribute__((unused))

/* Cache timeouts (seconds) for names and attributes. */
#define ENTRY_TIMEOUT	1
#define ATTR_TIMEOUT	1

/* A handler's "send nothing back" (FORGET, BATCH_FORGET, INTERRUPT). */
#define NO_REPLY	(-1000000)
/* A handler's "data to move with a fixed READ/WRITE" (zero-copy; in req.zc). */
#define ZC_PENDING	(-1000001)

static struct {
	const char *dev;
	const char *backing;
	const char *mnt;
	bool no_uring;
	bool debug;
	unsigned int queues;
	unsigned int depth;
	unsigned long crash_after;
	unsigned int delay_ms;
	unsigned int max_write;
	unsigned int max_read;
	unsigned int max_background;
	/* --bufring: FURING_URING_* flags of every queue; 0: basic mode */
	uint64_t ring_flags;
	unsigned int bufs;
	unsigned int buf_size;
	/* --zc-no-touch: zero-copied requests get no fixed READ/WRITE */
	bool zc_no_touch;
	/* --writeback-cache: FUSE_WRITEBACK_CACHE in the INIT reply */
	bool writeback_cache;
} opt = {
	.dev = "/dev/furing",
	.depth = 4,
	.max_write = 1 << 20,
	.max_background = 16,
};

static int dev_fd = -1;
/* Size of a ring entry's payload buffer: the largest request or reply. */
static size_t payload_size;
/* FUSE_OVER_IO_URING was negotiated. */
static bool use_uring;
/* Requests counted for --crash-after. */
static atomic_ulong nr_counted;
static atomic_ulong nr_classic;
/* Set when a thread fails in a way that should make the exit status 1. */
static atomic_int failed;

/* ------------------------------------------------------------------ */
/* Node table: one O_PATH fd per inode the kernel knows of. */

struct node {
	struct node *next;	/* hash chain */
	dev_t dev;
	ino_t ino;
	int fd;			/* O_PATH | O_NOFOLLOW */
	uint64_t nlookup;	/* lookups the kernel has not forgotten */
};

#define NODE_HASH_SIZE	4096
static struct node *node_hash[NODE_HASH_SIZE];
static pthread_mutex_t node_lock = PTHREAD_MUTEX_INITIALIZER;
static struct node root;
static unsigned long nr_nodes;

static unsigned int node_hashfn(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)dev;

	return (h >> 20) % NODE_HASH_SIZE;
}

/*
 * Node ids are the nodes' addresses (the root is FUSE_ROOT_ID). The kernel
 * only uses ids we gave it and not yet forgot, so they need no checking.
 */
static struct node *node_of(uint64_t nodeid)
{
	if (nodeid == FUSE_ROOT_ID)
		return &root;
	return (struct node *)(uintptr_t)nodeid;
}

static uint64_t node_id(const struct node *n)
{
	return n == &root ? FUSE_ROOT_ID : (uint64_t)(uintptr_t)n;
}

/*
 * Finds or adds the node of the inode that @fd (O_PATH, with stat @st) refers
 * to and takes one lookup reference. Consumes @fd.
 */
static struct node *node_get(int fd, const struct stat *st)
{
	unsigned int h = node_hashfn(st->st_dev, st->st_ino);
	struct node *n;

	pthread_mutex_lock(&node_lock);
	for (n = node_hash[h]; n; n = n->next)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n) {
		n->nlookup++;
		pthread_mutex_unlock(&node_lock);
		close(fd);
		return n;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&node_lock);
		close(fd);
		return NULL;
	}
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->fd = fd;
	n->nlookup = 1;
	n->next = node_hash[h];
	node_hash[h] = n;
	nr_nodes++;
	pthread_mutex_unlock(&node_lock);
	return n;
}

/* FORGET: drops @nlookup references; the node goes with the last one. */
static void node_forget(uint64_t nodeid, uint64_t nlookup)
{
	struct node *n = node_of(nodeid), **pp;

	if (n == &root)
		return;
	pthread_mutex_lock(&node_lock);
	if (nlookup > n->nlookup) {
		fprintf(stderr, "furing-server: FORGET of %" PRIu64 " > %" PRIu64 " lookups\n",
			nlookup, n->nlookup);
		nlookup = n->nlookup;
	}
	n->nlookup -= nlookup;
	if (!n->nlookup) {
		pp = &node_hash[node_hashfn(n->dev, n->ino)];
		while (*pp != n)
			pp = &(*pp)->next;
		*pp = n->next;
		nr_nodes--;
		close(n->fd);
		free(n);
	}
	pthread_mutex_unlock(&node_lock);
}

/* ------------------------------------------------------------------ */
/* Requests */

/*
 * Zero-copy: a READ or WRITE whose data pages the kernel registered with the
 * queue's io_uring, and what its reply needs once the fixed op is done.
 */
struct zc_io {
	/* filled by op_read() / op_write() */
	int fd;				/* backing file */
	bool write;
	uint64_t offset;		/* file offset */
	uint32_t size;			/* bytes of the pages: fuse_{read,write}_in.size */
	/* filled by ring_serve() */
	uint32_t done;			/* bytes moved so far */
	struct fuse_in_header in;
	uint64_t commit_id;
	uint32_t buf_id;
	char *buf;			/* payload buffer (WRITE's fuse_write_out) */
	size_t bufsize;
};

struct req {
	struct fuse_in_header in;	/* a copy: in ring mode the reply overwrites it */
	const void *arg;		/* the opcode's in-struct */
	const char *data;		/* what follows it: names, write data */
	size_t datalen;
	char *out;			/* reply payload */
	size_t outsize;
	struct zc_io *zc;		/* zero-copied READ / WRITE; else NULL */
};

/* "/proc/self/fd/N": reaches the inode behind an O_PATH fd for calls without *at(fd, ""). */
struct proc_path {
	char s[32];
};

static const char *proc_path(struct proc_path *p, int fd)
{
	snprintf(p->s, sizeof(p->s), "/proc/self/fd/%d", fd);
	return p->s;
}

/* Takes the next NUL-terminated string of the request's data; NULL if none. */
static const char *next_name(struct req *r)
{
	const char *s = r->data, *nul;

	if (!r->datalen)
		return NULL;
	nul = memchr(s, '\0', r->datalen);
	if (!nul)
		return NULL;
	r->datalen -= nul + 1 - s;
	r->data = nul + 1;
	return s;
}

static ssize_t reply_copy(struct req *r, const void *p, size_t len)
{
	if (len > r->outsize)
		return -EIO;
	memcpy(r->out, p, len);
	return len;
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = st->st_size;
	a->blocks = st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->mtime = st->st_mtim.tv_sec;
	a->ctime = st->st_ctim.tv_sec;
	a->atimensec = st->st_atim.tv_nsec;
	a->mtimensec = st->st_mtim.tv_nsec;
	a->ctimensec = st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	/* glibc's dev_t encoding is the kernel's new_encode_dev() for 32 bits */
	a->rdev = st->st_rdev;
	a->blksize = st->st_blksize;
}

static int stat_node(const struct node *n, struct stat *st)
{
	return fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) ? -errno : 0;
}

/* Looks up @name in @dir: fills @e and takes a lookup reference. */
static int do_entry(struct node *dir, const char *name, struct fuse_entry_out *e)
{
	struct stat st;
	struct node *n;
	int fd, err;

	fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	n = node_get(fd, &st);
	if (!n)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->nodeid = node_id(n);
	e->entry_valid = ENTRY_TIMEOUT;
	e->attr_valid = ATTR_TIMEOUT;
	fill_attr(&e->attr, &st);
	return 0;
}

/*
 * A new inode belongs to the caller, as on a local filesystem (the server
 * itself runs as root); on failure the new name is removed again.
 */
static int chown_new(const struct req *r, struct node *dir, const char *name, bool is_dir)
{
	int err;

	if (r->in.uid == geteuid() && r->in.gid == getegid())
		return 0;
	if (!fchownat(dir->fd, name, r->in.uid, r->in.gid, AT_SYMLINK_NOFOLLOW))
		return 0;
	err = -errno;
	unlinkat(dir->fd, name, is_dir ? AT_REMOVEDIR : 0);
	return err;
}

/* Replies with the entry of a name just created in @dir. */
static ssize_t reply_new_entry(struct req *r, struct node *dir, const char *name, bool is_dir)
{
	struct fuse_entry_out e;
	int err;

	err = chown_new(r, dir, name, is_dir);
	if (!err)
		err = do_entry(dir, name, &e);
	if (err)
		return err;
	return reply_copy(r, &e, sizeof(e));
}

static ssize_t reply_attr(struct req *r, const struct stat *st)
{
	struct fuse_attr_out o = { .attr_valid = ATTR_TIMEOUT };

	fill_attr(&o.attr, st);
	return reply_copy(r, &o, sizeof(o));
}

static ssize_t op_lookup(struct req *r)
{
	const char *name = next_name(r);
	struct fuse_entry_out e;
	int err;

	if (!name)
		return -EINVAL;
	err = do_entry(node_of(r->in.nodeid), name, &e);
	if (err)
		return err;
	return reply_copy(r, &e, sizeof(e));
}

static ssize_t op_forget(struct req *r)
{
	const struct fuse_forget_in *fi = r->arg;

	node_forget(r->in.nodeid, fi->nlookup);
	return NO_REPLY;
}

static ssize_t op_batch_forget(struct req *r)
{
	const struct fuse_batch_forget_in *bi = r->arg;
	const struct fuse_forget_one *one = (const void *)r->data;
	uint32_t i;

	if (bi->count > r->datalen / sizeof(*one)) {
		fprintf(stderr, "furing-server: BATCH_FORGET of %u entries in %zu bytes\n",
			bi->count, r->datalen);
		return NO_REPLY;
	}
	for (i = 0; i < bi->count; i++)
		node_forget(one[i].nodeid, one[i].nlookup);
	return NO_REPLY;
}

static ssize_t op_getattr(struct req *r)
{
	const struct fuse_getattr_in *gi = r->arg;
	struct stat st;
	int err;

	if (gi->getattr_flags & FUSE_GETATTR_FH)
		err = fstat((int)gi->fh, &st) ? -errno : 0;
	else
		err = stat_node(node_of(r->in.nodeid), &st);
	if (err)
		return err;
	return reply_attr(r, &st);
}

static ssize_t op_setattr(struct req *r)
{
	const struct fuse_setattr_in *si = r->arg;
	struct node *n = node_of(r->in.nodeid);
	struct proc_path pp;
	const char *path = proc_path(&pp, n->fd);
	uint32_t valid = si->valid;
	struct stat st;
	int err;

	if (valid & FATTR_MODE) {
		if (fchmodat(AT_FDCWD, path, si->mode, 0))
			return -errno;
	}
	if (valid & (FATTR_UID | FATTR_GID)) {
		uid_t uid = valid & FATTR_UID ? si->uid : (uid_t)-1;
		gid_t gid = valid & FATTR_GID ? si->gid : (gid_t)-1;

		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW))
			return -errno;
	}
	if (valid & FATTR_SIZE) {
		/* FATTR_FH: ftruncate() through the open file */
		if (valid & FATTR_FH)
			err = ftruncate((int)si->fh, si->size);
		else
			err = truncate(path, si->size);
		if (err)
			return -errno;
	}
	if (valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
		struct timespec ts[2] = {
			{ .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT },
		};

		if (valid & FATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (valid & FATTR_ATIME)
			ts[0] = (struct timespec){ si->atime, si->atimensec };
		if (valid & FATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (valid & FATTR_MTIME)
			ts[1] = (struct timespec){ si->mtime, si->mtimensec };
		if (utimensat(AT_FDCWD, path, ts, 0))
			return -errno;
	}
	err = stat_node(n, &st);
	if (err)
		return err;
	return reply_attr(r, &st);
}

static ssize_t op_readlink(struct req *r)
{
	ssize_t len;

	len = readlinkat(node_of(r->in.nodeid)->fd, "", r->out, MIN(r->outsize, PATH_MAX));
	return len < 0 ? -errno : len;
}

static ssize_t op_symlink(struct req *r)
{
	struct node *dir = node_of(r->in.nodeid);
	const char *name = next_name(r);
	const char *target = next_name(r);

	if (!name || !target)
		return -EINVAL;
	if (symlinkat(target, dir->fd, name))
		return -errno;
	return reply_new_entry(r, dir, name, false);
}

static ssize_t op_mknod(struct req *r)
{
	const struct fuse_mknod_in *mi = r->arg;
	struct node *dir = node_of(r->in.nodeid);
	const char *name = next_name(r);

	if (!name)
		return -EINVAL;
	/* the kernel applied the umask already (no FUSE_DONT_MASK) */
	if (mknodat(dir->fd, name, mi->mode, mi->rdev))
		return -errno;
	return reply_new_entry(r, dir, name, false);
}

static ssize_t op_mkdir(struct req *r)
{
	const struct fuse_mkdir_in *mi = r->arg;
	struct node *dir = node_of(r->in.nodeid);
	const char *name = next_name(r);

	if (!name)
		return -EINVAL;
	if (mkdirat(dir->fd, name, mi->mode))
		return -errno;
	return reply_new_entry(r, dir, name, true);
}

static ssize_t remove_name(struct req *r, int flags)
{
	const char *name = next_name(r);

	if (!name)
		return -EINVAL;
	return unlinkat(node_of(r->in.nodeid)->fd, name, flags) ? -errno : 0;
}

static ssize_t op_unlink(struct req *r)
{
	return remove_name(r, 0);
}

static ssize_t op_rmdir(struct req *r)
{
	return remove_name(r, AT_REMOVEDIR);
}

/* RENAME's fuse_rename_in is the start of RENAME2's fuse_rename2_in. */
static ssize_t do_rename(struct req *r, unsigned int flags)
{
	const struct fuse_rename_in *ri = r->arg;
	const char *from = next_name(r);
	const char *to = next_name(r);

	if (!from || !to)
		return -EINVAL;
	if (renameat2(node_of(r->in.nodeid)->fd, from, node_of(ri->newdir)->fd, to, flags))
		return -errno;
	return 0;
}

static ssize_t op_rename(struct req *r)
{
	return do_rename(r, 0);
}

static ssize_t op_rename2(struct req *r)
{
	const struct fuse_rename2_in *ri = r->arg;

	return do_rename(r, ri->flags);
}

static ssize_t op_link(struct req *r)
{
	const struct fuse_link_in *li = r->arg;
	struct node *dir = node_of(r->in.nodeid);
	const char *name = next_name(r);
	struct fuse_entry_out e;
	struct proc_path pp;
	int err;

	if (!name)
		return -EINVAL;
	/* linkat() of an O_PATH fd: through its /proc link, followed */
	if (linkat(AT_FDCWD, proc_path(&pp, node_of(li->oldnodeid)->fd), dir->fd, name,
		   AT_SYMLINK_FOLLOW))
		return -errno;
	err = do_entry(dir, name, &e);
	if (err)
		return err;
	return reply_copy(r, &e, sizeof(e));
}

/*
 * open(2) flags for the backing file. O_DIRECT and O_APPEND stay with the
 * client: the kernel turns them into READ/WRITE at explicit offsets, which
 * the backing fd must follow as they are (an O_APPEND fd ignores pwrite()'s
 * offset, and O_DIRECT would impose the backing fs's alignment).
 */
static int backing_flags(uint32_t flags)
{
	flags &= ~(O_NOCTTY | O_NOFOLLOW | O_DIRECT | O_APPEND);
	/* The writeback cache reads a write-only file to fill a partial page. */
	if (opt.writeback_cache && (flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags | O_CLOEXEC;
}

static ssize_t op_open(struct req *r)
{
	const struct fuse_open_in *oi = r->arg;
	struct fuse_open_out oo = { 0 };
	struct proc_path pp;
	int fd;

	fd = open(proc_path(&pp, node_of(r->in.nodeid)->fd),
		  backing_flags(oi->flags) & ~(O_CREAT | O_EXCL));
	if (fd < 0)
		return -errno;
	oo.fh = fd;
	return reply_copy(r, &oo, sizeof(oo));
}

static ssize_t op_create(struct req *r)
{
	const struct fuse_create_in *ci = r->arg;
	struct node *dir = node_of(r->in.nodeid);
	const char *name = next_name(r);
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out;
	int fd, err;

	if (!name)
		return -EINVAL;
	fd = openat(dir->fd, name, backing_flags(ci->flags) | O_CREAT, ci->mode & 07777);
	if (fd < 0)
		return -errno;
	err = chown_new(r, dir, name, false);
	if (!err)
		err = do_entry(dir, name, &out.e);
	if (err) {
		close(fd);
		return err;
	}
	memset(&out.o, 0, sizeof(out.o));
	out.o.fh = fd;
	return reply_copy(r, &out, sizeof(out));
}

/* Zero-copy: notes what the fixed READ/WRITE of @r must move. */
static ssize_t zc_prepare(struct req *r, uint64_t fh, uint64_t offset, uint32_t size, bool write)
{
	r->zc->fd = (int)fh;
	r->zc->write = write;
	r->zc->offset = offset;
	r->zc->size = size;
	return ZC_PENDING;
}

static ssize_t op_read(struct req *r)
{
	const struct fuse_read_in *ri = r->arg;
	size_t size = MIN(ri->size, r->outsize), done = 0;
	ssize_t n;

	/* the data goes straight into the client's pages */
	if (r->zc)
		return zc_prepare(r, ri->fh, ri->offset, ri->size, false);
	while (done < size) {
		n = pread((int)ri->fh, r->out + done, size - done, ri->offset + done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return done ? (ssize_t)done : -errno;
		}
		if (!n)
			break;
		done += n;
	}
	return done;
}

static ssize_t op_write(struct req *r)
{
	const struct fuse_write_in *wi = r->arg;
	struct fuse_write_out wo = { 0 };
	size_t done = 0;
	ssize_t n;

	/* the data comes straight from the client's pages */
	if (r->zc)
		return zc_prepare(r, wi->fh, wi->offset, wi->size, true);
	if (wi->size > r->datalen)
		return -EINVAL;
	while (done < wi->size) {
		n = pwrite((int)wi->fh, r->data + done, wi->size - done, wi->offset + done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (!done)
				return -errno;
			break;
		}
		done += n;
	}
	wo.size = done;
	return reply_copy(r, &wo, sizeof(wo));
}

static ssize_t op_statfs(struct req *r)
{
	struct fuse_statfs_out so = { 0 };
	struct statfs sf;

	if (fstatfs(node_of(r->in.nodeid)->fd, &sf))
		return -errno;
	so.st.blocks = sf.f_blocks;
	so.st.bfree = sf.f_bfree;
	so.st.bavail = sf.f_bavail;
	so.st.files = sf.f_files;
	so.st.ffree = sf.f_ffree;
	so.st.bsize = sf.f_bsize;
	so.st.namelen = sf.f_namelen;
	so.st.frsize = sf.f_frsize;
	return reply_copy(r, &so, sizeof(so));
}

static ssize_t op_release(struct req *r)
{
	const struct fuse_release_in *ri = r->arg;

	return close((int)ri->fh) ? -errno : 0;
}

static ssize_t op_fsync(struct req *r)
{
	const struct fuse_fsync_in *fi = r->arg;
	int err;

	if (fi->fsync_flags & FUSE_FSYNC_FDATASYNC)
		err = fdatasync((int)fi->fh);
	else
		err = fsync((int)fi->fh);
	return err ? -errno : 0;
}

/* FLUSH (close() of a descriptor of the open file): like close() of a dup. */
static ssize_t op_flush(struct req *r)
{
	const struct fuse_flush_in *fi = r->arg;
	int fd = dup((int)fi->fh);

	if (fd < 0)
		return -errno;
	return close(fd) ? -errno : 0;
}

static ssize_t op_access(struct req *r)
{
	const struct fuse_access_in *ai = r->arg;
	struct proc_path pp;

	if (faccessat(AT_FDCWD, proc_path(&pp, node_of(r->in.nodeid)->fd), ai->mask, 0))
		return -errno;
	return 0;
}

/* An open directory: READDIR seeks to the kernel's offset and reads on. */
struct dir_handle {
	pthread_mutex_t lock;
	int fd;
};

static ssize_t op_opendir(struct req *r)
{
	struct fuse_open_out oo = { 0 };
	struct dir_handle *dh;
	int fd, err;

	fd = openat(node_of(r->in.nodeid)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	dh = malloc(sizeof(*dh));
	if (!dh) {
		close(fd);
		return -ENOMEM;
	}
	err = pthread_mutex_init(&dh->lock, NULL);
	if (err) {
		free(dh);
		close(fd);
		return -err;
	}
	dh->fd = fd;
	oo.fh = (uintptr_t)dh;
	return reply_copy(r, &oo, sizeof(oo));
}

static ssize_t op_releasedir(struct req *r)
{
	const struct fuse_release_in *ri = r->arg;
	struct dir_handle *dh = (void *)(uintptr_t)ri->fh;

	close(dh->fd);
	pthread_mutex_destroy(&dh->lock);
	free(dh);
	return 0;
}

static ssize_t op_fsyncdir(struct req *r)
{
	const struct fuse_fsync_in *fi = r->arg;
	struct dir_handle *dh = (void *)(uintptr_t)fi->fh;

	return fsync(dh->fd) ? -errno : 0;
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/*
 * READDIR / READDIRPLUS: entries from the kernel's offset on (the offset of
 * an entry is the d_off of the one before it), as many as fit. READDIRPLUS
 * looks every entry up (but "." and "..", which go without an entry: nodeid
 * 0) and so takes a lookup reference the kernel later forgets.
 */
static ssize_t do_readdir(struct req *r, bool plus)
{
	const struct fuse_read_in *ri = r->arg;
	struct dir_handle *dh = (void *)(uintptr_t)ri->fh;
	struct node *dir = node_of(r->in.nodeid);
	size_t size = MIN(ri->size, r->outsize), used = 0;
	size_t nameoff = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	char buf[16384] __attribute__((aligned(8)));
	bool full = false;
	ssize_t n, pos, ret = 0;

	pthread_mutex_lock(&dh->lock);
	if (lseek(dh->fd, ri->offset, SEEK_SET) < 0) {
		ret = -errno;
		goto out;
	}
	while (!full) {
		n = getdents64(dh->fd, buf, sizeof(buf));
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (!n)
			break;
		for (pos = 0; pos < n; ) {
			struct dirent64 *d = (void *)(buf + pos);
			size_t namelen = strlen(d->d_name);
			size_t reclen = FUSE_DIRENT_ALIGN(nameoff + namelen);
			struct fuse_dirent *fde;

			if (used + reclen > size) {
				full = true;
				break;
			}
			memset(r->out + used, 0, reclen);
			if (plus) {
				struct fuse_direntplus *dp = (void *)(r->out + used);

				/* an entry that vanished meanwhile goes without attributes */
				if (!is_dot_or_dotdot(d->d_name) &&
				    do_entry(dir, d->d_name, &dp->entry_out))
					memset(&dp->entry_out, 0, sizeof(dp->entry_out));
				fde = &dp->dirent;
			} else {
				fde = (void *)(r->out + used);
			}
			fde->ino = d->d_ino;
			fde->off = d->d_off;
			fde->namelen = namelen;
			fde->type = d->d_type;
			memcpy(fde->name, d->d_name, namelen);
			used += reclen;
			pos += d->d_reclen;
		}
	}
out:
	pthread_mutex_unlock(&dh->lock);
	if (ret && !used)
		return ret;
	return used;
}

static ssize_t op_readdir(struct req *r)
{
	return do_readdir(r, false);
}

static ssize_t op_readdirplus(struct req *r)
{
	return do_readdir(r, true);
}

/*
 * FUSE_INTERRUPT: remembers which request the kernel wants interrupted. Only a
 * request still waiting out --delay-ms acts on it (and answers EINTR); the
 * others finish quickly anyway. Uniques are never reused, so a late interrupt
 * for a finished request just stays in the table until overwritten.
 */
#define NR_INTR		64
static pthread_mutex_t intr_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t intr_unique[NR_INTR];
static unsigned int intr_next;
static atomic_ulong nr_interrupts;

static ssize_t op_interrupt(struct req *r)
{
	const struct fuse_interrupt_in *ii = r->arg;

	pthread_mutex_lock(&intr_lock);
	intr_unique[intr_next++ % NR_INTR] = ii->unique;
	pthread_mutex_unlock(&intr_lock);
	atomic_fetch_add(&nr_interrupts, 1);
	return NO_REPLY;
}

/* Whether the kernel asked to interrupt @unique; forgets the request. */
static bool take_interrupt(uint64_t unique)
{
	bool found = false;
	unsigned int i;

	pthread_mutex_lock(&intr_lock);
	for (i = 0; i < NR_INTR; i++) {
		if (intr_unique[i] == unique) {
			intr_unique[i] = 0;
			found = true;
		}
	}
	pthread_mutex_unlock(&intr_lock);
	return found;
}

/*
 * --delay-ms: waits before running a request that expects a reply, in 10 ms
 * steps; false when the request was interrupted meanwhile (it is then not run).
 */
static bool delay_request(uint64_t unique)
{
	unsigned int left = opt.delay_ms;

	while (left) {
		unsigned int ms = left < 10 ? left : 10;
		struct timespec ts = { .tv_nsec = ms * 1000000L };

		if (take_interrupt(unique))
			return false;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		left -= ms;
	}
	return !take_interrupt(unique);
}

static ssize_t op_destroy(struct req *r __maybe_unused)
{
	return 0;
}

struct op {
	const char *name;
	/* size of the in-struct (the first argument); 0: none */
	size_t argsize;
	ssize_t (*fn)(struct req *r);
};

#define OP(code, arg, fn) [FUSE_##code] = { #code, arg, fn }
static const struct op ops[] = {
	OP(LOOKUP, 0, op_lookup),
	OP(FORGET, sizeof(struct fuse_forget_in), op_forget),
	OP(GETATTR, sizeof(struct fuse_getattr_in), op_getattr),
	OP(SETATTR, sizeof(struct fuse_setattr_in), op_setattr),
	OP(READLINK, 0, op_readlink),
	OP(SYMLINK, 0, op_symlink),
	OP(MKNOD, sizeof(struct fuse_mknod_in), op_mknod),
	OP(MKDIR, sizeof(struct fuse_mkdir_in), op_mkdir),
	OP(UNLINK, 0, op_unlink),
	OP(RMDIR, 0, op_rmdir),
	OP(RENAME, sizeof(struct fuse_rename_in), op_rename),
	OP(LINK, sizeof(struct fuse_link_in), op_link),
	OP(OPEN, sizeof(struct fuse_open_in), op_open),
	OP(READ, sizeof(struct fuse_read_in), op_read),
	OP(WRITE, sizeof(struct fuse_write_in), op_write),
	OP(STATFS, 0, op_statfs),
	OP(RELEASE, sizeof(struct fuse_release_in), op_release),
	OP(FSYNC, sizeof(struct fuse_fsync_in), op_fsync),
	OP(FLUSH, sizeof(struct fuse_flush_in), op_flush),
	OP(OPENDIR, sizeof(struct fuse_open_in), op_opendir),
	OP(READDIR, sizeof(struct fuse_read_in), op_readdir),
	OP(RELEASEDIR, sizeof(struct fuse_release_in), op_releasedir),
	OP(FSYNCDIR, sizeof(struct fuse_fsync_in), op_fsyncdir),
	OP(ACCESS, sizeof(struct fuse_access_in), op_access),
	OP(CREATE, sizeof(struct fuse_create_in), op_create),
	OP(INTERRUPT, sizeof(struct fuse_interrupt_in), op_interrupt),
	OP(DESTROY, 0, op_destroy),
	OP(BATCH_FORGET, sizeof(struct fuse_batch_forget_in), op_batch_forget),
	OP(READDIRPLUS, sizeof(struct fuse_read_in), op_readdirplus),
	OP(RENAME2, sizeof(struct fuse_rename2_in), op_rename2),
};
#undef OP

/* Every in-struct fits the ring header's op_in area. */
_Static_assert(sizeof(struct fuse_setattr_in) <= FURING_URING_OP_IN_OUT_SZ, "op_in");
_Static_assert(sizeof(struct furing_uring_req_header) == 288, "req header");
_Static_assert(sizeof(struct furing_uring_cmd_req) == 40, "cmd req");

static const struct op *op_of(uint32_t opcode)
{
	if (opcode < ARRAY_SIZE(ops) && ops[opcode].fn)
		return &ops[opcode];
	return NULL;
}

static bool expects_reply(uint32_t opcode)
{
	return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET &&
	       opcode != FUSE_INTERRUPT;
}

/*
 * Runs one request; returns the reply: payload bytes, -errno, or NO_REPLY.
 * @via: "classic" or "qN", for --debug.
 */
static ssize_t handle(struct req *r, const char *via)
{
	const struct op *op = op_of(r->in.opcode);
	size_t datalen = r->datalen;
	ssize_t ret;

	if (opt.crash_after && expects_reply(r->in.opcode) &&
	    atomic_fetch_add(&nr_counted, 1) >= opt.crash_after) {
		fprintf(stderr, "furing-server: --crash-after %lu: SIGKILL at %s (unique %" PRIu64 ")\n",
			opt.crash_after, op ? op->name : "?", (uint64_t)r->in.unique);
		kill(getpid(), SIGKILL);
	}
	if (opt.delay_ms && expects_reply(r->in.opcode) && !delay_request(r->in.unique))
		ret = -EINTR;
	else
		ret = op ? op->fn(r) : -ENOSYS;
	if (opt.debug) {
		char res[32];

		if (ret == NO_REPLY)
			snprintf(res, sizeof(res), "no reply");
		else if (ret == ZC_PENDING)
			snprintf(res, sizeof(res), "zero-copy %u bytes", r->zc->size);
		else if (ret < 0)
			snprintf(res, sizeof(res), "%s", strerrorname_np(-ret) ?: "?");
		else
			snprintf(res, sizeof(res), "%zd bytes", ret);
		fprintf(stderr, "furing-server: %-7s %s(%u) unique %" PRIu64 " node %" PRIu64
			" data %zu -> %s\n", via, op ? op->name : "?", r->in.opcode,
			(uint64_t)r->in.unique, (uint64_t)r->in.nodeid, datalen, res);
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* Classic transport: read() a request, write() its reply. */

static size_t classic_bufsize(void)
{
	/* room for fuse_in_header + fuse_write_in + max_write, and two names */
	return payload_size + 8192;
}

/* 0, or -errno of a write() that means the connection is gone. */
static int classic_reply(uint64_t unique, ssize_t ret, const void *out)
{
	struct fuse_out_header oh = { .unique = unique };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { (void *)out, 0 } };

	if (ret < 0)
		oh.error = ret;
	else
		iov[1].iov_len = ret;
	oh.len = sizeof(oh) + iov[1].iov_len;
	if (writev(dev_fd, iov, iov[1].iov_len ? 2 : 1) >= 0)
		return 0;
	/* ENOENT: the request was interrupted or aborted meanwhile */
	if (errno == ENOENT)
		return 0;
	return -errno;
}

static void *classic_thread(void *arg __maybe_unused)
{
	size_t bufsize = classic_bufsize();
	char *in = aligned_alloc(4096, bufsize);
	char *out = aligned_alloc(4096, payload_size);
	struct req r;
	ssize_t n, ret;
	int err;

	if (!in || !out) {
		fprintf(stderr, "furing-server: out of memory\n");
		atomic_store(&failed, 1);
		goto out;
	}
	for (;;) {
		const struct op *op;
		size_t argsize;

		n = read(dev_fd, in, bufsize);
		if (n < 0) {
			/* ENOENT: a request interrupted before it was read */
			if (errno == EINTR || errno == EAGAIN || errno == ENOENT)
				continue;
			/*
			 * ENODEV: unmounted, or the connection was aborted;
			 * ECONNABORTED: aborted through fusectl with abort_err
			 */
			if (errno != ENODEV && errno != ECONNABORTED) {
				perror("furing-server: read");
				atomic_store(&failed, 1);
			}
			break;
		}
		if ((size_t)n < sizeof(struct fuse_in_header)) {
			fprintf(stderr, "furing-server: short read of %zd bytes\n", n);
			continue;
		}
		atomic_fetch_add(&nr_classic, 1);
		memcpy(&r.in, in, sizeof(r.in));
		op = op_of(r.in.opcode);
		argsize = op ? op->argsize : 0;
		if ((size_t)n < sizeof(r.in) + argsize) {
			ret = -EINVAL;
		} else {
			r.arg = in + sizeof(r.in);
			r.data = in + sizeof(r.in) + argsize;
			r.datalen = n - sizeof(r.in) - argsize;
			r.out = out;
			r.outsize = payload_size;
			r.zc = NULL;
			ret = handle(&r, "classic");
		}
		if (ret == NO_REPLY)
			continue;
		err = classic_reply(r.in.unique, ret, out);
		if (err == -ENODEV || err == -ECONNABORTED)
			break;
		if (err) {
			fprintf(stderr, "furing-server: write: %s\n", strerror(-err));
			atomic_store(&failed, 1);
		}
	}
out:
	free(in);
	free(out);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* io-uring transport: one thread, ring and set of entries per queue. */

struct ring_ent {
	/* basic mode: allocated per entry; bufring: slot i of the queue's headers */
	struct furing_uring_req_header *hdr;
	char *payload;		/* basic mode only */
	struct iovec iov[2];	/* basic mode: what REGISTER hands the kernel */
	uint32_t cmd_op;	/* the command in flight, for error messages */
	struct zc_io zc;	/* zero-copy: the request waiting for its fixed op */
};

/*
 * user_data of an entry's fixed READ/WRITE (zero-copy): the entry's address
 * with this bit set; its commands carry the bare address.
 */
#define ZC_TAG		((uintptr_t)1)
_Static_assert(_Alignof(struct ring_ent) > ZC_TAG, "ZC_TAG");

struct queue {
	unsigned int qid;
	pthread_t thread;
	bool started;
	struct io_uring ring;
	struct ring_ent *ents;
	/* bufring: the two regions (mmap()ed) and what REGISTER says of them */
	struct furing_uring_req_header *hdrs;
	size_t hdrs_len;
	char *bufs;
	size_t bufs_len;
	struct iovec iov[2];
	unsigned int nr_bufs;	/* buffers the kernel carves: iov[1].iov_len / buf_size */
	char *nobuf;		/* handlers' output for requests without a buffer */
	unsigned int live;	/* entries the kernel has not ended */
	atomic_ulong served;
	atomic_ulong zero_copied;	/* requests with FURING_URING_ENT_ZERO_COPY */
	/* how the entries ended: CQE results at teardown */
	unsigned int nr_enotconn, nr_econnaborted, nr_ecanceled, nr_other;
	int last_other;
	/* bufring: requests failed with EIO for a bad buf_id / payload_sz */
	unsigned int nr_bad;
};

static struct queue *queues;
/* a queue could not set its ring up for zero-copy: unmount and exit 1 */
static atomic_int zc_setup_failed;
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
 * Queues a ring command for @ent. liburing 2.3 has no helper for it: the
 * 40-byte furing_uring_cmd_req lives in the command area of the 128-byte
 * SQE; sqe->addr points to two iovecs: basic mode the entry's (header,
 * payload), bufring the queue's (headers region, payload region), with the
 * entry's index in sqe->buf_index. A bufring REGISTER also carries the
 * queue's flags and geometry; COMMIT_AND_FETCH has flags 0 in both modes.
 */
static void prep_cmd(struct queue *q, struct ring_ent *ent, uint32_t cmd_op, uint64_t commit_id)
{
	struct furing_uring_cmd_req req = { .commit_id = commit_id, .qid = q->qid };
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	char *slot = (char *)sqe;

	/* the ring has room for every entry's command */
	if (!sqe)
		abort();
	/* an SQE128 spans two struct io_uring_sqe slots */
	memset(slot, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = dev_fd;
	sqe->cmd_op = cmd_op;
	if (opt.ring_flags) {
		sqe->addr = (uintptr_t)q->iov;
		sqe->len = ARRAY_SIZE(q->iov);
		sqe->buf_index = ent - q->ents;
		if (cmd_op == FURING_URING_CMD_REGISTER) {
			req.flags = opt.ring_flags;
			req.init.queue_depth = opt.depth;
			req.init.buf_size = opt.buf_size;
		}
	} else {
		sqe->addr = (uintptr_t)ent->iov;
		sqe->len = ARRAY_SIZE(ent->iov);
	}
	sqe->user_data = (uintptr_t)ent;
	memcpy(slot + offsetof(struct io_uring_sqe, cmd), &req, sizeof(req));
	ent->cmd_op = cmd_op;
}

/* Logs a bufring request that fails with EIO for a bug; exit status 1. */
static void ring_bad(struct queue *q, struct ring_ent *ent, const struct fuse_in_header *in,
		     const char *via, const char *what)
{
	const struct furing_uring_ent_in_out *eio = &ent->hdr->ring_ent_in_out;
	const struct op *op = op_of(in->opcode);

	fprintf(stderr, "furing-server: %s: entry %td: %s(%u) unique %" PRIu64 ": %s "
		"(buf_id %#x payload_sz %u; %u buffers of %u bytes): EIO\n", via,
		ent - q->ents, op ? op->name : "?", in->opcode, (uint64_t)in->unique,
		what, eio->buf_id, eio->payload_sz, q->nr_bufs, opt.buf_size);
	q->nr_bad++;
	atomic_store(&failed, 1);
}

/*
 * Commits the reply of the request in @ent (@in, @commit_id, @buf_id): @ret
 * payload bytes, -errno or NO_REPLY. Zero-copy: the first @zc_bytes of a
 * positive @ret are in the client's pages, not in a payload buffer.
 */
static void ring_commit(struct queue *q, struct ring_ent *ent, const struct fuse_in_header *in,
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
static void ring_zc_reply(struct queue *q, struct ring_ent *ent, ssize_t res, const char *via)
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
		const struct op *op = op_of(zc->in.opcode);

		fprintf(stderr, "furing-server: %-7s %s(%u) unique %" PRIu64 " zero-copy%s: %s %u"
			" of %u bytes at %" PRIu64 " -> %s\n", via, op ? op->name : "?",
			zc->in.opcode, (uint64_t)zc->in.unique, opt.zc_no_touch ? " no-touch" : "",
			zc->write ? "wrote" : "read", zc->done, zc->size, zc->offset,
			res < 0 ? strerrorname_np(-res) ?: "?" : "ok");
	}
	ring_commit(q, ent, &zc->in, zc->commit_id, zc->buf_id, ret, zc_bytes, via);
}

/* Zero-copy: moves the rest of @ent's data, or commits once there is none. */
static void ring_zc_next(struct queue *q, struct ring_ent *ent, const char *via)
{
	struct zc_io *zc = &ent->zc;

	if (opt.zc_no_touch)
		zc->done = zc->size;
	if (zc->done >= zc->size)
		ring_zc_reply(q, ent, zc->done, via);
	else
		prep_zc(q, ent);
}

/*
 * Zero-copy: the CQE of @ent's fixed READ/WRITE (@res: bytes or -errno). A
 * short result goes on from where it stopped, as op_read()'s and op_write()'s
 * loops do, until EOF (0), an error or the whole size.
 */
static void ring_zc_complete(struct queue *q, struct ring_ent *ent, int res, const char *via)
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
		ring_zc_reply(q, ent, zc->done ? (ssize_t)zc->done : res, via);
		return;
	}
	zc->done += MIN((uint32_t)res, zc->size - zc->done);
	if (res > 0 && zc->done < zc->size)
		prep_zc(q, ent);
	else
		ring_zc_reply(q, ent, zc->done, via);
}

/*
 * A CQE with result 0: @ent holds a request. Serve it and commit the reply;
 * a zero-copied READ/WRITE commits once its fixed op is done.
 */
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
	r.zc = NULL;
	atomic_fetch_add(&q->served, 1);
	if (zc) {
		atomic_fetch_add(&q->zero_copied, 1);
		if (!(opt.ring_flags & FURING_URING_ZERO_COPY) ||
		    (r.in.opcode != FUSE_READ && r.in.opcode != FUSE_WRITE)) {
			ring_bad(q, ent, &r.in, via, "zero-copy flag on this opcode or queue");
			ret = -EIO;
			goto reply;
		}
		/* a WRITE's data counts in payload_sz but stays in the client's pages */
		if (r.in.opcode == FUSE_WRITE) {
			const struct fuse_write_in *wi = (const void *)hdr->op_in;

			if (wi->size > datalen) {
				ring_bad(q, ent, &r.in, via, "payload_sz below the write size");
				ret = -EIO;
				goto reply;
			}
			datalen -= wi->size;
		}
	}
	if (!opt.ring_flags) {
		datalen = MIN(datalen, payload_size);
	} else {
		bufsize = opt.buf_size;
		if (buf_id == FURING_URING_NO_BUF) {
			/* a handler's payload lands here, to be refused below */
			buf = q->nobuf;
			if (datalen) {
				ring_bad(q, ent, &r.in, via, "payload without a buffer");
				ret = -EIO;
				goto reply;
			}
		} else if (buf_id >= q->nr_bufs) {
			ring_bad(q, ent, &r.in, via, "buf_id out of range");
			ret = -EIO;
			goto reply;
		} else {
			buf = q->bufs + (size_t)buf_id * opt.buf_size;
			if (datalen > bufsize) {
				ring_bad(q, ent, &r.in, via, "payload_sz above buf_size");
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
	r.arg = hdr->op_in;
	r.data = buf;
	r.datalen = datalen;
	r.out = buf;
	r.outsize = bufsize;
	if (zc) {
		ent->zc = (struct zc_io){
			.in = r.in, .commit_id = commit_id, .buf_id = buf_id,
			.buf = buf, .bufsize = bufsize,
		};
		r.zc = &ent->zc;
	}
	ret = handle(&r, via);
	if (ret == ZC_PENDING) {
		/* the commit follows the fixed op's CQE (or at once with --zc-no-touch) */
		ring_zc_next(q, ent, via);
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
		free(q->ents[i].payload);
	}
	free(q->ents);
	q->ents = NULL;
	if (q->hdrs)
		munmap(q->hdrs, q->hdrs_len);
	if (q->bufs)
		munmap(q->bufs, q->bufs_len);
	q->hdrs = NULL;
	q->bufs = NULL;
	free(q->nobuf);
	q->nobuf = NULL;
}

/* Anonymous memory in whole pages, page aligned; NULL on failure. */
static void *map_region(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/*
 * Bufring: maps the headers and payload regions and points entry i at
 * header slot i. A pinned region's iovec spans its whole pages.
 */
static int queue_alloc_bufring(struct queue *q)
{
	size_t page = sysconf(_SC_PAGESIZE);
	size_t hdrs_sz = (size_t)opt.depth * sizeof(struct furing_uring_req_header);
	size_t bufs_sz = (size_t)opt.bufs * opt.buf_size;
	unsigned int i;
	int err;

	q->ents = calloc(opt.depth, sizeof(*q->ents));
	if (!q->ents)
		return -ENOMEM;
	q->hdrs_len = (hdrs_sz + page - 1) / page * page;
	q->bufs_len = (bufs_sz + page - 1) / page * page;
	q->hdrs = map_region(q->hdrs_len);
	if (!q->hdrs)
		goto fail;
	q->bufs = map_region(q->bufs_len);
	if (!q->bufs)
		goto fail;
	q->nobuf = malloc(opt.buf_size);
	if (!q->nobuf)
		goto fail;
	if (opt.ring_flags & FURING_URING_PINNED_HEADERS)
		hdrs_sz = q->hdrs_len;
	if (opt.ring_flags & FURING_URING_PINNED_BUFFERS)
		bufs_sz = q->bufs_len;
	q->iov[0] = (struct iovec){ q->hdrs, hdrs_sz };
	q->iov[1] = (struct iovec){ q->bufs, bufs_sz };
	q->nr_bufs = bufs_sz / opt.buf_size;
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
		ent->payload = aligned_alloc(4096, pl_size);
		if (!ent->hdr || !ent->payload) {
			queue_free(q);
			return -ENOMEM;
		}
		memset(ent->hdr, 0, hdr_size);
		ent->iov[0] = (struct iovec){ ent->hdr, sizeof(*ent->hdr) };
		ent->iov[1] = (struct iovec){ ent->payload, payload_size };
	}
	return 0;
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
	/* zero-copy: the kernel registers entry i's pages at buffer index i */
	if (opt.ring_flags & FURING_URING_ZERO_COPY) {
		ret = io_uring_register_buffers_sparse(&q->ring, opt.depth);
		if (ret < 0) {
			fprintf(stderr, "furing-server: %s: io_uring_register_buffers_sparse(%u): "
				"%s (%s)\n", via, opt.depth, strerrorname_np(-ret) ?: "?",
				strerror(-ret));
			atomic_store(&zc_setup_failed, 1);
			atomic_store(&failed, 1);
			io_uring_queue_exit(&q->ring);
			queue_free(q);
			queue_registered();
			return NULL;
		}
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
				ring_zc_complete(q, ent, res, via);
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

/* ------------------------------------------------------------------ */
/* Setup */

/* Number of CPUs in a cpulist ("0-3,5"); 0 when unreadable. */
static unsigned int cpulist_count(const char *path)
{
	char buf[4096], *p, *end;
	unsigned int count = 0;
	unsigned long a, b;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	for (p = buf; *p && *p != '\n'; p = end) {
		a = strtoul(p, &end, 10);
		if (end == p)
			return 0;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtoul(p, &end, 10);
			if (end == p || b < a)
				return 0;
		}
		count += b - a + 1;
		if (*end == ',')
			end++;
	}
	return count;
}

/* Reads FUSE_INIT and answers it. 0 or -errno. */
static int do_init(void)
{
	size_t bufsize = classic_bufsize();
	char *buf = malloc(bufsize);
	struct fuse_in_header *ih = (void *)buf;
	struct fuse_init_in *ii = (void *)(ih + 1);
	struct fuse_init_out io = { 0 };
	uint64_t offered, want, flags;
	size_t outsize;
	ssize_t n;
	int err;

	if (!buf)
		return -ENOMEM;
	do {
		n = read(dev_fd, buf, bufsize);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		err = -errno;
		goto out;
	}
	err = -EPROTO;
	if ((size_t)n < sizeof(*ih) + 8 || ih->opcode != FUSE_INIT) {
		fprintf(stderr, "furing-server: expected FUSE_INIT, got opcode %u\n",
			(size_t)n >= sizeof(*ih) ? ih->opcode : 0);
		goto out;
	}
	if (ii->major != FUSE_KERNEL_VERSION) {
		fprintf(stderr, "furing-server: kernel speaks FUSE %u.%u\n", ii->major, ii->minor);
		classic_reply(ih->unique, -EPROTO, NULL);
		goto out;
	}
	offered = ii->flags;
	if ((size_t)n >= sizeof(*ih) + sizeof(*ii) && (offered & FUSE_INIT_EXT))
		offered |= (uint64_t)ii->flags2 << 32;
	/*
	 * No FUSE_PASSTHROUGH, no FUSE_HAS_IO_URING_BUFPOOL, and the writeback
	 * cache only when asked: every byte goes through the transport under
	 * test.
	 */
	want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_MAX_PAGES |
	       FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS |
	       FUSE_ASYNC_DIO | FUSE_INIT_EXT;
	if (!opt.no_uring)
		want |= FUSE_OVER_IO_URING;
	if (opt.writeback_cache)
		want |= FUSE_WRITEBACK_CACHE;
	flags = want & offered;
	use_uring = flags & FUSE_OVER_IO_URING;

	io.major = FUSE_KERNEL_VERSION;
	io.minor = MIN(ii->minor, FUSE_KERNEL_MINOR_VERSION);
	io.max_readahead = ii->max_readahead;
	io.flags = flags;
	io.flags2 = flags >> 32;
	io.max_background = opt.max_background;
	io.congestion_threshold = opt.max_background * 3 / 4 ?: 1;
	io.max_write = opt.max_write;
	io.time_gran = 1;
	io.max_pages = MIN((opt.max_write + 4095) / 4096, 65535U);
	if (io.minor < 5)
		outsize = FUSE_COMPAT_INIT_OUT_SIZE;
	else if (io.minor < 23)
		outsize = FUSE_COMPAT_22_INIT_OUT_SIZE;
	else
		outsize = sizeof(io);
	if (opt.debug)
		fprintf(stderr, "furing-server: INIT: kernel %u.%u flags %#" PRIx64
			", reply 7.%u flags %#" PRIx64 " max_write %u max_pages %u\n",
			ii->major, ii->minor, offered, io.minor, flags, io.max_write,
			io.max_pages);
	err = classic_reply(ih->unique, outsize, &io);
	if (err)
		fprintf(stderr, "furing-server: INIT reply: %s\n", strerror(-err));
out:
	free(buf);
	return err;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: furing-server [options] <backing-dir> <mnt>\n"
"\n"
"Mounts a FUSE filesystem at <mnt> that passes everything through to\n"
"<backing-dir>, serves it until it is unmounted, then exits 0.\n"
"\n"
"  --dev PATH          FUSE device: /dev/furing (default; fstype \"furing\") or\n"
"                      /dev/fuse (fstype \"fuse\")\n"
"  --no-uring          do not ask for FUSE_OVER_IO_URING: read()/write() only\n"
"  --queues N          io-uring queues, one thread each, queue i pinned to CPU i\n"
"                      (default: the number of possible CPUs; the kernel waits\n"
"                      for a queue on every possible CPU before using the ring)\n"
"  --depth N           ring entries per queue (default 4)\n"
"  --bufring           buffer-ring queues (FURING_URING_BUFRING; /dev/furing):\n"
"                      one headers region and one payload region per queue,\n"
"                      a payload buffer picked per request\n"
"  --pin-headers       the kernel pins the headers region\n"
"                      (FURING_URING_PINNED_HEADERS; needs --bufring)\n"
"  --pin-buffers       the kernel pins the payload region\n"
"                      (FURING_URING_PINNED_BUFFERS; needs --bufring)\n"
"  --bufs N            payload buffers per queue (needs --bufring; default:\n"
"                      --depth)\n"
"  --buf-size BYTES    size of a payload buffer (needs --bufring; default: the\n"
"                      largest request, max(max_write, 8192) rounded up to 4096)\n"
"  --zero-copy         zero-copy queues (FURING_URING_ZERO_COPY; implies --bufring\n"
"                      --pin-headers --pin-buffers; needs CAP_SYS_ADMIN): the\n"
"                      data pages of READ and WRITE are registered with the\n"
"                      queue's io_uring and moved with READ_FIXED / WRITE_FIXED;\n"
"                      --buf-size may then be below max_write\n"
"  --zc-no-touch       with --zero-copy: no READ_FIXED / WRITE_FIXED; a zero-\n"
"                      copied READ answers the requested size (data unspecified),\n"
"                      a WRITE the requested size as written\n"
"  --writeback-cache   FUSE_WRITEBACK_CACHE: the kernel caches writes and reads a\n"
"                      page before a partial write to it\n"
"  --crash-after N     SIGKILL itself on receiving request N+1, before replying\n"
"                      (INIT, FORGET, BATCH_FORGET and INTERRUPT not counted)\n"
"  --delay-ms N        wait N ms before running each request (an interrupted one\n"
"                      then fails with EINTR)\n"
"  --max-write BYTES   max_write of FUSE_INIT (default 1048576)\n"
"  --max-read BYTES    add max_read=BYTES to the mount options\n"
"  --max-background N  FUSE_INIT reply's max_background (default 16; the\n"
"                      congestion threshold is 3/4 of it)\n"
"  --debug             log every request to stderr\n"
"  -h, --help          this text\n"
"\n"
"Prints \"furing-server: ready\" once INIT is answered and the ring entries\n"
"are registered, and the number of requests served per transport at exit\n"
"(per queue, with \" zc N\" for N zero-copied requests).\n");
}

static unsigned long parse_num(const char *name, const char *s, unsigned long min,
			       unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "furing-server: --%s: expected a number in %lu..%lu, not '%s'\n",
			name, min, max, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	enum { O_DEV = 256, O_NO_URING, O_QUEUES, O_DEPTH, O_CRASH, O_DELAY, O_MAX_WRITE,
	       O_MAX_READ, O_MAX_BG, O_DEBUG, O_BUFRING, O_PIN_HEADERS, O_PIN_BUFFERS, O_BUFS,
	       O_BUF_SIZE, O_ZERO_COPY, O_ZC_NO_TOUCH, O_WB_CACHE };
	static const struct option lopts[] = {
		{ "dev", required_argument, NULL, O_DEV },
		{ "no-uring", no_argument, NULL, O_NO_URING },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "bufring", no_argument, NULL, O_BUFRING },
		{ "pin-headers", no_argument, NULL, O_PIN_HEADERS },
		{ "pin-buffers", no_argument, NULL, O_PIN_BUFFERS },
		{ "bufs", required_argument, NULL, O_BUFS },
		{ "buf-size", required_argument, NULL, O_BUF_SIZE },
		{ "zero-copy", no_argument, NULL, O_ZERO_COPY },
		{ "zc-no-touch", no_argument, NULL, O_ZC_NO_TOUCH },
		{ "writeback-cache", no_argument, NULL, O_WB_CACHE },
		{ "crash-after", required_argument, NULL, O_CRASH },
		{ "delay-ms", required_argument, NULL, O_DELAY },
		{ "max-write", required_argument, NULL, O_MAX_WRITE },
		{ "max-read", required_argument, NULL, O_MAX_READ },
		{ "max-background", required_argument, NULL, O_MAX_BG },
		{ "debug", no_argument, NULL, O_DEBUG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t flags = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case O_DEV:
			opt.dev = optarg;
			break;
		case O_NO_URING:
			opt.no_uring = true;
			break;
		case O_QUEUES:
			opt.queues = parse_num("queues", optarg, 1, CPU_SETSIZE);
			break;
		case O_DEPTH:
			opt.depth = parse_num("depth", optarg, 1, FURING_URING_MAX_QUEUE_DEPTH);
			break;
		case O_BUFRING:
			flags |= FURING_URING_BUFRING;
			break;
		case O_PIN_HEADERS:
			flags |= FURING_URING_PINNED_HEADERS;
			break;
		case O_PIN_BUFFERS:
			flags |= FURING_URING_PINNED_BUFFERS;
			break;
		case O_BUFS:
			opt.bufs = parse_num("bufs", optarg, 1, 65535);
			break;
		case O_BUF_SIZE:
			opt.buf_size = parse_num("buf-size", optarg, 1, 1U << 30);
			break;
		case O_ZERO_COPY:
			flags |= FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS |
				 FURING_URING_PINNED_BUFFERS | FURING_URING_ZERO_COPY;
			break;
		case O_ZC_NO_TOUCH:
			opt.zc_no_touch = true;
			break;
		case O_WB_CACHE:
			opt.writeback_cache = true;
			break;
		case O_CRASH:
			opt.crash_after = parse_num("crash-after", optarg, 0, ULONG_MAX);
			break;
		case O_DELAY:
			opt.delay_ms = parse_num("delay-ms", optarg, 0, 3600 * 1000);
			break;
		case O_MAX_WRITE:
			opt.max_write = parse_num("max-write", optarg, 4096, 256 << 20);
			break;
		case O_MAX_BG:
			opt.max_background = parse_num("max-background", optarg, 1, 65535);
			break;
		case O_MAX_READ:
			opt.max_read = parse_num("max-read", optarg, 1, UINT_MAX);
			break;
		case O_DEBUG:
			opt.debug = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (opt.zc_no_touch && !(flags & FURING_URING_ZERO_COPY)) {
		fprintf(stderr, "furing-server: --zc-no-touch needs --zero-copy\n");
		exit(2);
	}
	if ((flags & FURING_URING_ZERO_COPY) && opt.no_uring) {
		fprintf(stderr, "furing-server: --zero-copy and --no-uring exclude each other\n");
		exit(2);
	}
	if (!(flags & FURING_URING_BUFRING)) {
		const char *what = flags & FURING_URING_PINNED_HEADERS ? "--pin-headers" :
				   flags & FURING_URING_PINNED_BUFFERS ? "--pin-buffers" :
				   opt.bufs ? "--bufs" : opt.buf_size ? "--buf-size" : NULL;

		if (what) {
			fprintf(stderr, "furing-server: %s needs --bufring\n", what);
			exit(2);
		}
	} else if (opt.no_uring) {
		fprintf(stderr, "furing-server: --bufring and --no-uring exclude each other\n");
		exit(2);
	}
	opt.ring_flags = flags;
	if (flags && !opt.bufs)
		opt.bufs = opt.depth;
	if (argc - optind != 2) {
		usage(stderr);
		exit(2);
	}
	opt.backing = argv[optind];
	opt.mnt = argv[optind + 1];
}

static int do_mount(void)
{
	const char *base = strrchr(opt.dev, '/');
	const char *fstype;
	char opts[256];
	int len;

	base = base ? base + 1 : opt.dev;
	fstype = strcmp(base, "fuse") ? "furing" : "fuse";
	len = snprintf(opts, sizeof(opts),
		       "fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions",
		       dev_fd, getuid(), getgid());
	if (opt.max_read)
		snprintf(opts + len, sizeof(opts) - len, ",max_read=%u", opt.max_read);
	if (mount("furing-server", opt.mnt, fstype, 0, opts)) {
		fprintf(stderr, "furing-server: mount -t %s -o %s furing-server %s: %s\n", fstype,
			opts, opt.mnt, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	pthread_t classic[2];
	unsigned int nr_classic_threads, i;
	unsigned long ring_total = 0;
	struct stat st;
	int err;

	parse_args(argc, argv);
	/* a reader of the ready line may go away; the exit line must not kill us */
	signal(SIGPIPE, SIG_IGN);
	payload_size = MAX(FUSE_MIN_READ_BUFFER, opt.max_write);
	payload_size = MAX(payload_size, ((opt.max_write + 4095) / 4096) * 4096UL);
	if (opt.ring_flags && !opt.buf_size)
		opt.buf_size = (payload_size + 4095) / 4096 * 4096;

	root.fd = open(opt.backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root.fd < 0 || fstat(root.fd, &st)) {
		fprintf(stderr, "furing-server: %s: %s\n", opt.backing, strerror(errno));
		return 1;
	}
	root.dev = st.st_dev;
	root.ino = st.st_ino;
	root.nlookup = 1;
	node_hash[node_hashfn(root.dev, root.ino)] = &root;

	dev_fd = open(opt.dev, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0) {
		fprintf(stderr, "furing-server: %s: %s\n", opt.dev, strerror(errno));
		return 1;
	}
	if (do_mount())
		return 1;
	err = do_init();
	if (err) {
		fprintf(stderr, "furing-server: FUSE_INIT failed: %s\n", strerror(-err));
		umount2(opt.mnt, MNT_DETACH);
		return 1;
	}

	if (opt.ring_flags && !use_uring)
		fprintf(stderr, "furing-server: --bufring: no FUSE_OVER_IO_URING from the "
			"kernel: read()/write() only\n");
	nr_classic_threads = use_uring ? 1 : 2;
	for (i = 0; i < nr_classic_threads; i++) {
		err = pthread_create(&classic[i], NULL, classic_thread, NULL);
		if (err) {
			fprintf(stderr, "furing-server: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}

	if (use_uring) {
		unsigned int possible = cpulist_count("/sys/devices/system/cpu/possible");

		if (!possible)
			possible = sysconf(_SC_NPROCESSORS_CONF);
		if (opt.ring_flags)
			fprintf(stderr, "furing-server: bufring%s%s%s%s: %u entries, %u buffers of "
				"%u bytes per queue\n",
				opt.ring_flags & FURING_URING_PINNED_HEADERS ? ", pinned headers" : "",
				opt.ring_flags & FURING_URING_PINNED_BUFFERS ? ", pinned buffers" : "",
				opt.ring_flags & FURING_URING_ZERO_COPY ? ", zero-copy" : "",
				opt.zc_no_touch ? " (no touch)" : "",
				opt.depth, opt.bufs, opt.buf_size);
		if (!opt.queues)
			opt.queues = possible;
		else if (opt.queues < possible)
			fprintf(stderr, "furing-server: %u queues for %u possible CPUs: Linux's "
				"FUSE io-uring stays unused until every CPU has a queue\n",
				opt.queues, possible);
		queues = calloc(opt.queues, sizeof(*queues));
		if (!queues)
			return 1;
		for (i = 0; i < opt.queues; i++) {
			queues[i].qid = i;
			err = pthread_create(&queues[i].thread, NULL, queue_thread, &queues[i]);
			if (err) {
				fprintf(stderr, "furing-server: pthread_create: %s\n", strerror(err));
				return 1;
			}
			queues[i].started = true;
		}
		pthread_mutex_lock(&reg_lock);
		while (nr_registered < opt.queues)
			pthread_cond_wait(&reg_cond, &reg_lock);
		pthread_mutex_unlock(&reg_lock);
		/* no buffer table for the kernel's registrations: not ready */
		if (atomic_load(&zc_setup_failed)) {
			fprintf(stderr, "furing-server: --zero-copy: no io_uring buffer table\n");
			umount2(opt.mnt, MNT_DETACH);
			return 1;
		}
	}
	printf("furing-server: ready\n");
	fflush(stdout);

	for (i = 0; i < nr_classic_threads; i++)
		pthread_join(classic[i], NULL);
	for (i = 0; use_uring && i < opt.queues; i++) {
		if (queues[i].started)
			pthread_join(queues[i].thread, NULL);
		ring_total += atomic_load(&queues[i].served);
	}

	printf("furing-server: exit: %lu requests: classic %lu, ring %lu",
	       atomic_load(&nr_classic) + ring_total, atomic_load(&nr_classic), ring_total);
	for (i = 0; use_uring && i < opt.queues; i++) {
		struct queue *q = &queues[i];

		printf("%s q%u %lu", i ? "," : " (", i, atomic_load(&q->served));
		if (atomic_load(&q->zero_copied))
			printf(" zc %lu", atomic_load(&q->zero_copied));
		if (q->nr_enotconn)
			printf(" ENOTCONN x%u", q->nr_enotconn);
		if (q->nr_econnaborted)
			printf(" ECONNABORTED x%u", q->nr_econnaborted);
		if (q->nr_ecanceled)
			printf(" ECANCELED x%u", q->nr_ecanceled);
		if (q->nr_other)
			printf(" %s x%u", strerrorname_np(-q->last_other) ?: "?", q->nr_other);
		if (q->nr_bad)
			printf(" bad-buf x%u", q->nr_bad);
	}
	printf("%s; %lu interrupts; %lu nodes left\n", use_uring ? ")" : "",
	       atomic_load(&nr_interrupts), nr_nodes);
	fflush(stdout);
	close(dev_fd);
	return atomic_load(&failed) ? 1 : 0;
}
