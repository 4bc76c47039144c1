// SPDX-License-Identifier: GPL-2.0
/*
 * furing-server: the passthrough FUSE server of furing's tests.
 *
 * It serves <backing-dir> at <mnt> through /dev/furing (fstype "furing") or
 * the kernel's own /dev/fuse (fstype "fuse"), answering requests either with
 * read()/write() on the device fd ("classic", classic.c) or through io_uring
 * IORING_OP_URING_CMD ring entries (ring.c: REGISTER / COMMIT_AND_FETCH, basic
 * mode: the same bytes for furing and for Linux 7.3's FUSE io-uring, or with
 * --bufring furing's buffer-ring queues; zerocopy.c for --zero-copy). Every
 * request passes the fault knobs (fault.c) to the filesystem (passthrough.c).
 *
 * Threads:
 *  - main: mounts, answers FUSE_INIT, starts the others, waits for the
 *    unmount and prints per-transport request counts.
 *  - classic readers (one with io-uring, two without).
 *  - one thread per ring queue (ring.c).
 */
#include "server.h"
#include "../furing_ring.h"

struct options opt = {
	.dev = "/dev/furing",
	.depth = 4,
	.max_write = 1 << 20,
	.max_background = 16,
};

int dev_fd = -1;
uint32_t transport_open_flags;
size_t payload_size;
bool use_uring;
atomic_int failed;

/*
 * Runs one request; returns the reply: payload bytes, -errno, NO_REPLY, or
 * REPLY_PENDING (the transport replies once it moved the data). @via:
 * "classic" or "qN", for --debug.
 */
ssize_t handle(struct req *r, const char *via)
{
	size_t datalen = r->datalen;
	ssize_t ret;

	ret = fault_gate(r) ? fs_run(r) : -EINTR;
	if (opt.debug) {
		char res[32];

		if (ret == NO_REPLY)
			snprintf(res, sizeof(res), "no reply");
		else if (ret == REPLY_PENDING)
			snprintf(res, sizeof(res), "data moved by the transport");
		else if (ret < 0)
			snprintf(res, sizeof(res), "%s", strerrorname_np(-ret) ?: "?");
		else
			snprintf(res, sizeof(res), "%zd bytes", ret);
		fprintf(stderr, "furing-server: %-7s %s(%u) unique %" PRIu64 " node %" PRIu64
			" data %zu -> %s\n", via, fs_op_name(r->in.opcode), r->in.opcode,
			(uint64_t)r->in.unique, (uint64_t)r->in.nodeid, datalen, res);
	}
	return ret;
}

/* Number of CPUs in a cpulist ("0-3,5"); 0 when unreadable. */
static unsigned int cpulist_count(const char *path)
{
	char buf[4096], *p, *end;
	unsigned int count = 0;
	unsigned long a, b;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	for (p = buf; *p && *p != '\n'; p = end) {
		a = strtoul(p, &end, 10);
		if (end == p)
			return 0;
		b = a;
		if (*end == '-') {
			p = end + 1;
			b = strtoul(p, &end, 10);
			if (end == p || b < a)
				return 0;
		}
		count += b - a + 1;
		if (*end == ',')
			end++;
	}
	return count;
}

