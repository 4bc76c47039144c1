// SPDX-License-Identifier: GPL-2.0
/*
 * furing mounts over the classic path: FUSE_INIT offers io-uring, requests
 * flow over read()/write() on /dev/furing, and every way a mount ends (umount,
 * server close, fusectl abort) leaves nothing hung; rmmod waits for all of it.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <sys/sysmacros.h>
#include "furing_test.h"
#include "furing_ring.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-mount-test"

/* Reads one request into @buf; returns its header or NULL (errno set). */
static struct fuse_in_header *read_req(int fd, char *buf, size_t size)
{
	ssize_t n = read(fd, buf, size);

	if (n < (ssize_t)sizeof(struct fuse_in_header))
		return NULL;
	return (struct fuse_in_header *)buf;
}

static char reqbuf[1 << 20 | 1 << 12];

FIXTURE(mnt) {
	int fd;
	struct fuse_init_in init;
};

FIXTURE_SETUP(mnt)
{
	struct fuse_in_header *ih;

	ASSERT_EQ(0, furing_ensure_loaded());
	self->fd = furing_open_and_mount(MNT);
	ASSERT_LE(0, self->fd);
	ih = read_req(self->fd, reqbuf, sizeof(reqbuf));
	ASSERT_NE(NULL, ih);
	ASSERT_EQ(FUSE_INIT, ih->opcode);
	memcpy(&self->init, ih + 1, sizeof(self->init));
}

FIXTURE_TEARDOWN(mnt)
{
	umount2(MNT, MNT_DETACH);
	if (self->fd >= 0)
		close(self->fd);
}


/* Serves one request on @fd: GETATTR of the root; anything else gets ENOSYS. */
struct served {
	int fd;
	int count;
};

static void *serve_one(void *arg)
{
	struct served *s = arg;
	struct fuse_in_header *ih = read_req(s->fd, reqbuf, sizeof(reqbuf));
	struct fuse_attr_out ao = {
		.attr_valid = 1000,
		.attr = { .ino = 1, .mode = S_IFDIR | 0755, .nlink = 2 },
	};

	if (!ih)
		return NULL;
	s->count++;
	if (ih->opcode == FUSE_GETATTR)
		furing_reply(s->fd, ih->unique, 0, &ao, sizeof(ao));
	else
		furing_reply(s->fd, ih->unique, -ENOSYS, NULL, 0);
	return NULL;
}

/*
 * The connection's fusectl directory, named after the superblock's device
 * number (from /proc/self/mountinfo: a stat() of the mount would be a request).
 */
static void conn_dir(char *buf, size_t size)
{
	unsigned int major, minor;
	char line[512], mnt[256];
	FILE *f = fopen("/proc/self/mountinfo", "r");

	buf[0] = '\0';
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*u %*u %u:%u %*s %255s", &major, &minor, mnt) == 3 &&
		    !strcmp(mnt, MNT)) {
			/* The kernel's dev_t encoding: MKDEV(major, minor). */
			snprintf(buf, size, "/sys/fs/fuse/connections/%u", major << 20 | minor);
			break;
		}
	}
	fclose(f);
}

TEST_F(mnt, init_offers_io_uring)
{
	EXPECT_EQ(FUSE_KERNEL_VERSION, self->init.major);
	EXPECT_TRUE(self->init.flags & FUSE_INIT_EXT);
	/* io-uring is offered; 7.3's bufpools (a different design) are not. */
	EXPECT_TRUE(self->init.flags2 & (FUSE_OVER_IO_URING >> 32));
	EXPECT_FALSE(self->init.flags2 & (FUSE_HAS_IO_URING_BUFPOOL >> 32));
}

