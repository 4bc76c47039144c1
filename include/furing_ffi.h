/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the module's bindgen run reads: the 7.3 FUSE core's internal headers,
 * io_uring's command interface, the UAPI and the C helpers' prototypes.
 */
#ifndef _FURING_FFI_H
#define _FURING_FFI_H

#include <linux/fs.h>
#include <linux/fs_context.h>
#include <linux/fs_parser.h>
#include <linux/io_uring/cmd.h>

#include "fuse_i.h"
#include "fuse_dev_i.h"
#include "dev.h"

#include <linux/furing.h>
#include "furing_helpers.h"

#endif /* _FURING_FFI_H */