/* Reads FUSE_INIT and answers it. 0 or -errno. */
static int do_init(void)
{
	size_t bufsize = classic_bufsize();
	char *buf = malloc(bufsize);
	struct fuse_in_header *ih = (void *)buf;
	struct fuse_init_in *ii = (void *)(ih + 1);
	struct fuse_init_out io;
	uint64_t offered, want, flags;
	size_t outsize;
	ssize_t n;
	int err;

	if (!buf)
		return -ENOMEM;
	do {
		n = read(dev_fd, buf, bufsize);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		err = -errno;
		goto out;
	}
	err = -EPROTO;
	if ((size_t)n < sizeof(*ih) + 8 || ih->opcode != FUSE_INIT) {
		fprintf(stderr, "furing-server: expected FUSE_INIT, got opcode %u\n",
			(size_t)n >= sizeof(*ih) ? ih->opcode : 0);
		goto out;
	}
	if (ii->major != FUSE_KERNEL_VERSION) {
		fprintf(stderr, "furing-server: kernel speaks FUSE %u.%u\n", ii->major, ii->minor);
		classic_reply(ih->unique, -EPROTO, NULL);
		goto out;
	}
	offered = ii->flags;
	if ((size_t)n >= sizeof(*ih) + sizeof(*ii) && (offered & FUSE_INIT_EXT))
		offered |= (uint64_t)ii->flags2 << 32;
	/*
	 * No FUSE_PASSTHROUGH, and the writeback cache only when asked: every
	 * byte goes through the transport under test. FUSE_HAS_IO_URING_BUFPOOL
	 * is the kernel's word only (checked below, not asked for).
	 */
	want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_MAX_PAGES |
	       FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS |
	       FUSE_ASYNC_DIO | FUSE_INIT_EXT;
	if (!opt.no_uring)
		want |= FUSE_OVER_IO_URING;
	if (opt.writeback_cache)
		want |= FUSE_WRITEBACK_CACHE;
	flags = want & offered;
	use_uring = flags & FUSE_OVER_IO_URING;
	/* Linux 7.3's buffer pools (and its zero-copy, which needs one) */
	if (opt.bufpool && use_uring && !(offered & FUSE_HAS_IO_URING_BUFPOOL)) {
		fprintf(stderr, "furing-server: --bufpool: the kernel offers no "
			"FUSE_HAS_IO_URING_BUFPOOL\n");
		classic_reply(ih->unique, -EPROTO, NULL);
		goto out;
	}

	io = furing_init_out(ii, flags, opt.max_write, opt.max_background);
	if (io.minor < 5)
		outsize = FUSE_COMPAT_INIT_OUT_SIZE;
	else if (io.minor < 23)
		outsize = FUSE_COMPAT_22_INIT_OUT_SIZE;
	else
		outsize = sizeof(io);
	if (opt.debug)
		fprintf(stderr, "furing-server: INIT: kernel %u.%u flags %#" PRIx64
			", reply 7.%u flags %#" PRIx64 " max_write %u max_pages %u\n",
			ii->major, ii->minor, offered, io.minor, flags, io.max_write,
			io.max_pages);
	err = classic_reply(ih->unique, outsize, &io);
	if (err)
		fprintf(stderr, "furing-server: INIT reply: %s\n", strerror(-err));
out:
	free(buf);
	return err;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: furing-server [options] <backing-dir> <mnt>\n"
"\n"
"Mounts a FUSE filesystem at <mnt> that passes everything through to\n"
"<backing-dir>, serves it until it is unmounted, then exits 0.\n"
"\n"
"  --dev PATH          FUSE device: /dev/furing (default; fstype \"furing\") or\n"
"                      /dev/fuse (fstype \"fuse\")\n"
"  --no-uring          do not ask for FUSE_OVER_IO_URING: read()/write() only\n"
"  --queues N          io-uring queues, one thread each, queue i pinned to CPU i\n"
"                      (default: the number of possible CPUs; the kernel waits\n"
"                      for a queue on every possible CPU before using the ring)\n"
"  --depth N           ring entries per queue (default 4)\n"
"  --bufring           buffer-ring queues (FURING_URING_BUFRING; /dev/furing):\n"
"                      one headers region and one payload region per queue,\n"
"                      a payload buffer picked per request\n"
"  --pin-headers       the kernel pins the headers region\n"
"                      (FURING_URING_PINNED_HEADERS; needs --bufring)\n"
"  --pin-buffers       the kernel pins the payload region\n"
"                      (FURING_URING_PINNED_BUFFERS; needs --bufring)\n"
"  --bufs N            payload buffers per queue (needs --bufring or --bufpool;\n"
"                      default: --depth)\n"
"  --buf-size BYTES    size of a payload buffer (needs --bufring; default: the\n"
"                      largest request, max(max_write, 8192) rounded up to 4096)\n"
"  --buf-class SIZExN  a class of N payload buffers of SIZE bytes, in a region of\n"
"                      its own (FURING_URING_BUF_CLASSES; needs --bufring, not\n"
"                      with --bufs or --buf-size): 1 to 4 times, sizes strictly\n"
"                      increasing; the largest must hold the largest request\n"
"                      (--zero-copy: every request but a zero-copied READ or\n"
"                      WRITE). A request takes the smallest class that holds it,\n"
"                      or a larger one when that has no buffer free\n"
"  --buf-class-strict  a request takes its own class only, and waits for it\n"
"                      (FURING_URING_BUF_CLASSES_STRICT; needs --buf-class)\n"
"  --zero-copy         zero-copy queues (FURING_URING_ZERO_COPY; implies --bufring\n"
"                      --pin-headers --pin-buffers; needs CAP_SYS_ADMIN): the\n"
"                      data pages of READ and WRITE are registered with the\n"
"                      queue's io_uring and moved with READ_FIXED / WRITE_FIXED;\n"
"                      --buf-size may then be below max_write. On /dev/fuse:\n"
"                      Linux 7.3's (ADD_QUEUE with FUSE_URING_ZERO_COPY, a\n"
"                      bufpool, FOPEN_IO_URING_ZERO_COPY on every open)\n"
"  --bufpool           Linux 7.3's buffer pools (/dev/fuse; FUSE_HAS_IO_URING_BUFPOOL):\n"
"                      ADD_QUEUE, then ADD_BUFPOOL with --bufs buffers of the\n"
"                      largest payload per queue; entries register no payload\n"
"  --bufpool-fixed     the same, the pool registered as an io_uring fixed buffer\n"
"                      (IORING_URING_CMD_FIXED): pinned once, not per request\n"
"  --zc-no-touch       with --zero-copy: no READ_FIXED / WRITE_FIXED; a zero-\n"
"                      copied READ answers the requested size (data unspecified),\n"
"                      a WRITE the requested size as written\n"
"  --writeback-cache   FUSE_WRITEBACK_CACHE: the kernel caches writes and reads a\n"
"                      page before a partial write to it\n"
"  --crash-after N     SIGKILL itself on receiving request N+1, before replying\n"
"                      (INIT, FORGET, BATCH_FORGET and INTERRUPT not counted)\n"
"  --delay-ms N        wait N ms before running each request (an interrupted one\n"
"                      then fails with EINTR)\n"
"  --max-write BYTES   max_write of FUSE_INIT (default 1048576)\n"
"  --max-read BYTES    add max_read=BYTES to the mount options\n"
"  --max-background N  FUSE_INIT reply's max_background (default 16; the\n"
"                      congestion threshold is 3/4 of it)\n"
"  --stats PATH        write the exit line to PATH too\n"
"  --debug             log every request to stderr\n"
"  -h, --help          this text\n"
"\n"
"Prints \"furing-server: ready\" once INIT is answered and the ring entries\n"
"are registered (with the buffer classes, if any), and the number of requests\n"
"served per transport at exit (per queue, with \" zc N\" for N zero-copied\n"
"requests; with --buf-class then \"; classes SIZExN used M, ...\": M requests\n"
"got a buffer of that class, over every queue).\n");
}

