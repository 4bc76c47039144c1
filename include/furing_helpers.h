/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers for what Rust cannot reach (macros, static inlines). */
#ifndef _FURING_HELPERS_H
#define _FURING_HELPERS_H

#include <linux/types.h>
#include <linux/uidgid_types.h>
#include <linux/furing.h>
#include <linux/wait.h>

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

#endif /* _FURING_HELPERS_H */
