#!/bin/sh
# What `make demo` does inside the VM; its output is shown to the user as is.
step() { echo; echo "== $*"; }

step "Loading furing.ko"
insmod /lib/modules/furing.ko && echo "loaded: $(grep '^furing ' /proc/modules)"
step "The device the FUSE server opens"
ls -l /dev/furing
echo "misc device number: $(cat /sys/class/misc/furing/dev)"
step "The filesystem type it registers"
grep furing /proc/filesystems
step "Mounting without a server fd is refused with a clear error"
mkdir -p /mnt
mount -t furing -o rootmode=40000,user_id=0,group_id=0 none /mnt 2>&1 || echo "(mount failed, as it should)"
step "Unloading is refused while a server holds /dev/furing open"
exec 5<>/dev/furing
rmmod furing 2>&1 || echo "(rmmod refused while the device is open)"
exec 5<&-
rmmod furing && echo "after closing it, rmmod succeeds"
step "Kernel messages from furing"
dmesg | grep "furing: "
