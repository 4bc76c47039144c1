#!/bin/sh
# What `make demo` does inside the VM; its output is shown to the user as is.
. /lib/guest-queues.sh
step() { echo; echo "== $*"; }

# counters: what debugfs says of the mount's queues, the proof of the mode
counters() {
	awk 'NF >= 15 && $1 != "qid" { q++; e += $2; s += $3; f = $5; b += $6; u += $7
			p += $8; z += $10; zb += $11 }
		END { printf "   debugfs: %d queues x %d entries, REGISTER flags %s, %d requests over the ring\n",
				q, q ? e / q : 0, f, s
			printf "   payload buffers %d (in use %d), pinned %.1f MiB, zero-copied %d requests (%.1f MiB)\n",
				b, u, p / 1048576, z, zb / 1048576 }' /sys/kernel/debug/furing/*/queues
}

# io: the same real I/O in every mode: a file written and read back with 1 MiB direct
# I/O (zero-copied where the mode can), a small file, a rename
io() {
	dd if=/tmp/data of=/mnt/data bs=1M oflag=direct 2>/dev/null &&
		dd if=/mnt/data of=/tmp/back2 bs=1M iflag=direct 2>/dev/null &&
		cmp /tmp/data /tmp/backing/data && cmp /tmp/data /tmp/back2 &&
		echo "   4 MiB written and read back with O_DIRECT: identical, in the backing dir too"
	echo "written through furing" >/mnt/small.txt && mv /mnt/small.txt /mnt/moved.txt &&
		echo "   $(cat /mnt/moved.txt) (backing dir: $(echo $(ls /tmp/backing)))"
	rm -f /mnt/data /mnt/moved.txt
}

# mode NAME CMD...: mount with CMD (furing-server, or furing-launch with a libfuse
# server), run the I/O, show the counters, unmount
mode() {
	name=$1
	shift
	step "$name"
	echo "   \$ $*"
	"$@" >/tmp/server.log 2>&1 &
	srv=$!
	for i in $(seq 100); do
		[ "$(queues_registered)" -ge 2 ] && break
		sleep 0.1
	done
	io
	counters
	umount /mnt
	wait $srv
	echo "   server exit status: $?"
}

step "Loading furing.ko"
insmod /lib/modules/furing.ko && echo "loaded: $(grep '^furing ' /proc/modules)"
step "The device the FUSE server opens, and the filesystem type"
ls -l /dev/furing
grep furing /proc/filesystems

mkdir -p /tmp/backing /mnt
dd if=/dev/urandom of=/tmp/data bs=1M count=4 2>/dev/null
echo "Each mode below mounts a passthrough of /tmp/backing on /mnt and does the same I/O."

mode "Basic mode (Linux 7.3's wire format): a header and a 1 MiB payload buffer per entry" \
	furing-server --dev /dev/furing --depth 4 /tmp/backing /mnt
grep furing /proc/mounts
mode "Buffer ring: 2 payload buffers for the 4 entries of each queue, picked per request" \
	furing-server --dev /dev/furing --depth 4 --bufring --bufs 2 /tmp/backing /mnt
mode "Pinned: both regions pinned and mapped once; the kernel copies with memcpy" \
	furing-server --dev /dev/furing --depth 4 --bufring --pin-headers --pin-buffers \
	/tmp/backing /mnt
mode "Zero-copy: the client's pages go to the server's io_uring (READ_FIXED/WRITE_FIXED)" \
	furing-server --dev /dev/furing --depth 4 --zero-copy /tmp/backing /mnt
if command -v passthrough_hp >/dev/null; then
	mode "libfuse 3.18's passthrough_hp, unmodified, on furing basic (through furing-launch)" \
		furing-launch /mnt passthrough_hp --foreground --nopassthrough -o io_uring \
		/tmp/backing @fd
	mode "passthrough_hp with furing's libfuse patch: zero-copy (-o io_uring_zero_copy)" \
		furing-launch /mnt passthrough_hp-furing --foreground --nopassthrough \
		-o io_uring,io_uring_zero_copy,io_uring_bufs=2 /tmp/backing @fd
fi

step "Unloading"
# A server's io_uring lets go of the module (zero-copy registrations) in its own
# exit work, a moment after the server exited: rmmod waits for that (5 s at most).
for i in $(seq 50); do
	rmmod furing 2>/tmp/rmmod.err && break
	sleep 0.1
done
if grep -q '^furing ' /proc/modules; then
	echo "not unloaded: $(cat /tmp/rmmod.err), refcnt $(cat /sys/module/furing/refcnt)"
else
	echo "unloaded after $((i - 1)) retries"
fi
step "Kernel messages from furing"
dmesg | grep "furing: "