TEST_F(mnt, classic_requests_flow)
{
	struct served s = { .fd = self->fd };
	struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;
	char dir[96], path[128], buf[32];
	long classic, sent, id;
	pthread_t th;
	struct stat st;

	ASSERT_EQ(0, furing_answer_init(self->fd, &self->init, ih->unique, 1, 1 << 20));
	ASSERT_EQ(0, pthread_create(&th, NULL, serve_one, &s));
	ASSERT_EQ(0, stat(MNT, &st));
	pthread_join(th, NULL);
	EXPECT_EQ(1, s.count);
	EXPECT_TRUE(S_ISDIR(st.st_mode));
	EXPECT_EQ(1, st.st_ino);
	/* The connection is registered in fusectl like any FUSE connection. */
	conn_dir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/waiting", dir);
	ASSERT_LT(0, read_text(path, buf, sizeof(buf)));
	EXPECT_EQ(0, atoi(buf));
	/* debugfs: INIT and GETATTR went the classic way, nothing over the ring. */
	ASSERT_EQ(0, furing_stats(furing_conn_id(MNT), &classic, &sent));
	EXPECT_EQ(2, classic);
	EXPECT_EQ(0, sent);
	id = furing_conn_id(MNT);
	EXPECT_EQ(0, umount2(MNT, 0));
	/* After umount the server sees ENODEV. */
	EXPECT_EQ(-1, read(self->fd, reqbuf, sizeof(reqbuf)));
	EXPECT_EQ(ENODEV, errno);
	/* Once the server lets go, the connection and its statistics are gone. */
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(-ENOENT, furing_stats(id, &classic, &sent));
}

TEST_F(mnt, server_close_aborts)
{
	struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;
	struct stat st;

	ASSERT_EQ(0, furing_answer_init(self->fd, &self->init, ih->unique, 1, 1 << 20));
	close(self->fd);
	self->fd = -1;
	EXPECT_EQ(-1, stat(MNT, &st));
	EXPECT_EQ(ENOTCONN, errno);
	EXPECT_EQ(0, umount2(MNT, 0));
}

TEST_F(mnt, server_close_before_init)
{
	struct stat st;

	close(self->fd);
	self->fd = -1;
	/* As on /dev/fuse: a connection that never finished INIT refuses. */
	EXPECT_EQ(-1, stat(MNT, &st));
	EXPECT_EQ(ECONNREFUSED, errno);
	EXPECT_EQ(0, umount2(MNT, 0));
}

TEST_F(mnt, fusectl_abort)
{
	struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;
	char dir[96], path[128];
	struct stat st;

	ASSERT_EQ(0, furing_answer_init(self->fd, &self->init, ih->unique, 0, 1 << 20));
	conn_dir(dir, sizeof(dir));
	ASSERT_NE(0, dir[0]);
	snprintf(path, sizeof(path), "%s/abort", dir);
	ASSERT_EQ(0, write_text(path, "1"));
	EXPECT_EQ(-1, stat(MNT, &st));
	EXPECT_EQ(ENOTCONN, errno);
	EXPECT_EQ(-1, read(self->fd, reqbuf, sizeof(reqbuf)));
	EXPECT_EQ(ENODEV, errno);
	EXPECT_EQ(0, umount2(MNT, 0));
}

TEST_F(mnt, same_fd_twice)
{
	char opts[128];

	mkdir(MNT "2", 0755);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", self->fd);
	EXPECT_EQ(-1, mount("furing-test", MNT "2", "furing", 0, opts));
	EXPECT_EQ(EINVAL, errno);
}

TEST_F(mnt, rmmod_refused_while_mounted)
{
	struct fuse_in_header *ih = (struct fuse_in_header *)reqbuf;
	int ret;

	ASSERT_EQ(0, furing_answer_init(self->fd, &self->init, ih->unique, 1, 1 << 20));
	close(self->fd);
	self->fd = -1;
	/* The device is closed; the superblock still pins the module. */
	ret = furing_unload();
	EXPECT_TRUE(ret == -EBUSY || ret == -EAGAIN) {
		TH_LOG("delete_module while mounted: %d", ret);
	}
	ASSERT_EQ(0, umount2(MNT, 0));
	EXPECT_EQ(0, furing_unload());
	EXPECT_EQ(0, furing_load());
}

/* 50 mount/serve/umount cycles leave no connection behind. */
TEST(mount_cycles)
{
	struct fuse_init_in init;
	struct fuse_in_header *ih;
	int i, fd;

	ASSERT_EQ(0, furing_ensure_loaded());
	for (i = 0; i < 50; i++) {
		fd = furing_open_and_mount(MNT);
		ASSERT_LE(0, fd);
		ih = read_req(fd, reqbuf, sizeof(reqbuf));
		ASSERT_NE(NULL, ih);
		memcpy(&init, ih + 1, sizeof(init));
		ASSERT_EQ(0, furing_answer_init(fd, &init, ih->unique, i & 1, 1 << 20));
		ASSERT_EQ(0, umount2(MNT, 0));
		close(fd);
	}
	/* Every connection is gone: the module unloads. */
	EXPECT_EQ(0, furing_unload());
	EXPECT_EQ(0, furing_load());
}

TEST_HARNESS_MAIN
