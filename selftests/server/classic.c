// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server's classic transport: read() a request from the device, write()
 * its reply. With io-uring one reader still carries FORGET, BATCH_FORGET and
 * INTERRUPT, which the kernel never puts on the ring, and anything queued
 * before the ring became ready; without, two readers carry everything.
 */
#include "server.h"

atomic_ulong nr_classic;

size_t classic_bufsize(void)
{
	/* room for fuse_in_header + fuse_write_in + max_write, and two names */
	return payload_size + 8192;
}

/* 0, or -errno of a write() that means the connection is gone. */
int classic_reply(uint64_t unique, ssize_t ret, const void *out)
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

void *classic_thread(void *arg __maybe_unused)
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
		argsize = fs_op_argsize(r.in.opcode);
		if ((size_t)n < sizeof(r.in) + argsize) {
			ret = -EINVAL;
		} else {
			r.arg = in + sizeof(r.in);
			r.data = in + sizeof(r.in) + argsize;
			r.datalen = n - sizeof(r.in) - argsize;
			r.out = out;
			r.outsize = payload_size;
			r.move = NULL;
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
