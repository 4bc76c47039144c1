// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server's fault knobs, a layer every request passes before the
 * filesystem runs it: --crash-after N (SIGKILL on request N+1) and --delay-ms N
 * (each request waits, and one interrupted meanwhile fails with EINTR).
 */
#include "server.h"

/* Requests counted for --crash-after. */
static atomic_ulong nr_counted;

bool expects_reply(uint32_t opcode)
{
	return opcode != FUSE_FORGET && opcode != FUSE_BATCH_FORGET &&
	       opcode != FUSE_INTERRUPT;
}

/*
 * FUSE_INTERRUPT: remembers which request the kernel wants interrupted. Only a
 * request still waiting out --delay-ms acts on it (and answers EINTR); the
 * others finish quickly anyway. Uniques are never reused, so a late interrupt
 * for a finished request just stays in the table until overwritten.
 */
#define NR_INTR		64
static pthread_mutex_t intr_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t intr_unique[NR_INTR];
static unsigned int intr_next;
static atomic_ulong nr_interrupts;

ssize_t fault_interrupt(struct req *r)
{
	const struct fuse_interrupt_in *ii = r->arg;

	pthread_mutex_lock(&intr_lock);
	intr_unique[intr_next++ % NR_INTR] = ii->unique;
	pthread_mutex_unlock(&intr_lock);
	atomic_fetch_add(&nr_interrupts, 1);
	return NO_REPLY;
}

/* Whether the kernel asked to interrupt @unique; forgets the request. */
static bool take_interrupt(uint64_t unique)
{
	bool found = false;
	unsigned int i;

	pthread_mutex_lock(&intr_lock);
	for (i = 0; i < NR_INTR; i++) {
		if (intr_unique[i] == unique) {
			intr_unique[i] = 0;
			found = true;
		}
	}
	pthread_mutex_unlock(&intr_lock);
	return found;
}

/*
 * --delay-ms: waits before running a request that expects a reply, in 10 ms
 * steps; false when the request was interrupted meanwhile (it is then not run).
 */
static bool delay_request(uint64_t unique)
{
	unsigned int left = opt.delay_ms;

	while (left) {
		unsigned int ms = left < 10 ? left : 10;
		struct timespec ts = { .tv_nsec = ms * 1000000L };

		if (take_interrupt(unique))
			return false;
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
		left -= ms;
	}
	return !take_interrupt(unique);
}

unsigned long fault_interrupts(void)
{
	return atomic_load(&nr_interrupts);
}

/* Applies the knobs to @r: false when it must fail with EINTR instead of running. */
bool fault_gate(struct req *r)
{
	if (!expects_reply(r->in.opcode))
		return true;
	if (opt.crash_after && atomic_fetch_add(&nr_counted, 1) >= opt.crash_after) {
		fprintf(stderr, "furing-server: --crash-after %lu: SIGKILL at %s (unique %" PRIu64 ")\n",
			opt.crash_after, fs_op_name(r->in.opcode), (uint64_t)r->in.unique);
		kill(getpid(), SIGKILL);
	}
	return !opt.delay_ms || delay_request(r->in.unique);
}
