// SPDX-License-Identifier: GPL-2.0
/*
 * furing module basics: load, /dev/furing, the filesystem type, mount option
 * errors, load/unload cycles without leaks, rmmod refused while in use.
 */
#define _GNU_SOURCE
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include "furing_test.h"
#include "kselftest_harness.h"

#define MNT "/tmp/furing-mnt"

/* mount(2) of a furing fs with @opts; 0 or -errno. */
static int mount_furing(const char *opts)
{
	mkdir(MNT, 0755);
	if (mount("furing-test", MNT, "furing", 0, opts)) {
		return -errno;
	}
	umount2(MNT, MNT_DETACH);
	return 0;
}

TEST(module_loads)
{
	if (furing_loaded())
		ASSERT_EQ(0, furing_unload());
	ASSERT_FALSE(furing_loaded());
	ASSERT_EQ(0, furing_load());
	ASSERT_TRUE(furing_loaded());
	/* A second load is refused, not a crash. */
	ASSERT_EQ(-EEXIST, furing_load());
}

TEST(dev_node)
{
	char buf[64];
	unsigned int major, minor;
	struct stat st;

	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_LT(0, read_text("/sys/class/misc/furing/dev", buf, sizeof(buf)));
	ASSERT_EQ(2, sscanf(buf, "%u:%u", &major, &minor));
	ASSERT_EQ(0, stat("/dev/furing", &st));
	EXPECT_TRUE(S_ISCHR(st.st_mode));
	EXPECT_EQ(10, major); /* MISC_MAJOR */
	EXPECT_EQ(major, major(st.st_rdev));
	EXPECT_EQ(minor, minor(st.st_rdev));
	EXPECT_EQ(0666, (int)(st.st_mode & 07777));
}

/* An unmounted /dev/furing behaves like an unmounted /dev/fuse. */
TEST(dev_unmounted_read_like_fuse)
{
	char buf[8192];
	int fd, fuse_fd, err, fuse_err;

	ASSERT_EQ(0, furing_ensure_loaded());
	fd = open("/dev/furing", O_RDWR | O_NONBLOCK);
	ASSERT_LE(0, fd);
	ASSERT_EQ(-1, read(fd, buf, sizeof(buf)));
	err = errno;
	EXPECT_EQ(EPERM, err);
	fuse_fd = open("/dev/fuse", O_RDWR | O_NONBLOCK);
	if (fuse_fd >= 0) {
		ASSERT_EQ(-1, read(fuse_fd, buf, sizeof(buf)));
		fuse_err = errno;
		EXPECT_EQ(fuse_err, err);
		close(fuse_fd);
	}
	close(fd);
}

TEST(proc_filesystems)
{
	char buf[4096];

	ASSERT_EQ(0, furing_ensure_loaded());
	ASSERT_LT(0, read_text("/proc/filesystems", buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "nodev\tfuring\n"));
}

TEST(mount_missing_options)
{
	char opts[128];
	int fd;

	ASSERT_EQ(0, furing_ensure_loaded());
	EXPECT_EQ(-EINVAL, mount_furing(""));
	EXPECT_EQ(-EINVAL, mount_furing("rootmode=40000,user_id=0,group_id=0"));
	fd = open("/dev/furing", O_RDWR);
	ASSERT_LE(0, fd);
	snprintf(opts, sizeof(opts), "fd=%d,user_id=0,group_id=0", fd);
	EXPECT_EQ(-EINVAL, mount_furing(opts));
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,group_id=0", fd);
	EXPECT_EQ(-EINVAL, mount_furing(opts));
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0", fd);
	EXPECT_EQ(-EINVAL, mount_furing(opts));
	close(fd);
}

TEST(mount_fd_not_furing)
{
	char opts[128];
	int fd;

	ASSERT_EQ(0, furing_ensure_loaded());
	fd = open("/dev/null", O_RDWR);
	ASSERT_LE(0, fd);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	EXPECT_EQ(-EINVAL, mount_furing(opts));
	close(fd);
	/* The in-kernel /dev/fuse is not a furing device either. */
	fd = open("/dev/fuse", O_RDWR);
	ASSERT_LE(0, fd);
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
	EXPECT_EQ(-EINVAL, mount_furing(opts));
	close(fd);
	/* A descriptor that is not open. */
	EXPECT_EQ(-EBADF, mount_furing("fd=999,rootmode=40000,user_id=0,group_id=0"));
}

TEST(mount_invalid_values)
{
	static const char *const bad[] = {
		"rootmode=0",		/* no file type */
		"rootmode=abc",		/* not octal */
		"user_id=-5",
		"group_id=x",
		"blksize=1000",		/* not a power of two */
		"blksize=65536",	/* larger than a page */
		"max_read=",
		"no_such_option=1",
		"fd=3,fd=3",
	};
	char opts[160];
	unsigned int i;
	int fd;

	ASSERT_EQ(0, furing_ensure_loaded());
	fd = open("/dev/furing", O_RDWR);
	ASSERT_LE(0, fd);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,%s",
			 fd, bad[i]);
		EXPECT_EQ(-EINVAL, mount_furing(opts)) {
			TH_LOG("options: %s", opts);
		}
	}
	close(fd);
	/* Nothing is held: the module still unloads. */
	EXPECT_EQ(0, furing_unload());
}

TEST(rmmod_refused_while_open)
{
	int fd, ret;

	ASSERT_EQ(0, furing_ensure_loaded());
	fd = open("/dev/furing", O_RDWR);
	ASSERT_LE(0, fd);
	ret = furing_unload();
	EXPECT_TRUE(ret == -EBUSY || ret == -EAGAIN) {
		TH_LOG("delete_module with an open fd: %d", ret);
	}
	EXPECT_TRUE(furing_loaded());
	close(fd);
	EXPECT_EQ(0, furing_unload());
	EXPECT_FALSE(furing_loaded());
}

