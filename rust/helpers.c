// SPDX-License-Identifier: GPL-2.0
/*
 * furing: the few lines of C that Rust cannot reach (macros, static inlines)
 * and compile-time checks of the UAPI against Linux 7.3's fuse.h.
 */
#include <linux/vmalloc.h>
#include <linux/build_bug.h>
#include <linux/stddef.h>
#include <linux/highmem.h>
#include <linux/bvec.h>
#include <linux/slab.h>
#include <linux/workqueue.h>
#include "furing_ffi.h"

int furing_invalfc(struct fs_context *fsc, const char *msg)
{
	return invalfc(fsc, "%s", msg);
}

bool furing_kuid_has_mapping(struct user_namespace *ns, kuid_t uid)
{
	return kuid_has_mapping(ns, uid);
}

bool furing_kgid_has_mapping(struct user_namespace *ns, kgid_t gid)
{
	return kgid_has_mapping(ns, gid);
}

void furing_sqe_read(const struct io_uring_cmd *cmd, struct furing_sqe *out)
{
	out->req = *io_uring_sqe128_cmd(cmd->sqe, struct furing_uring_cmd_req);
	out->addr = READ_ONCE(cmd->sqe->addr);
	out->len = READ_ONCE(cmd->sqe->len);
	out->buf_index = READ_ONCE(cmd->sqe->buf_index);
}

struct fuse_chan *furing_fud_chan(struct fuse_dev *fud)
{
	struct fuse_chan *fch = fuse_dev_chan_get(fud);

	return fch == FUSE_DEV_CHAN_DISCONNECTED ? NULL : fch;
}

void furing_init_wait_entry(struct wait_queue_entry *wq, wait_queue_func_t func)
{
	init_waitqueue_func_entry(wq, func);
}

/* FR_SENT, then the interrupt a signal queued nothing for (as fuse_dev_do_read()). */
void furing_req_mark_sent(struct fuse_req *req)
{
	set_bit(FR_SENT, &req->flags);
	/* matches barrier in request_wait_answer() */
	smp_mb__after_atomic();
	if (test_bit(FR_INTERRUPTED, &req->flags))
		req->chan->iq.ops->send_interrupt(&req->chan->iq, req);
}

void furing_list_init(struct list_head *head)
{
	INIT_LIST_HEAD(head);
}

void furing_req_list_add(struct list_head *head, struct fuse_req *req, bool front)
{
	if (front)
		list_add(&req->list, head);
	else
		list_add_tail(&req->list, head);
}

struct fuse_req *furing_req_list_first(struct list_head *head)
{
	return list_first_entry_or_null(head, struct fuse_req, list);
}

struct fuse_req *furing_req_list_pop(struct list_head *head)
{
	struct fuse_req *req = list_first_entry_or_null(head, struct fuse_req, list);

	if (req)
		list_del_init(&req->list);
	return req;
}

struct workqueue_struct *furing_alloc_wq(void)
{
	return alloc_workqueue("furing", WQ_UNBOUND, 0);
}

static void furing_tw_cb(struct io_tw_req tw_req, io_tw_token_t tw)
{
	furing_send_in_task(io_uring_cmd_from_tw(tw_req), tw.cancel,
			    IO_URING_CMD_TASK_WORK_ISSUE_FLAGS);
}

void furing_cmd_send_in_task(struct io_uring_cmd *cmd)
{
	io_uring_cmd_complete_in_task(cmd, furing_tw_cb);
}

void furing_folio_get(struct folio *folio)
{
	folio_get(folio);
}

void furing_folio_put(struct folio *folio)
{
	folio_put(folio);
}

void furing_folio_zero_outside(struct folio *folio, size_t start, size_t end)
{
	folio_zero_segments(folio, 0, start, end, folio_size(folio));
}

size_t furing_folio_size(struct folio *folio)
{
	return folio_size(folio);
}

