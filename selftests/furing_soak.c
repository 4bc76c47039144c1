// SPDX-License-Identifier: GPL-2.0
/*
 * furing-soak: mixed client load against furing-server, which dies at a random
 * point of every round (SIGKILL, or now and then a fusectl abort) and is started
 * again, each round in the next mode, for --minutes minutes (make soak).
 *
 * A round: mount; check through the new server that nothing acknowledged
 * before is lost (the last round's fio file, every file of the metadata
 * journal); fio writes a file with crc32c blocks and verifies it to the end
 * (O_DIRECT, or buffered with a final fsync: durable); then fio's write-verify
 * loop and a metadata churn (create + fsync, rename, unlink, read back, mkdir,
 * rmdir) run until the server dies. The clients must then end, with
 * ENOTCONN, ECONNABORTED or EIO only, never a bad block or a hang. After umount
 * the backing directory must hold every acknowledged file, and no module
 * reference, pinned page or zero-copy registration may be left.
 *
 * Prints TAP (one test: the soak), a line per round, and at the end the rounds,
 * the requests served and the client ops per second; stops at the first loss.
 *
 *   furing-soak [--minutes N] [--seed S] [--inject-loss]
 *
 * --inject-loss changes a byte of an acknowledged file in the backing directory
 * after the first round: the soak must then fail (it proves the check).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <getopt.h>
#include <time.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include "furing_test.h"

#define MNT "/tmp/furing-soak-mnt"
#define BACK "/tmp/furing-soak-back"
#define FIO_LOG "/tmp/furing-soak-fio.log"
#define SRV_LOG "/tmp/furing-soak-srv.log"	/* the servers' stderr */
#define NENT 256		/* metadata journal slots */
#define MAXLIVE 160		/* files the churn keeps at most */
#define MAXSIZE 20000		/* a churn file's largest size */

static const struct mode {
	const char *name;
	const char *args[7];
} modes[] = {
	{ "classic", { "--no-uring" } },
	{ "ring", { NULL } },
	{ "bufring", { "--bufring" } },
	{ "bufring_2bufs", { "--bufring", "--bufs", "2" } },
	{ "pinned_headers", { "--bufring", "--pin-headers" } },
	{ "pinned_buffers", { "--bufring", "--pin-buffers" } },
	{ "pinned", { "--bufring", "--pin-headers", "--pin-buffers" } },
	{ "zero_copy", { "--zero-copy" } },
	{ "classes", { "--bufring", "--buf-class=4096x16", "--buf-class=1048576x2" } },
	{ "classes_strict", { "--bufring", "--pin-headers", "--pin-buffers", "--buf-class=4096x8",
			      "--buf-class=65536x4", "--buf-class=1048576x2",
			      "--buf-class-strict" } },
	{ "classes_zc", { "--zero-copy", "--buf-class=4096x16", "--buf-class=65536x4" } },
	{ "wb_ring", { "--writeback-cache" } },
	{ "wb_pinned", { "--writeback-cache", "--bufring", "--pin-headers", "--pin-buffers" } },
	{ "wb_zero_copy", { "--writeback-cache", "--zero-copy" } },
};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

enum { FREE, EXISTS, UNSURE };

/* The churn's journal, shared with the soak: what the server acknowledged. */
struct journal {
	struct { int state; unsigned int size, seed; } ent[NENT];
	long ops;		/* completed client operations */
	double when;		/* when the churn ended */
	int err;		/* the errno that ended the churn (0: a short read or write) */
	int bad;		/* the churn read back wrong data */
	char why[200];
};

static struct journal *jn;
static unsigned long long rng;

static unsigned int rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng >> 11;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000 };

	nanosleep(&ts, NULL);
}

static void pattern(char *buf, unsigned int size, unsigned int seed)
{
	unsigned int i;

	for (i = 0; i < size; i++) {
		seed = seed * 1103515245 + 12345;
		buf[i] = seed >> 16;
	}
}

enum { FILE_OK, FILE_FAILED, FILE_SHORT, FILE_WRONG };
static const char *const file_why[] = { "ok", "missing or unreadable", "short", "wrong" };

