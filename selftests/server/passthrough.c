// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server's filesystem: a passthrough of <backing-dir>. The handlers
 * see a struct req whatever carried it; a transport that moves READ/WRITE
 * data itself (zero-copy) says so through req.move.
 */
#include "server.h"

/* Cache timeouts (seconds) for names and attributes. */
#define ENTRY_TIMEOUT	1
#define ATTR_TIMEOUT	1

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

ssize_t reply_copy(struct req *r, const void *p, size_t len)
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
	oo.open_flags = transport_open_flags;
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
	out.o.open_flags = transport_open_flags;
	return reply_copy(r, &out, sizeof(out));
}

static ssize_t op_read(struct req *r)
{
	const struct fuse_read_in *ri = r->arg;
	size_t size = MIN(ri->size, r->outsize), done = 0;
	ssize_t n;

	/* the transport moves the data (zero-copy: straight into the client's pages) */
	if (r->move)
		return r->move(r, (int)ri->fh, ri->offset, ri->size, false);
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

	/* the transport moves the data (zero-copy: straight from the client's pages) */
	if (r->move)
		return r->move(r, (int)wi->fh, wi->offset, wi->size, true);
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
	OP(INTERRUPT, sizeof(struct fuse_interrupt_in), fault_interrupt),
	OP(DESTROY, 0, op_destroy),
	OP(BATCH_FORGET, sizeof(struct fuse_batch_forget_in), op_batch_forget),
	OP(READDIRPLUS, sizeof(struct fuse_read_in), op_readdirplus),
	OP(RENAME2, sizeof(struct fuse_rename2_in), op_rename2),
};
#undef OP

static const struct op *op_of(uint32_t opcode)
{
	if (opcode < ARRAY_SIZE(ops) && ops[opcode].fn)
		return &ops[opcode];
	return NULL;
}

const char *fs_op_name(uint32_t opcode)
{
	const struct op *op = op_of(opcode);

	return op ? op->name : "?";
}

size_t fs_op_argsize(uint32_t opcode)
{
	const struct op *op = op_of(opcode);

	return op ? op->argsize : 0;
}

/* Runs the handler of @r's opcode: payload bytes, -errno, NO_REPLY or REPLY_PENDING. */
ssize_t fs_run(struct req *r)
{
	const struct op *op = op_of(r->in.opcode);

	return op ? op->fn(r) : -ENOSYS;
}

/* Opens <backing-dir> as the root node; 0 or -1 (printed). */
int fs_open_root(const char *backing)
{
	struct stat st;

	root.fd = open(backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root.fd < 0 || fstat(root.fd, &st)) {
		fprintf(stderr, "furing-server: %s: %s\n", backing, strerror(errno));
		return -1;
	}
	root.dev = st.st_dev;
	root.ino = st.st_ino;
	root.nlookup = 1;
	node_hash[node_hashfn(root.dev, root.ino)] = &root;
	return 0;
}

unsigned long fs_nodes_left(void)
{
	return nr_nodes;
}
