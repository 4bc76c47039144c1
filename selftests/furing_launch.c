// SPDX-License-Identifier: GPL-2.0
/*
 * furing-launch: runs an unmodified libfuse server on a furing mount.
 *
 *   furing-launch [-o OPTS] <mnt> <server> [args...]
 *
 * Opens /dev/furing, mounts it at <mnt> (fstype "furing", options
 * fd=N,rootmode=40000,user_id=<uid>,group_id=<gid>[,OPTS]) and runs <server>
 * with every argument "@fd" replaced by "/dev/fd/N": libfuse takes a
 * "/dev/fd/N" mountpoint as an fd whose mount someone else did (see
 * fuse_mnt_parse_fuse_fd()). Mount options the server would normally apply
 * itself (default_permissions, allow_other, max_read...) go in OPTS.
 *
 * The launcher keeps no copy of the fd, so the connection ends with the server.
 * When the server exits, the launcher detaches the mount (libfuse does not
 * unmount a /dev/fd/N mountpoint) and exits with the server's status;
 * SIGINT/SIGTERM are passed on to the server.
 *
 * Example (libfuse 3.18, io-uring on):
 *   furing-launch -o default_permissions /mnt \
 *       passthrough_hp --nopassthrough -o io_uring /srv @fd
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/wait.h>

static pid_t child;

static void pass_on(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static void usage(void)
{
	fprintf(stderr, "usage: furing-launch [-o OPTS] <mnt> <server> [args...]\n"
			"  runs <server> with \"@fd\" in its arguments replaced by /dev/fd/N,\n"
			"  N a /dev/furing fd mounted at <mnt>; unmounts when it exits\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *opts = NULL, *mnt;
	char fdpath[32], mopts[1024];
	struct sigaction sa = { .sa_handler = pass_on };
	int fd, status, i, c;

	while ((c = getopt(argc, argv, "+o:h")) != -1) {
		if (c == 'o')
			opts = optarg;
		else
			usage();
	}
	if (argc - optind < 2)
		usage();
	mnt = argv[optind];

	/* Not O_CLOEXEC: the server inherits it. */
	fd = open("/dev/furing", O_RDWR);
	if (fd < 0) {
		perror("furing-launch: /dev/furing");
		return 1;
	}
	snprintf(mopts, sizeof(mopts), "fd=%d,rootmode=40000,user_id=%u,group_id=%u%s%s",
		 fd, getuid(), getgid(), opts ? "," : "", opts ? opts : "");
	if (mount("furing", mnt, "furing", MS_NOSUID | MS_NODEV, mopts)) {
		fprintf(stderr, "furing-launch: mount %s (%s): %s\n", mnt, mopts, strerror(errno));
		return 1;
	}
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", fd);
	for (i = optind + 1; i < argc; i++) {
		if (!strcmp(argv[i], "@fd"))
			argv[i] = fdpath;
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	child = fork();
	if (child == 0) {
		execvp(argv[optind + 1], argv + optind + 1);
		fprintf(stderr, "furing-launch: %s: %s\n", argv[optind + 1], strerror(errno));
		_exit(127);
	}
	close(fd);
	if (child < 0) {
		perror("furing-launch: fork");
		umount2(mnt, MNT_DETACH);
		return 1;
	}
	while (waitpid(child, &status, 0) < 0) {
		if (errno != EINTR) {
			perror("furing-launch: waitpid");
			return 1;
		}
	}
	/* EINVAL: someone unmounted it already, which is how a server is stopped. */
	if (umount2(mnt, MNT_DETACH) && errno != EINVAL)
		fprintf(stderr, "furing-launch: umount %s: %s\n", mnt, strerror(errno));
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "furing-launch: server killed by signal %d\n", WTERMSIG(status));
	return 128 + WTERMSIG(status);
}