/*
 * Whether the file @dir/f<k> holds exactly what journal slot @k says: FILE_OK;
 * FILE_FAILED (open or read failed: errno says why), FILE_SHORT (fewer bytes
 * than written: a read the server's death cut short can do that too), or
 * FILE_WRONG (more bytes, or other ones: never right).
 */
static int file_check(const char *dir, int k)
{
	static char want[MAXSIZE], got[MAXSIZE + 1];
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/meta/f%d", dir, k);
	errno = 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return FILE_FAILED;
	n = read(fd, got, sizeof(got));
	close(fd);
	if (n < 0)
		return FILE_FAILED;
	if (n > (ssize_t)jn->ent[k].size)
		return FILE_WRONG;
	pattern(want, n, jn->ent[k].seed);
	if (memcmp(want, got, n))
		return FILE_WRONG;
	return n < (ssize_t)jn->ent[k].size ? FILE_SHORT : FILE_OK;
}

/*
 * The churn stops at its first error: the server is gone, or something is lost.
 * errno 0: a short read or write.
 */
static int churn_fail(int bad, const char *fmt, int k)
{
	jn->err = errno;
	jn->bad = bad;
	jn->when = now();
	snprintf(jn->why, sizeof(jn->why), fmt, k);
	return 1;
}

static int pick(int state)
{
	int i, k = rnd() % NENT;

	for (i = 0; i < NENT; i++, k = (k + 1) % NENT)
		if (jn->ent[k].state == state)
			return k;
	return -1;
}

/* The metadata churn (a child process): runs until an operation fails. */
static int churn(void)
{
	static char buf[MAXSIZE];
	char a[128], b[128];
	int k, j, fd, live, res;

	for (;;) {
		errno = 0;
		for (live = 0, k = 0; k < NENT; k++)
			live += jn->ent[k].state == EXISTS;
		switch (rnd() % 6) {
		case 0:
		case 1: /* create, write, fsync */
			if (live >= MAXLIVE || (k = pick(FREE)) < 0)
				continue;
			jn->ent[k].size = rnd() % MAXSIZE;
			jn->ent[k].seed = rnd();
			jn->ent[k].state = UNSURE;
			pattern(buf, jn->ent[k].size, jn->ent[k].seed);
			snprintf(a, sizeof(a), MNT "/meta/f%d", k);
			fd = open(a, O_CREAT | O_EXCL | O_WRONLY, 0644);
			if (fd < 0)
				return churn_fail(0, "create f%d", k);
			if (write(fd, buf, jn->ent[k].size) != (ssize_t)jn->ent[k].size ||
			    fsync(fd)) {
				close(fd);
				return churn_fail(0, "write f%d", k);
			}
			if (close(fd))
				return churn_fail(0, "close f%d", k);
			jn->ent[k].state = EXISTS;
			break;
		case 2: /* rename to a free name */
			if ((k = pick(EXISTS)) < 0 || (j = pick(FREE)) < 0)
				continue;
			jn->ent[k].state = jn->ent[j].state = UNSURE;
			snprintf(a, sizeof(a), MNT "/meta/f%d", k);
			snprintf(b, sizeof(b), MNT "/meta/f%d", j);
			if (rename(a, b))
				return churn_fail(0, "rename f%d", k);
			jn->ent[j].size = jn->ent[k].size;
			jn->ent[j].seed = jn->ent[k].seed;
			jn->ent[j].state = EXISTS;
			jn->ent[k].state = FREE;
			break;
		case 3: /* unlink */
			if (live < MAXLIVE / 2 || (k = pick(EXISTS)) < 0)
				continue;
			jn->ent[k].state = UNSURE;
			snprintf(a, sizeof(a), MNT "/meta/f%d", k);
			if (unlink(a))
				return churn_fail(0, "unlink f%d", k);
			jn->ent[k].state = FREE;
			break;
		case 4: /* read back */
			if ((k = pick(EXISTS)) < 0)
				continue;
			res = file_check(MNT, k);
			if (res == FILE_FAILED || res == FILE_SHORT)
				return churn_fail(0, "read f%d", k);
			if (res == FILE_WRONG)
				return churn_fail(1, "f%d read back wrong through the mount", k);
			break;
		case 5: /* a directory made and removed */
			snprintf(a, sizeof(a), MNT "/meta/d%u", rnd() % 4);
			if (mkdir(a, 0755) || rmdir(a))
				return churn_fail(0, "mkdir/rmdir %d", 0);
			break;
		}
		jn->ops++;
	}
}

