/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Random-op checker (fsx style), shared by the io and libfuse tests (include
 * after kselftest_harness.h): FSX_THREADS threads, each on its own file, do
 * random writes, truncates, reads and mmap reads against an in-memory model of
 * the file, FSX_OPS operations in all, with memory full of a pattern first (so
 * stale memory in the page cache shows); at the end each file is synced and
 * the backing file compared with the model byte for byte (what a writeback
 * cache wrote back). The seed is printed; FURING_FSX_SEED replays a run.
 */
#ifndef _FURING_FSX_H
#define _FURING_FSX_H

#include <pthread.h>
#include <time.h>
#include <sys/mman.h>
#include "furing_test.h"

#define FSX_THREADS 4
#define FSX_MAX (256 << 10)
/* Operations in all: fewer on the debug kernel, which runs every mode 5-10x slower. */
#define FSX_OPS (furing_debug_kernel() ? 3000 : 10000)

struct fsx {
	const char *mnt, *back;
	int idx;
	unsigned int seed;
	long bad_op;	/* first failing op (FSX_OPS / FSX_THREADS: the final check), or -1 */
	char what[96];
};

static unsigned int fsx_rnd(unsigned int *s)
{
	*s = *s * 1103515245 + 12345;
	return *s >> 8;
}

/* The backing file of @t holds @size bytes equal to @model. */
static int fsx_backing_matches(struct fsx *t, const char *model, size_t size, char *buf)
{
	char path[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/fsx%d", t->back, t->idx);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = pread(fd, buf, FSX_MAX, 0);
	close(fd);
	if (n != (ssize_t)size) {
		snprintf(t->what, sizeof(t->what), "backing file: %zd bytes, model %zu", n, size);
		return 0;
	}
	for (n = 0; n < (ssize_t)size && buf[n] == model[n]; n++)
		;
	if (n < (ssize_t)size) {
		snprintf(t->what, sizeof(t->what), "backing file: byte %zd is %#x, model %#x", n,
			 buf[n] & 0xff, model[n] & 0xff);
		return 0;
	}
	return 1;
}

static void *fsx_thread(void *arg)
{
	struct fsx *t = arg;
	char path[256], *model, *buf;
	size_t size = 0;
	int fd, op;

	t->bad_op = -1;
	snprintf(path, sizeof(path), "%s/fsx%d", t->mnt, t->idx);
	model = calloc(1, FSX_MAX);
	buf = malloc(FSX_MAX);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (!model || !buf || fd < 0) {
		t->bad_op = 0;
		snprintf(t->what, sizeof(t->what), "setup: %s", strerror(errno));
		goto out;
	}
	for (op = 0; op < FSX_OPS / FSX_THREADS; op++) {
		size_t off = fsx_rnd(&t->seed) % FSX_MAX;
		size_t len = fsx_rnd(&t->seed) % (FSX_MAX - off) % (64 << 10) + 1;
		unsigned int kind = fsx_rnd(&t->seed) % 10;

		if (kind < 4) {		/* write */
			size_t i;

			for (i = 0; i < len; i++)
				buf[i] = fsx_rnd(&t->seed);
			if (pwrite(fd, buf, len, off) != (ssize_t)len) {
				snprintf(t->what, sizeof(t->what), "write %zu@%zu", len, off);
				break;
			}
			memcpy(model + off, buf, len);
			if (off + len > size)
				size = off + len;
		} else if (kind < 5) {	/* truncate */
			if (ftruncate(fd, off)) {
				snprintf(t->what, sizeof(t->what), "truncate %zu", off);
				break;
			}
			if (off < size)
				memset(model + off, 0, size - off);
			size = off;
		} else if (kind < 8) {	/* read */
			ssize_t want = off >= size ? 0 : (ssize_t)(len < size - off ? len : size - off);

			if (pread(fd, buf, len, off) != want || memcmp(buf, model + off, want)) {
				snprintf(t->what, sizeof(t->what), "read %zu@%zu (size %zu)", len, off, size);
				break;
			}
		} else if (size > 0) {	/* mmap read */
			char *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

			off %= size;
			len = len < size - off ? len : size - off;
			if (map == MAP_FAILED || memcmp(map + off, model + off, len)) {
				snprintf(t->what, sizeof(t->what), "mmap read %zu@%zu", len, off);
				if (map != MAP_FAILED)
					munmap(map, size);
				break;
			}
			munmap(map, size);
		}
	}
	if (op == FSX_OPS / FSX_THREADS && (fsync(fd) || !fsx_backing_matches(t, model, size, buf)))
		t->bad_op = op;
	else if (op < FSX_OPS / FSX_THREADS)
		t->bad_op = op;
out:
	if (fd >= 0)
		close(fd);
	free(model);
	free(buf);
	return NULL;
}

/* Runs the checker on @mnt (served from @back); failures are the test's. */
static void furing_fsx(struct __test_metadata *_metadata, const char *mnt, const char *back)
{
	struct fsx t[FSX_THREADS];
	pthread_t th[FSX_THREADS];
	unsigned int seed = time(NULL);
	int i;

	if (getenv("FURING_FSX_SEED"))
		seed = strtoul(getenv("FURING_FSX_SEED"), NULL, 0);
	TH_LOG("seed %u, %d ops on %d threads", seed, (int)FSX_OPS, FSX_THREADS);
	furing_spray(64);
	for (i = 0; i < FSX_THREADS; i++) {
		t[i] = (struct fsx){ .mnt = mnt, .back = back, .idx = i, .seed = seed + i };
		ASSERT_EQ(0, pthread_create(&th[i], NULL, fsx_thread, &t[i]));
	}
	for (i = 0; i < FSX_THREADS; i++) {
		pthread_join(th[i], NULL);
		EXPECT_EQ(-1, t[i].bad_op) {
			TH_LOG("thread %d (seed %u): op %ld: %s", i, seed + i, t[i].bad_op, t[i].what);
		}
	}
}

#endif /* _FURING_FSX_H */
