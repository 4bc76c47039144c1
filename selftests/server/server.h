/* SPDX-License-Identifier: GPL-2.0 */
/*
 * furing-server's parts, the way ublk's kublk keeps targets apart from the
 * transport: a request (struct req) and the filesystem that answers it
 * (passthrough.c, behind fs_*()), the transports that carry requests to it
 * (classic.c: read()/write() on the device; ring.c: io_uring entries, basic
 * and buffer rings; zerocopy.c: data in registered pages), the fault knobs
 * every request passes first (fault.c), and main.c (options, mount, INIT).
 */
#ifndef _FURING_SERVER_H
#define _FURING_SERVER_H

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
#include FUSE_KERNEL_H

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)	((a) < (b) ? (a) : (b))
#define MAX(a, b)	((a) > (b) ? (a) : (b))
#define __maybe_unused	__attribute__((unused))

/* A handler's "send nothing back" (FORGET, BATCH_FORGET, INTERRUPT). */
#define NO_REPLY	(-1000000)
/* A handler's "the transport moves the data and replies once it has" (req.move). */
#define REPLY_PENDING	(-1000001)

/* The command line (main.c). */
struct options {
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
	/*
	 * bufring: the payload buffer classes, ascending, --buf-class SIZExN
	 * (FURING_URING_BUF_CLASSES), else one of --bufs buffers of --buf-size
	 */
	unsigned int nr_classes;
	uint32_t class_size[FURING_URING_MAX_BUF_CLASSES];
	unsigned int class_bufs[FURING_URING_MAX_BUF_CLASSES];
	/* --zc-no-touch: zero-copied requests get no fixed READ/WRITE */
	bool zc_no_touch;
	/* --writeback-cache: FUSE_WRITEBACK_CACHE in the INIT reply */
	bool writeback_cache;
	/*
	 * Linux 7.3's buffer pools on /dev/fuse (--bufpool, --bufpool-fixed: the
	 * pool registered as an io_uring fixed buffer) and its zero-copy queues
	 * (--zero-copy on /dev/fuse): 0, or POOL_*
	 */
	unsigned int bufpool;
	bool fuse_zero_copy;
	/* --stats: where the exit line goes too */
	const char *stats;
};
enum { POOL_NONE, POOL_PLAIN, POOL_FIXED };
extern struct options opt;

/* The FUSE device (main.c). */
extern int dev_fd;
/* Size of a request's payload buffer: the largest request or reply. */
extern size_t payload_size;
/* FUSE_OVER_IO_URING was negotiated. */
extern bool use_uring;
/* Set when a thread fails in a way that should make the exit status 1. */
extern atomic_int failed;
/* FOPEN_* flags the transport wants on every open (7.3 zero-copy: FOPEN_IO_URING_ZERO_COPY). */
extern uint32_t transport_open_flags;

/*
 * A request as every transport hands it over: its header, the opcode's
 * in-struct, what follows (names, write data), and where the reply's payload
 * goes. In ring mode data and out are the same buffer, so a handler consumes
 * its input before it writes its output.
 */
struct req {
	struct fuse_in_header in;	/* a copy: in ring mode the reply overwrites it */
	const void *arg;		/* the opcode's in-struct */
	const char *data;		/* what follows it: names, write data */
	size_t datalen;
	char *out;			/* reply payload */
	size_t outsize;
	/*
	 * Set by a transport that moves a READ's or WRITE's data itself (zero-copy:
	 * it is in pages the kernel registered, not in data / out): the handler
	 * hands it the backing fd, offset and size and returns what it returns,
	 * REPLY_PENDING or -errno. @priv is the transport's.
	 */
	ssize_t (*move)(struct req *r, int fd, uint64_t offset, uint32_t size, bool write);
	void *priv;
};

/* Runs one request through the fault knobs and the filesystem (main.c). */
ssize_t handle(struct req *r, const char *via);

/* The filesystem (passthrough.c). */
int fs_open_root(const char *backing);
ssize_t fs_run(struct req *r);
const char *fs_op_name(uint32_t opcode);
/* Size of the opcode's in-struct (its first argument); 0: none or unknown. */
size_t fs_op_argsize(uint32_t opcode);
unsigned long fs_nodes_left(void);
ssize_t reply_copy(struct req *r, const void *p, size_t len);