/*
 * After the round, in the backing directory: every file acknowledged is there
 * with its data, none removed is; a file whose operation the server's death
 * interrupted is removed (either outcome was allowed). 0, or -1 (printed).
 */
static int check_backing(int round)
{
	char path[300];
	struct dirent *de;
	DIR *d;
	int k, res;

	for (k = 0; k < NENT; k++) {
		snprintf(path, sizeof(path), BACK "/meta/f%d", k);
		if (jn->ent[k].state == UNSURE) {
			unlink(path);
			jn->ent[k].state = FREE;
		} else if (jn->ent[k].state == EXISTS && (res = file_check(BACK, k))) {
			printf("# round %d: lost: f%d %s in the backing directory\n", round, k,
			       file_why[res]);
			return -1;
		} else if (jn->ent[k].state == FREE && access(path, F_OK) == 0) {
			printf("# round %d: f%d was removed but is in the backing directory\n",
			       round, k);
			return -1;
		}
	}
	/* Nothing else: a rename's source or a directory left over would show here. */
	d = opendir(BACK "/meta");
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' || (de->d_name[0] == 'f' &&
		    jn->ent[atoi(de->d_name + 1) % NENT].state == EXISTS))
			continue;
		if (de->d_name[0] == 'd') { /* a mkdir whose rmdir the death interrupted */
			snprintf(path, sizeof(path), BACK "/meta/%s", de->d_name);
			rmdir(path);
			continue;
		}
		printf("# round %d: unexpected %s in the backing directory\n", round, de->d_name);
		closedir(d);
		return -1;
	}
	if (d)
		closedir(d);
	return 0;
}

/* Starts fio's checker on @dir: job @name, 4 MiB (then NULL-terminated options); its pid. */
static pid_t fio_start(const char *dir, const char *name, int direct, ...)
{
	char name_opt[64], direct_opt[16];
	const char *opts[] = { name_opt, "--size=4m", "--ioengine=psync", direct_opt, NULL };
	va_list ap;
	pid_t pid;

	snprintf(name_opt, sizeof(name_opt), "--name=%s", name);
	snprintf(direct_opt, sizeof(direct_opt), "--direct=%d", direct);
	va_start(ap, direct);
	pid = furing_fio_verify(FIO_LOG, dir, opts, ap);
	va_end(ap);
	return pid;
}

/* fio's output says a block was wrong (not only that I/O failed). */
static int fio_saw_bad_block(void)
{
	static char out[65536];

	if (read_text(FIO_LOG, out, sizeof(out)) < 0)
		return 0;
	/* fio ends a job that found one with EILSEQ (err=84). */
	return strstr(out, "verify failed") || strstr(out, "bad magic") ||
	       strstr(out, "bad header") || strstr(out, "verify type mismatch") ||
	       strstr(out, "err=84");
}

/* The I/Os fio's log reports ("issued rwts: total=R,W,..."). */
static long fio_ios(void)
{
	static char out[65536];
	long r, w, n = 0;
	char *p;

	if (read_text(FIO_LOG, out, sizeof(out)) < 0)
		return 0;
	for (p = out; (p = strstr(p, "issued rwts: total=")); p++)
		if (sscanf(p, "issued rwts: total=%ld,%ld", &r, &w) == 2)
			n += r + w;
	return n;
}