static unsigned long parse_num(const char *name, const char *s, unsigned long min,
			       unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
		fprintf(stderr, "furing-server: --%s: expected a number in %lu..%lu, not '%s'\n",
			name, min, max, s);
		exit(2);
	}
	return v;
}

/*
 * --buf-class SIZExN: appends a class of N buffers of SIZE bytes; at most
 * FURING_URING_MAX_BUF_CLASSES, each larger than the one before.
 */
static void parse_class(const char *s)
{
	char size[32];
	const char *x = strrchr(s, 'x');
	unsigned int k = opt.nr_classes;

	if (!x || x == s || (size_t)(x - s) >= sizeof(size)) {
		fprintf(stderr, "furing-server: --buf-class: expected SIZExN, not '%s'\n", s);
		exit(2);
	}
	if (k == FURING_URING_MAX_BUF_CLASSES) {
		fprintf(stderr, "furing-server: --buf-class: at most %d classes\n",
			FURING_URING_MAX_BUF_CLASSES);
		exit(2);
	}
	memcpy(size, s, x - s);
	size[x - s] = '\0';
	opt.class_size[k] = parse_num("buf-class", size, 1, 1U << 30);
	opt.class_bufs[k] = parse_num("buf-class", x + 1, 1, 65535);
	if (k && opt.class_size[k] <= opt.class_size[k - 1]) {
		fprintf(stderr, "furing-server: --buf-class: %u bytes after %u: the sizes must "
			"increase\n", opt.class_size[k], opt.class_size[k - 1]);
		exit(2);
	}
	opt.nr_classes++;
}

