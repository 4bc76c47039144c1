// SPDX-License-Identifier: GPL-2.0
/*
 * Whole connections, over and over: mount/serve/umount cycles with
 * furing-server leave nothing behind (module unloads, pins come back), and
 * rmmod right after an umount or an abort under load finds no furing code
 * still running.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include "furing_test.h"
#include <linux/furing.h>
#include "kselftest_harness.h"

#define MNT "/tmp/furing-cycles-mnt"
#define BACK "/tmp/furing-cycles-back"

/*
 * 50 mount/serve/umount cycles with furing-server over the ring leave nothing:
 * every server exits 0 and the module unloads (each connection holds it);
 * the debug kernel's final kmemleak scan covers the memory.
 */
FIXTURE(cycles) {};
FIXTURE_SETUP(cycles) {}
FIXTURE_TEARDOWN(cycles) { umount2(MNT, MNT_DETACH); }

/* @n mount/serve/umount cycles of furing-server with @mode (NULL-terminated options). */
static void serve_cycles(struct __test_metadata *_metadata, int n, const char *a0,
			 const char *a1, const char *a2)
{
	long classic, sent;
	int i, status, fd;
	pid_t pid;

	for (i = 0; i < n; i++) {
		pid = furing_server_start(BACK, MNT, "--depth=2", a0, a1, a2, NULL);
		ASSERT_LT(0, pid);
		fd = open(MNT "/cycle", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		ASSERT_LE(0, fd);
		ASSERT_EQ(5, write(fd, "cycle", 5));
		close(fd);
		/* This connection's statistics, though the last one had the same id. */
		ASSERT_EQ(0, furing_stats(furing_conn_id(MNT), &classic, &sent));
		ASSERT_LT(0, sent);
		ASSERT_EQ(0, umount2(MNT, 0));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			TH_LOG("cycle %d: server status %#x", i, status);
		}
	}
}

TEST_F_TIMEOUT(cycles, mount_serve_umount, 600)
{
	ASSERT_EQ(0, furing_ensure_loaded());
	serve_cycles(_metadata, 50, NULL, NULL, NULL);
	EXPECT_EQ(0, furing_unload());
	EXPECT_EQ(0, furing_load());
}

/* The same with pinned buffer rings: every pin goes back, 20 times over. */
TEST_F_TIMEOUT(cycles, pinned_mount_serve_umount, 600)
{
	long pins;

	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_EQ(0, furing_wait_unused(10));
	pins = furing_pins();
	ASSERT_LE(0, pins);
	serve_cycles(_metadata, 20, "--bufring", "--pin-headers", "--pin-buffers");
	EXPECT_EQ(0, furing_wait_unused(10));
	EXPECT_EQ(pins, furing_pins());
	EXPECT_EQ(0, furing_unload());
	EXPECT_EQ(0, furing_load());
}

/* Writes files on the mount until it fails (the connection went). */
static void client_load(void)
{
	char buf[65536];
	int i, fd;

	memset(buf, 'l', sizeof(buf));
	for (i = 0;; i++) {
		fd = open(MNT "/load", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, buf, sizeof(buf)) != sizeof(buf))
			_exit(0);
		close(fd);
	}
}

/* Unloads furing as soon as nothing holds it (up to 10 s); 0 or -errno. */
static int unload_asap(void)
{
	int i, ret = -EBUSY;

	for (i = 0; i < 10000 && ret; i++) {
		ret = furing_unload();
		if (ret == -EAGAIN || ret == -EBUSY || ret == -EWOULDBLOCK)
			usleep(1000);
		else if (ret)
			break;
	}
	return ret;
}

/*
 * rmmod the moment the last reference goes, after an umount and after a
 * fusectl abort, both under client load, 100 rounds: the module's last code
 * (the abort work, the connection's release, zero-copy releases) has run by
 * then, or a splat shows it did not.
 */
TEST_F_TIMEOUT(cycles, rmmod_right_after_teardown, 900)
{
	char path[128];
	int i, status;
	pid_t srv, cl;
	long id;

	ASSERT_EQ(0, furing_ensure_loaded());
	for (i = 0; i < 100; i++) {
		srv = furing_server_start(BACK, MNT, "--depth=2", i % 4 == 3 ? "--zero-copy" : NULL,
					  NULL);
		ASSERT_LT(0, srv);
		id = furing_conn_id(MNT);
		ASSERT_LE(0, id);
		cl = fork();
		ASSERT_LE(0, cl);
		if (cl == 0)
			client_load();
		usleep(20000);
		if (i % 2) {
			/* The abort fails the client's next write: it exits by itself. */
			snprintf(path, sizeof(path), "/sys/fs/fuse/connections/%ld/abort", id);
			ASSERT_EQ(0, write_text(path, "1"));
		} else {
			kill(cl, SIGKILL);
		}
		ASSERT_EQ(cl, waitpid(cl, &status, 0));
		ASSERT_EQ(0, umount2(MNT, 0));
		ASSERT_EQ(srv, waitpid(srv, &status, 0));
		ASSERT_EQ(0, unload_asap()) {
			TH_LOG("round %d (%s)", i, i % 2 ? "abort" : "umount");
		}
		ASSERT_EQ(0, furing_load());
	}
}

TEST_HARNESS_MAIN