/* The fault knobs (fault.c): --crash-after, --delay-ms, and the interrupts they see. */
bool fault_gate(struct req *r);
ssize_t fault_interrupt(struct req *r);
unsigned long fault_interrupts(void);
bool expects_reply(uint32_t opcode);

/* The classic transport (classic.c). */
size_t classic_bufsize(void);
int classic_reply(uint64_t unique, ssize_t ret, const void *out);
void *classic_thread(void *arg);
extern atomic_ulong nr_classic;

/* ------------------------------------------------------------------ */
/* The io-uring transport (ring.c; zerocopy.c for zero-copied requests). */

/*
 * Zero-copy: a READ or WRITE whose data pages the kernel registered with the
 * queue's io_uring, and what its reply needs once the fixed op is done.
 */
struct zc_io {
	/* filled by the handler through req.move */
	int fd;				/* backing file */
	bool write;
	uint64_t offset;		/* file offset */
	uint32_t size;			/* bytes of the pages: fuse_{read,write}_in.size */
	/* filled by the ring when it hands the request over */
	uint32_t done;			/* bytes moved so far */
	struct fuse_in_header in;
	uint64_t commit_id;
	uint32_t buf_id;
	char *buf;			/* payload buffer (WRITE's fuse_write_out) */
	size_t bufsize;
};

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

/* bufring: a buffer class's payload region, buffers of one size (one without --buf-class) */
struct buf_class {
	char *base;		/* mmap()ed, whole pages */
	size_t len;
	uint32_t size;		/* of a buffer */
	unsigned int first;	/* buf_id of its first buffer: the classes before it count first */
	unsigned int nr;	/* buffers the kernel carves: iov_len / size */
	atomic_ulong used;	/* requests handed a buffer of it */
};

struct queue {
	unsigned int qid;
	pthread_t thread;
	bool started;
	struct io_uring ring;
	struct ring_ent *ents;
	/*
	 * bufring: the headers region and a payload region per class (mmap()ed),
	 * and what REGISTER says of them: iov[0] the headers, iov[1 + k] class k
	 */
	struct furing_uring_req_header *hdrs;
	size_t hdrs_len;
	struct buf_class cls[FURING_URING_MAX_BUF_CLASSES];
	struct iovec iov[1 + FURING_URING_MAX_BUF_CLASSES];
	unsigned int nr_bufs;	/* of every class */
	char *nobuf;		/* handlers' output for requests without a buffer */
	size_t nobuf_size;	/* the largest class's buffer size */
	unsigned int live;	/* entries the kernel has not ended */
	atomic_ulong served;
	atomic_ulong zero_copied;	/* requests with FURING_URING_ENT_ZERO_COPY */
	/* how the entries ended: CQE results at teardown */
	unsigned int nr_enotconn, nr_econnaborted, nr_ecanceled, nr_other;
	int last_other;
	/* bufring: requests failed with EIO for a bad buf_id / payload_sz */
	unsigned int nr_bad;
	/* 7.3 bufpool: the pool (mmap()ed), and its index in the buffer table (fixed) */
	char *pool;
	size_t pool_len;
	unsigned int pool_index;
};

extern struct queue *queues;
/* Starts a thread per queue and waits until each registered its entries; 0 or -1. */
int ring_start(void);
void ring_join(void);
void ring_print_stats(FILE *f);
unsigned long ring_served(void);
void ring_bad(struct queue *q, struct ring_ent *ent, const struct fuse_in_header *in,
	      const char *via, const char *what);
void ring_commit(struct queue *q, struct ring_ent *ent, const struct fuse_in_header *in,
		 uint64_t commit_id, uint32_t buf_id, ssize_t ret, size_t zc_bytes,
		 const char *via);

/* Zero-copy (zerocopy.c): furing's queues, or 7.3's on /dev/fuse. */
bool zc_enabled(void);
int zc_accept(struct queue *q, struct ring_ent *ent, struct req *r, size_t *datalen,
	      const char *via);
void zc_attach(struct ring_ent *ent, struct req *r, uint64_t commit_id, uint32_t buf_id,
	       char *buf, size_t bufsize);
void zc_start(struct queue *q, struct ring_ent *ent, const char *via);
void zc_complete(struct queue *q, struct ring_ent *ent, int res, const char *via);

#endif /* _FURING_SERVER_H */