/* Whether the device is the kernel's own /dev/fuse (fstype "fuse"). */
static bool on_fuse_dev(void)
{
	const char *base = strrchr(opt.dev, '/');

	return !strcmp(base ? base + 1 : opt.dev, "fuse");
}

static void parse_args(int argc, char **argv)
{
	enum { O_DEV = 256, O_NO_URING, O_QUEUES, O_DEPTH, O_CRASH, O_DELAY, O_MAX_WRITE,
	       O_MAX_READ, O_MAX_BG, O_DEBUG, O_BUFRING, O_PIN_HEADERS, O_PIN_BUFFERS, O_BUFS,
	       O_BUF_SIZE, O_ZERO_COPY, O_ZC_NO_TOUCH, O_WB_CACHE, O_BUFPOOL, O_BUFPOOL_FIXED,
	       O_STATS, O_BUF_CLASS, O_BUF_CLASS_STRICT };
	static const struct option lopts[] = {
		{ "dev", required_argument, NULL, O_DEV },
		{ "no-uring", no_argument, NULL, O_NO_URING },
		{ "queues", required_argument, NULL, O_QUEUES },
		{ "depth", required_argument, NULL, O_DEPTH },
		{ "bufring", no_argument, NULL, O_BUFRING },
		{ "pin-headers", no_argument, NULL, O_PIN_HEADERS },
		{ "pin-buffers", no_argument, NULL, O_PIN_BUFFERS },
		{ "bufs", required_argument, NULL, O_BUFS },
		{ "buf-size", required_argument, NULL, O_BUF_SIZE },
		{ "buf-class", required_argument, NULL, O_BUF_CLASS },
		{ "buf-class-strict", no_argument, NULL, O_BUF_CLASS_STRICT },
		{ "zero-copy", no_argument, NULL, O_ZERO_COPY },
		{ "zc-no-touch", no_argument, NULL, O_ZC_NO_TOUCH },
		{ "writeback-cache", no_argument, NULL, O_WB_CACHE },
		{ "bufpool", no_argument, NULL, O_BUFPOOL },
		{ "bufpool-fixed", no_argument, NULL, O_BUFPOOL_FIXED },
		{ "stats", required_argument, NULL, O_STATS },
		{ "crash-after", required_argument, NULL, O_CRASH },
		{ "delay-ms", required_argument, NULL, O_DELAY },
		{ "max-write", required_argument, NULL, O_MAX_WRITE },
		{ "max-read", required_argument, NULL, O_MAX_READ },
		{ "max-background", required_argument, NULL, O_MAX_BG },
		{ "debug", no_argument, NULL, O_DEBUG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t flags = 0;
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case O_DEV:
			opt.dev = optarg;
			break;
		case O_NO_URING:
			opt.no_uring = true;
			break;
		case O_QUEUES:
			opt.queues = parse_num("queues", optarg, 1, CPU_SETSIZE);
			break;
		case O_DEPTH:
			opt.depth = parse_num("depth", optarg, 1, FURING_URING_MAX_QUEUE_DEPTH);
			break;
		case O_BUFRING:
			flags |= FURING_URING_BUFRING;
			break;
		case O_PIN_HEADERS:
			flags |= FURING_URING_PINNED_HEADERS;
			break;
		case O_PIN_BUFFERS:
			flags |= FURING_URING_PINNED_BUFFERS;
			break;
		case O_BUFS:
			opt.bufs = parse_num("bufs", optarg, 1, 65535);
			break;
		case O_BUF_SIZE:
			opt.buf_size = parse_num("buf-size", optarg, 1, 1U << 30);
			break;
		case O_BUF_CLASS:
			parse_class(optarg);
			flags |= FURING_URING_BUF_CLASSES;
			break;
		case O_BUF_CLASS_STRICT:
			flags |= FURING_URING_BUF_CLASSES_STRICT;
			break;
		case O_ZERO_COPY:
			flags |= FURING_URING_BUFRING | FURING_URING_PINNED_HEADERS |
				 FURING_URING_PINNED_BUFFERS | FURING_URING_ZERO_COPY;
			break;
		case O_ZC_NO_TOUCH:
			opt.zc_no_touch = true;
			break;
		case O_WB_CACHE:
			opt.writeback_cache = true;
			break;
		case O_BUFPOOL:
			opt.bufpool = MAX(opt.bufpool, (unsigned int)POOL_PLAIN);
			break;
		case O_BUFPOOL_FIXED:
			opt.bufpool = POOL_FIXED;
			break;
		case O_STATS:
			opt.stats = optarg;
			break;
		case O_CRASH:
			opt.crash_after = parse_num("crash-after", optarg, 0, ULONG_MAX);
			break;
		case O_DELAY:
			opt.delay_ms = parse_num("delay-ms", optarg, 0, 3600 * 1000);
			break;
		case O_MAX_WRITE:
			opt.max_write = parse_num("max-write", optarg, 4096, 256 << 20);
			break;
		case O_MAX_BG:
			opt.max_background = parse_num("max-background", optarg, 1, 65535);
			break;
		case O_MAX_READ:
			opt.max_read = parse_num("max-read", optarg, 1, UINT_MAX);
			break;
		case O_DEBUG:
			opt.debug = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (on_fuse_dev() && (flags & FURING_URING_BUF_CLASSES)) {
		fprintf(stderr, "furing-server: --buf-class is furing's, on /dev/furing\n");
		exit(2);
	}
	/* On /dev/fuse, --zero-copy is Linux 7.3's: a zero-copy queue with a buffer pool. */
	if (on_fuse_dev() && (flags & FURING_URING_ZERO_COPY)) {
		flags = 0;
		opt.fuse_zero_copy = true;
		transport_open_flags |= FOPEN_IO_URING_ZERO_COPY;
		if (!opt.bufpool)
			opt.bufpool = POOL_PLAIN;
	}
	if (opt.bufpool && !on_fuse_dev()) {
		fprintf(stderr, "furing-server: --bufpool and --bufpool-fixed are Linux 7.3's, on /dev/fuse\n");
		exit(2);
	}
	if ((flags & FURING_URING_BUFRING) && on_fuse_dev()) {
		fprintf(stderr, "furing-server: --bufring is furing's, on /dev/furing\n");
		exit(2);
	}
	if (opt.bufpool && opt.no_uring) {
		fprintf(stderr, "furing-server: --bufpool and --no-uring exclude each other\n");
		exit(2);
	}
	if (opt.zc_no_touch && !(flags & FURING_URING_ZERO_COPY) && !opt.fuse_zero_copy) {
		fprintf(stderr, "furing-server: --zc-no-touch needs --zero-copy\n");
		exit(2);
	}
	if ((flags & FURING_URING_ZERO_COPY) && opt.no_uring) {
		fprintf(stderr, "furing-server: --zero-copy and --no-uring exclude each other\n");
		exit(2);
	}
	if ((flags & FURING_URING_BUF_CLASSES_STRICT) && !(flags & FURING_URING_BUF_CLASSES)) {
		fprintf(stderr, "furing-server: --buf-class-strict needs --buf-class\n");
		exit(2);
	}
	if ((flags & FURING_URING_BUF_CLASSES) && (opt.bufs || opt.buf_size)) {
		fprintf(stderr, "furing-server: --buf-class and %s exclude each other\n",
			opt.bufs ? "--bufs" : "--buf-size");
		exit(2);
	}
	if (!(flags & FURING_URING_BUFRING)) {
		const char *what = flags & FURING_URING_PINNED_HEADERS ? "--pin-headers" :
				   flags & FURING_URING_PINNED_BUFFERS ? "--pin-buffers" :
				   flags & FURING_URING_BUF_CLASSES ? "--buf-class" :
				   opt.bufs && !opt.bufpool ? "--bufs" :
				   opt.buf_size ? "--buf-size" : NULL;

		if (what) {
			fprintf(stderr, "furing-server: %s needs --bufring\n", what);
			exit(2);
		}
	} else if (opt.no_uring) {
		fprintf(stderr, "furing-server: --bufring and --no-uring exclude each other\n");
		exit(2);
	}
	opt.ring_flags = flags;
	if ((flags || opt.bufpool) && !opt.bufs && !opt.nr_classes)
		opt.bufs = opt.depth;
	/*
	 * 7.3 sizes a pool buffer max(8192, max_write, max_pages pages), its max_pages
	 * capped at 256: a max_write of whole pages up to 1 MiB makes that the
	 * server's payload_size. The pool's length and offsets are 32-bit.
	 */
	if (opt.bufpool && (opt.max_write % 4096 || opt.max_write > (1U << 20))) {
		fprintf(stderr, "furing-server: --bufpool: --max-write must be whole pages, at most 1 MiB\n");
		exit(2);
	}
	if (opt.bufpool && (uint64_t)opt.bufs * MAX(opt.max_write, 8192U) > UINT32_MAX) {
		fprintf(stderr, "furing-server: --bufpool: --bufs too large for a 32-bit pool\n");
		exit(2);
	}
	if (argc - optind != 2) {
		usage(stderr);
		exit(2);
	}
	opt.backing = argv[optind];
	opt.mnt = argv[optind + 1];
}

static int do_mount(void)
{
	const char *fstype = on_fuse_dev() ? "fuse" : "furing";
	char opts[256];
	int len;

	len = snprintf(opts, sizeof(opts),
		       "fd=%d,rootmode=40000,user_id=%u,group_id=%u,allow_other,default_permissions",
		       dev_fd, getuid(), getgid());
	if (opt.max_read)
		snprintf(opts + len, sizeof(opts) - len, ",max_read=%u", opt.max_read);
	if (mount("furing-server", opt.mnt, fstype, 0, opts)) {
		fprintf(stderr, "furing-server: mount -t %s -o %s furing-server %s: %s\n", fstype,
			opts, opt.mnt, strerror(errno));
		return -1;
	}
	return 0;
}


/* The payload buffers of a bufring queue: "N buffers of S bytes", or its classes. */
static const char *classes_text(void)
{
	static char text[256];
	unsigned int k;
	int len;

	if (!(opt.ring_flags & FURING_URING_BUF_CLASSES)) {
		snprintf(text, sizeof(text), "%u buffers of %u bytes", opt.bufs, opt.buf_size);
		return text;
	}
	len = snprintf(text, sizeof(text), "buffer classes");
	for (k = 0; k < opt.nr_classes; k++)
		len += snprintf(text + len, sizeof(text) - len, " %ux%u", opt.class_size[k],
				opt.class_bufs[k]);
	if (opt.ring_flags & FURING_URING_BUF_CLASSES_STRICT)
		snprintf(text + len, sizeof(text) - len, " (strict)");
	return text;
}

/* The exit line: requests per transport and queue, interrupts, nodes left. */
static void print_exit_line(FILE *f, unsigned long ring_total)
{
	fprintf(f, "furing-server: exit: %lu requests: classic %lu, ring %lu",
		atomic_load(&nr_classic) + ring_total, atomic_load(&nr_classic), ring_total);
	if (use_uring)
		ring_print_stats(f);
	fprintf(f, "; %lu interrupts; %lu nodes left\n", fault_interrupts(), fs_nodes_left());
	fflush(f);
}

int main(int argc, char **argv)
{
	pthread_t classic[2];
	unsigned int nr_classic_threads, i;
	unsigned long ring_total = 0;
	bool classes;
	int err;

	parse_args(argc, argv);
	/* a reader of the ready line may go away; the exit line must not kill us */
	signal(SIGPIPE, SIG_IGN);
	payload_size = MAX(FUSE_MIN_READ_BUFFER, opt.max_write);
	payload_size = MAX(payload_size, ((opt.max_write + 4095) / 4096) * 4096UL);
	if (opt.ring_flags && !opt.nr_classes) {
		/* without --buf-class: one class, --bufs buffers of --buf-size */
		if (!opt.buf_size)
			opt.buf_size = (payload_size + 4095) / 4096 * 4096;
		opt.nr_classes = 1;
		opt.class_size[0] = opt.buf_size;
		opt.class_bufs[0] = opt.bufs;
	}

	if (fs_open_root(opt.backing))
		return 1;
	dev_fd = open(opt.dev, O_RDWR | O_CLOEXEC);
	if (dev_fd < 0) {
		fprintf(stderr, "furing-server: %s: %s\n", opt.dev, strerror(errno));
		return 1;
	}
	if (do_mount())
		return 1;
	err = do_init();
	if (err) {
		fprintf(stderr, "furing-server: FUSE_INIT failed: %s\n", strerror(-err));
		umount2(opt.mnt, MNT_DETACH);
		return 1;
	}

	if ((opt.ring_flags || opt.bufpool) && !use_uring)
		fprintf(stderr, "furing-server: %s: no FUSE_OVER_IO_URING from the kernel: "
			"read()/write() only\n", opt.bufpool ? "--bufpool" : "--bufring");
	nr_classic_threads = use_uring ? 1 : 2;
	for (i = 0; i < nr_classic_threads; i++) {
		err = pthread_create(&classic[i], NULL, classic_thread, NULL);
		if (err) {
			fprintf(stderr, "furing-server: pthread_create: %s\n", strerror(err));
			return 1;
		}
	}

	if (use_uring) {
		unsigned int possible = cpulist_count("/sys/devices/system/cpu/possible");

		if (!possible)
			possible = sysconf(_SC_NPROCESSORS_CONF);
		if (opt.bufpool)
			fprintf(stderr, "furing-server: 7.3 bufpool%s%s%s: %u entries, %u buffers of "
				"%zu bytes per queue\n",
				opt.bufpool == POOL_FIXED ? " (fixed)" : "",
				opt.fuse_zero_copy ? ", zero-copy" : "",
				opt.zc_no_touch ? " (no touch)" : "", opt.depth, opt.bufs,
				payload_size);
		if (opt.ring_flags)
			fprintf(stderr, "furing-server: bufring%s%s%s%s: %u entries, %s per queue\n",
				opt.ring_flags & FURING_URING_PINNED_HEADERS ? ", pinned headers" : "",
				opt.ring_flags & FURING_URING_PINNED_BUFFERS ? ", pinned buffers" : "",
				opt.ring_flags & FURING_URING_ZERO_COPY ? ", zero-copy" : "",
				opt.zc_no_touch ? " (no touch)" : "", opt.depth, classes_text());
		if (!opt.queues)
			opt.queues = possible;
		else if (opt.queues < possible)
			fprintf(stderr, "furing-server: %u queues for %u possible CPUs: Linux's "
				"FUSE io-uring stays unused until every CPU has a queue\n",
				opt.queues, possible);
		if (ring_start()) {
			umount2(opt.mnt, MNT_DETACH);
			return 1;
		}
	}
	classes = use_uring && (opt.ring_flags & FURING_URING_BUF_CLASSES);
	printf("furing-server: ready%s%s\n", classes ? ": " : "", classes ? classes_text() : "");
	fflush(stdout);

	for (i = 0; i < nr_classic_threads; i++)
		pthread_join(classic[i], NULL);
	if (use_uring) {
		ring_join();
		ring_total = ring_served();
	}

	print_exit_line(stdout, ring_total);
	if (opt.stats) {
		FILE *f = fopen(opt.stats, "w");

		if (f) {
			print_exit_line(f, ring_total);
			fclose(f);
		}
	}
	close(dev_fd);
	return atomic_load(&failed) ? 1 : 0;
}
