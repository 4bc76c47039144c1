/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers for what Rust cannot reach (macros, static inlines). */
#ifndef _FURING_HELPERS_H
#define _FURING_HELPERS_H

#include <linux/types.h>
#include <linux/uidgid_types.h>
#include <linux/furing.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

struct fs_context;
struct user_namespace;
struct io_uring_cmd;
struct fuse_dev;
struct fuse_chan;
struct wait_queue_entry;

/* What a furing uring_cmd's SQE says; only readable while the command is issued. */
struct furing_sqe {
	struct furing_uring_cmd_req req;
	__u64 addr;
	__u32 len;
	__u16 buf_index;
};

/* Copies the fields furing uses out of @cmd's SQE128 (io_uring_sqe128_cmd()). */
void furing_sqe_read(const struct io_uring_cmd *cmd, struct furing_sqe *out);

/* fuse_dev_chan_get(): the channel of @fud, NULL before mount, or disconnected. */
struct fuse_chan *furing_fud_chan(struct fuse_dev *fud);

/* init_waitqueue_func_entry(). */
void furing_init_wait_entry(struct wait_queue_entry *wq, wait_queue_func_t func);

/* invalfc(): log @msg on the mount context and return -EINVAL. */
int furing_invalfc(struct fs_context *fsc, const char *msg);

/* kuid_has_mapping() / kgid_has_mapping(). */
bool furing_kuid_has_mapping(struct user_namespace *ns, kuid_t uid);
bool furing_kgid_has_mapping(struct user_namespace *ns, kgid_t gid);

struct fuse_req;
struct folio;

/*
 * FR_SENT, and the interrupt a signal queued nothing for, of a request handed
 * to the server (as fuse_dev_do_read() does); the transport keeps the request.
 */
void furing_req_mark_sent(struct fuse_req *req);

/* A list of requests through req->list: INIT_LIST_HEAD, add, pop the first. */
struct list_head;
void furing_list_init(struct list_head *head);
void furing_req_list_add(struct list_head *head, struct fuse_req *req, bool front);
struct fuse_req *furing_req_list_first(struct list_head *head);
struct fuse_req *furing_req_list_pop(struct list_head *head);

/* alloc_workqueue("furing", WQ_UNBOUND, 0). */
struct workqueue_struct;
struct workqueue_struct *furing_alloc_wq(void);

/* io_uring_cmd_complete_in_task() with furing's task-work callback. */
void furing_cmd_send_in_task(struct io_uring_cmd *cmd);
/* The Rust side of the task-work callback. */
void furing_send_in_task(struct io_uring_cmd *cmd, bool cancel, unsigned int issue_flags);

/* folio_get() / folio_put(). */
void furing_folio_get(struct folio *folio);
void furing_folio_put(struct folio *folio);
/* folio_zero_segments(@folio, 0, @start, @end, folio_size(@folio)): all but [@start, @end). */
void furing_folio_zero_outside(struct folio *folio, size_t start, size_t end);
/* folio_size(). */
size_t furing_folio_size(struct folio *folio);

/*
 * Zero-copy: registers the folios of @ap (its descs give offset and length
 * in each) as buffer @index of @cmd's io_uring with io_buffer_register_bvec();
 * io_uring calls @release(@priv) when the buffer goes.
 */
int furing_zc_register(struct io_uring_cmd *cmd, const struct fuse_args_pages *ap,
		       void (*release)(void *), void *priv, u8 dir, unsigned int index,
		       unsigned int issue_flags);
/* The io_uring (context) @cmd belongs to, to compare. */
const void *furing_cmd_ring(struct io_uring_cmd *cmd);
/*
 * Whether @cmd's io_uring is being torn down (its last file reference went), as opposed
 * to task work run cancelled because its task exited while the ring lives on.
 */
bool furing_cmd_ring_dying(struct io_uring_cmd *cmd);

/* INIT_DELAYED_WORK(). */
void furing_dwork_init(struct delayed_work *dw, work_func_t fn);
/* queue_delayed_work() on system_percpu_wq, as the core's request-timeout scan. */
bool furing_dwork_queue(struct delayed_work *dw, unsigned long delay);
/* fuse_request_expired()'s test: @req was made more than @timeout jiffies ago. */
bool furing_req_expired(const struct fuse_req *req, unsigned long timeout);

/* vmap(@pages, @n, VM_MAP, PAGE_KERNEL) / vunmap(). */
void *furing_vmap(struct page **pages, unsigned int n);
void furing_vunmap(const void *addr);

/* kmap_local_folio() / kunmap_local(). */
void *furing_kmap_folio(struct folio *folio, size_t offset);
void furing_kunmap(void *addr);

#endif /* _FURING_HELPERS_H */
