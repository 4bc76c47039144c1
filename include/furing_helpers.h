/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers for what Rust cannot reach (macros, static inlines). */
#ifndef _FURING_HELPERS_H
#define _FURING_HELPERS_H

#include <linux/types.h>
#include <linux/uidgid_types.h>

struct fs_context;
struct user_namespace;

/* invalfc(): log @msg on the mount context and return -EINVAL. */
int furing_invalfc(struct fs_context *fsc, const char *msg);

/* kuid_has_mapping() / kgid_has_mapping(). */
bool furing_kuid_has_mapping(struct user_namespace *ns, kuid_t uid);
bool furing_kgid_has_mapping(struct user_namespace *ns, kgid_t gid);

#endif /* _FURING_HELPERS_H */