int furing_zc_register(struct io_uring_cmd *cmd, const struct fuse_args_pages *ap,
		       void (*release)(void *), void *priv, u8 dir, unsigned int index,
		       unsigned int issue_flags)
{
	struct bio_vec *bvs;
	unsigned int i;
	int ret;

	/* io_buffer_register_bvec() copies the array. */
	bvs = kmalloc_array(ap->num_folios, sizeof(*bvs), GFP_KERNEL);
	if (!bvs)
		return -ENOMEM;
	for (i = 0; i < ap->num_folios; i++)
		bvec_set_page(&bvs[i], folio_page(ap->folios[i], 0), ap->descs[i].length,
			      ap->descs[i].offset);
	ret = io_buffer_register_bvec(cmd, bvs, ap->num_folios, release, priv, dir,
				      index, issue_flags);
	kfree(bvs);
	return ret;
}

const void *furing_cmd_ring(struct io_uring_cmd *cmd)
{
	return cmd_to_io_kiocb(cmd)->ctx;
}

bool furing_cmd_ring_dying(struct io_uring_cmd *cmd)
{
	return percpu_ref_is_dying(&cmd_to_io_kiocb(cmd)->ctx->refs);
}

void *furing_vmap(struct page **pages, unsigned int n)
{
	return vmap(pages, n, VM_MAP, PAGE_KERNEL);
}

void furing_vunmap(const void *addr)
{
	vunmap(addr);
}

void *furing_kmap_folio(struct folio *folio, size_t offset)
{
	return kmap_local_folio(folio, offset);
}

void furing_kunmap(void *addr)
{
	kunmap_local(addr);
}

/* The basic protocol is byte-for-byte Linux 7.3's. */
#define FURING_SAME_LAYOUT(ours, theirs, field)				\
	static_assert(offsetof(struct ours, field) ==			\
		      offsetof(struct theirs, field))
static_assert(sizeof(struct furing_uring_cmd_req) == 40);
static_assert(sizeof(struct furing_uring_cmd_req) == sizeof(struct fuse_uring_cmd_req));
FURING_SAME_LAYOUT(furing_uring_cmd_req, fuse_uring_cmd_req, flags);
FURING_SAME_LAYOUT(furing_uring_cmd_req, fuse_uring_cmd_req, commit_id);
FURING_SAME_LAYOUT(furing_uring_cmd_req, fuse_uring_cmd_req, qid);
static_assert(sizeof(struct furing_uring_ent_in_out) == 32);
static_assert(sizeof(struct furing_uring_ent_in_out) == sizeof(struct fuse_uring_ent_in_out));
FURING_SAME_LAYOUT(furing_uring_ent_in_out, fuse_uring_ent_in_out, commit_id);
FURING_SAME_LAYOUT(furing_uring_ent_in_out, fuse_uring_ent_in_out, payload_sz);
static_assert(sizeof(struct furing_uring_req_header) == 288);
static_assert(sizeof(struct furing_uring_req_header) == sizeof(struct fuse_uring_req_header));
FURING_SAME_LAYOUT(furing_uring_req_header, fuse_uring_req_header, op_in);
FURING_SAME_LAYOUT(furing_uring_req_header, fuse_uring_req_header, ring_ent_in_out);
static_assert((int)FURING_URING_CMD_REGISTER == (int)FUSE_IO_URING_CMD_REGISTER);
static_assert((int)FURING_URING_CMD_COMMIT_AND_FETCH ==
	      (int)FUSE_IO_URING_CMD_COMMIT_AND_FETCH);

void furing_dwork_init(struct delayed_work *dw, work_func_t fn)
{
	INIT_DELAYED_WORK(dw, fn);
}

bool furing_dwork_queue(struct delayed_work *dw, unsigned long delay)
{
	return queue_delayed_work(system_percpu_wq, dw, delay);
}

bool furing_req_expired(const struct fuse_req *req, unsigned long timeout)
{
	return time_is_before_jiffies(req->create_time + timeout);
}