static int fio_wait(pid_t pid)
{
	int status;

	return waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Waits up to @secs for child @pid; its status, or -1 after killing it (a hang). */
static int wait_or_kill(pid_t pid, int secs, int *status)
{
	int i;

	for (i = 0; i < secs * 20; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return 0;
		sleep_ms(50);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return -1;
}

static int expected_errno(int e)
{
	return e == ENOTCONN || e == ECONNABORTED || e == EIO;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "minutes", required_argument, NULL, 'm' },
		{ "seed", required_argument, NULL, 's' },
		{ "inject-loss", no_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	long requests = 0, ops = 0, classic, sent, kill_ms, max_kill_ms;
	unsigned long long seed;
	int minutes = 30, round, c, status, failed = 0, direct, prev_direct = 0, inject = 0;
	int hang_secs = furing_debug_kernel() ? 180 : 60;
	double start, deadline, t, t_kill;
	char name[96], prev[32] = "";
	pid_t srv, ch, fio;
	long id;

	rng = time(NULL) ^ getpid();
	while ((c = getopt_long(argc, argv, "m:s:", opts, NULL)) != -1) {
		if (c == 'm')
			minutes = atoi(optarg);
		else if (c == 's')
			rng = strtoull(optarg, NULL, 0);
		else if (c == 'l')
			inject = 1;
		else
			return 2;
	}
	rng |= 1;
	printf("TAP version 13\n1..1\n# furing-soak: %d minutes, seed %#llx\n", minutes, rng);
	fflush(stdout);
	jn = mmap(NULL, sizeof(*jn), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (jn == MAP_FAILED || furing_ensure_loaded()) {
		printf("not ok 1 soak: setup\n");
		return 1;
	}
	max_kill_ms = furing_debug_kernel() ? 8000 : 4000;
	c = open(SRV_LOG, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (c >= 0)
		dup2(c, 2);
	system("rm -rf " BACK);
	mkdir(BACK, 0755);
	mkdir(BACK "/meta", 0755);
	start = now();
	deadline = start + minutes * 60.0;
	seed = rng;
	/* At least one round; with --inject-loss one more, which must find the damage. */
	for (round = 0; !failed && (round <= inject || now() < deadline); round++) {
		const struct mode *m = &modes[round % NMODES];
		int abort_it = rnd() % 7 == 0;

		t = now();
		srv = furing_server_start(BACK, MNT, m->args[0], m->args[1], m->args[2],
					  m->args[3], m->args[4], m->args[5], m->args[6], NULL);
		id = furing_conn_id(MNT);
		if (srv < 0 || id < 0) {
			printf("# round %d (%s): the server did not start\n", round, m->name);
			failed = 1;
			break;
		}
		/* Nothing acknowledged before is lost, seen through the new server. */
		for (c = 0; c < NENT && !failed; c++)
			if (jn->ent[c].state == EXISTS && (status = file_check(MNT, c))) {
				printf("# round %d: lost: f%d %s through the mount\n", round, c,
				       file_why[status]);
				failed = 1;
			}
		if (!failed && prev[0]) {
			fio = fio_start(MNT, prev, prev_direct, "--verify_only", NULL);
			if (fio_wait(fio) != 0) {
				printf("# round %d: the last round's fio file does not verify\n", round);
				system("cat " FIO_LOG);
				failed = 1;
			}
			snprintf(name, sizeof(name), MNT "/%s.0.0", prev);
			unlink(name);
		}
		/* A file written and verified to the end: durable. */
		direct = rnd() % 2;
		snprintf(name, sizeof(name), "durable%d", round);
		fio = failed ? -1 : fio_start(MNT, name, direct, "--end_fsync=1", NULL);
		if (!failed && fio_wait(fio) != 0) {
			printf("# round %d (%s): fio failed with the server up\n", round, m->name);
			system("cat " FIO_LOG);
			failed = 1;
		}
		ops += fio_ios();
		if (failed) {
			kill(srv, SIGKILL);
			waitpid(srv, &status, 0);
			break;
		}
		/* Then the load, until the server dies. */
		jn->err = jn->bad = 0;
		jn->ops = 0;
		jn->when = 0;
		jn->why[0] = '\0';
		ch = fork();
		if (ch == 0) {
			/* Its own sequence, the same in a replay (--seed). */
			rng = (seed ^ (0x9e3779b97f4a7c15ULL * (round + 1))) | 1;
			_exit(churn());
		}
		fio = fio_start(MNT, "load", rnd() % 2, "--loops=100000", NULL);
		kill_ms = 200 + rnd() % max_kill_ms;
		sleep_ms(kill_ms);
		if (!furing_stats(id, &classic, &sent))
			requests += classic + sent;
		/* Neither client may have stopped while the server was up. */
		if (waitpid(fio, &c, WNOHANG) == fio) {
			printf("# round %d (%s): fio stopped with the server up\n", round, m->name);
			system("cat " FIO_LOG);
			failed = 1;
			fio = -1;
		}
		t_kill = now();
		snprintf(name, sizeof(name), "/sys/fs/fuse/connections/%ld/abort", id);
		if (!abort_it || write_text(name, "1")) {
			abort_it = 0;
			kill(srv, SIGKILL);
		}
		/* Every client ends, with an errno of a dead server, having seen no bad data. */
		if (wait_or_kill(ch, hang_secs, &status) ||
		    (fio > 0 && wait_or_kill(fio, hang_secs, &c))) {
			printf("# round %d (%s): a client hangs %d s after the server died\n",
			       round, m->name, hang_secs);
			failed = 1;
		} else if (!WIFEXITED(status) || WEXITSTATUS(status) != 1) {
			printf("# round %d (%s): the churn ended with status %#x\n", round, m->name,
			       status);
			failed = 1;
		} else if (jn->bad) {
			printf("# round %d (%s): %s\n", round, m->name, jn->why);
			failed = 1;
		} else if (jn->when < t_kill) {
			printf("# round %d (%s): %s: %s with the server up\n", round, m->name,
			       jn->why, jn->err ? strerror(jn->err) : "short");
			failed = 1;
		} else if (jn->err && !expected_errno(jn->err)) {
			printf("# round %d (%s): %s: %s\n", round, m->name, jn->why,
			       strerror(jn->err));
			failed = 1;
		} else if (fio_saw_bad_block()) {
			printf("# round %d (%s): fio read a bad block\n", round, m->name);
			system("cat " FIO_LOG);
			failed = 1;
		}
		ops += jn->ops + fio_ios();
		if (wait_or_kill(srv, hang_secs, &status)) {
			printf("# round %d (%s): the server did not end after an abort\n", round,
			       m->name);
			failed = 1;
		}
		for (c = 0; c < 200 && umount2(MNT, 0); c++)
			sleep_ms(50);
		if (c == 200) {
			printf("# round %d: umount: %s\n", round, strerror(errno));
			failed = 1;
			break;
		}
		/* Nothing left behind: module references, pins, registrations. */
		if (furing_wait_unused(30) || furing_pins() != 0 || furing_zc_live() != 0) {
			printf("# round %d (%s): left behind: refcnt busy %d, pins %ld, zero-copy %ld\n",
			       round, m->name, furing_wait_unused(1) != 0, furing_pins(),
			       furing_zc_live());
			failed = 1;
		}
		if (!failed && check_backing(round))
			failed = 1;
		if (!failed && inject && round == 0) {
			c = pick(EXISTS);
			snprintf(name, sizeof(name), BACK "/meta/f%d", c);
			if (c < 0 || truncate(name, jn->ent[c].size + 1)) {
				printf("# --inject-loss: no file to damage\n");
				failed = 1;
			} else {
				printf("# --inject-loss: f%d one byte longer in the backing directory\n", c);
			}
		}
		snprintf(prev, sizeof(prev), "durable%d", round);
		prev_direct = direct;
		printf("# round %d %-14s %s after %5ld ms, %5ld churn ops, %.1f s\n", round, m->name,
		       abort_it ? "aborted" : "killed ", kill_ms, jn->ops, now() - t);
		fflush(stdout);
	}
	if (failed)
		system("echo '# the servers, last lines:'; tail -n 20 " SRV_LOG " | sed 's/^/# /'");
	t = now() - start;
	printf("# %d rounds in %.0f s: %ld requests, %ld client ops, %.0f ops/s\n", round, t,
	       requests, ops, ops / t);
	printf("%s 1 soak: %d rounds, %ld requests, %.0f ops/s\n", failed ? "not ok" : "ok",
	       round, requests, ops / t);
	return failed;
}
