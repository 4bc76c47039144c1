#!/bin/sh
# What `make demo` does inside the VM; its output is shown to the user as is.
step() { echo; echo "== $*"; }

step "Loading furing.ko"
insmod /lib/modules/furing.ko && echo "loaded: $(grep '^furing ' /proc/modules)"
step "The device the FUSE server opens, and the filesystem type"
ls -l /dev/furing
grep furing /proc/filesystems

step "Mounting a passthrough of /tmp/backing through furing (test server, io-uring on)"
mkdir -p /tmp/backing /mnt
echo "hello from the backing directory" >/tmp/backing/hello.txt
furing-server --dev /dev/furing --depth 4 /tmp/backing /mnt >/tmp/server.log 2>&1 &
srv=$!
for i in $(seq 50); do grep -q ready /tmp/server.log && break; sleep 0.1; done
grep furing /proc/mounts
id=$(stat -c %d /mnt 2>/dev/null)

step "Real I/O through the mount"
cat /mnt/hello.txt
echo "written through furing" >/mnt/new.txt && cat /tmp/backing/new.txt
dd if=/dev/urandom of=/tmp/big bs=64k count=32 2>/dev/null
cp /tmp/big /mnt/big && cmp /tmp/big /tmp/backing/big && echo "2 MiB copied in, identical in the backing dir"
cmp /mnt/big /tmp/big && echo "2 MiB read back, identical"
mkdir /mnt/dir && mv /mnt/new.txt /mnt/dir/ && ls -l /mnt /mnt/dir
rm -r /mnt/dir

step "Per-queue counters (debugfs): classic = requests over read()/write(), sent = over the ring"
cat /sys/kernel/debug/furing/*/queues

step "Unmounting; the server exits"
umount /mnt
wait $srv
echo "server exit status: $?"
tail -3 /tmp/server.log

step "Unloading"
rmmod furing && echo "unloaded"
step "Kernel messages from furing"
dmesg | grep "furing: "