/*
 * 50 load/unload cycles leak nothing: unreclaimable slab (SUnreclaim in
 * /proc/meminfo; dentry and inode caches come and go) and vmalloc'd
 * memory (/proc/vmallocinfo without the module loader's execmem cache) are
 * back within 128 KiB each (slab caches and per-CPU free lists move a
 * little on their own); the debug kernel's kmemleak scan below catches smaller
 * leaks. KASAN's quarantine keeps freed objects in Slab for a while, so on the
 * debug kernel (the one with kmemleak) only vmalloc is compared.
 */
#define CYCLES 50
#define SLAB_TOLERANCE_KB 128
#define VMALLOC_TOLERANCE_KB 128

TEST(load_unload_cycles)
{
	long slab0, vm0, slab1, vm1;
	int i, fd;

	if (furing_loaded())
		ASSERT_EQ(0, furing_unload());
	/* Warm-up cycles: first-use allocations (sysfs, kernfs caches) stay. */
	for (i = 0; i < 10; i++) {
		ASSERT_EQ(0, furing_load());
		ASSERT_EQ(0, furing_unload());
	}
	slab0 = meminfo_kb("SUnreclaim");
	vm0 = vmalloc_kb_no_execmem();
	ASSERT_LE(0, slab0);
	ASSERT_LE(0, vm0);
	for (i = 0; i < CYCLES; i++) {
		ASSERT_EQ(0, furing_load());
		fd = open("/dev/furing", O_RDWR);
		ASSERT_LE(0, fd);
		close(fd);
		ASSERT_EQ(0, furing_unload()) {
			TH_LOG("cycle %d", i);
		}
	}
	slab1 = meminfo_kb("SUnreclaim");
	vm1 = vmalloc_kb_no_execmem();
	TH_LOG("SUnreclaim %ld -> %ld kB, vmalloc %ld -> %ld kB (VmallocUsed now %ld kB) after %d cycles",
	       slab0, slab1, vm0, vm1, meminfo_kb("VmallocUsed"), CYCLES);
	if (access("/sys/kernel/debug/kmemleak", F_OK))
		EXPECT_GE(SLAB_TOLERANCE_KB, slab1 - slab0);
	EXPECT_GE(VMALLOC_TOLERANCE_KB, vm1 - vm0);
}

/* Writes and reads back 1 MiB through @mnt, buffered and O_DIRECT; 0 or -1. */
static int some_io(const char *mnt)
{
	char path[128], *buf;
	int fd, ok;

	if (posix_memalign((void **)&buf, 4096, 1 << 20))
		return -1;
	memset(buf, 'k', 1 << 20);
	snprintf(path, sizeof(path), "%s/leak", mnt);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	ok = fd >= 0 && pwrite(fd, buf, 1 << 20, 0) == 1 << 20 && pread(fd, buf, 1 << 20, 0) == 1 << 20;
	if (fd >= 0)
		close(fd);
	fd = open(path, O_RDWR);
	ok = ok && fd >= 0 && pwrite(fd, buf, 4097, 1) == 4097 && fsync(fd) == 0 &&
	     pread(fd, buf, 1 << 20, 0) > 0;
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok ? 0 : -1;
}

/*
 * Debug kernel: kmemleak finds nothing new after load/unload cycles, each
 * with a mount served over the ring in every mode (basic, buffer ring, pinned,
 * zero-copy) and traffic through it.
 */
FIXTURE(leak) {};
FIXTURE_SETUP(leak) {}
FIXTURE_TEARDOWN(leak) { umount2("/tmp/furing-leak-mnt", MNT_DETACH); }

TEST_F_TIMEOUT(leak, kmemleak_clean, 300)
{
	static const char *const modes[][4] = {
		{ NULL }, { "--bufring", NULL }, { "--bufring", "--pin-headers", "--pin-buffers", NULL },
		{ "--zero-copy", NULL },
	};
	const char *km = "/sys/kernel/debug/kmemleak";
	const char *mnt = "/tmp/furing-leak-mnt", *back = "/tmp/furing-leak-back";
	char buf[4096];
	int i, status;
	pid_t pid;

	if (access(km, F_OK))
		SKIP(return, "no kmemleak in this kernel");
	ASSERT_EQ(0, write_text(km, "clear"));
	if (furing_loaded())
		ASSERT_EQ(0, furing_unload());
	for (i = 0; i < 8; i++) {
		const char *const *m = modes[i % 4];

		ASSERT_EQ(0, furing_load());
		close(open("/dev/furing", O_RDWR));
		pid = furing_server_start(back, mnt, m[0], m[1], m[2], NULL);
		ASSERT_LT(0, pid);
		EXPECT_EQ(0, some_io(mnt)) {
			TH_LOG("mode %d", i % 4);
		}
		ASSERT_EQ(0, umount2(mnt, 0));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		ASSERT_EQ(0, furing_wait_unused(10));
		ASSERT_EQ(0, furing_unload());
	}
	ASSERT_EQ(0, furing_load());
	/* kmemleak only reports objects older than 5 s, after two scans. */
	sleep(6);
	ASSERT_EQ(0, write_text(km, "scan"));
	ASSERT_EQ(0, write_text(km, "scan"));
	ASSERT_LE(0, read_text(km, buf, sizeof(buf)));
	EXPECT_STREQ("", buf);
}

TEST_HARNESS_MAIN
