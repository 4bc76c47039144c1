// SPDX-License-Identifier: GPL-2.0
/*
 * furing: the few lines of C that Rust cannot reach (macros, static inlines)
 * and compile-time checks of the UAPI against Linux 7.3's fuse.h.
 */
#include <linux/build_bug.h>
#include <linux/stddef.h>
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
