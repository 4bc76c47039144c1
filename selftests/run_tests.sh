#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# run_tests.sh: furing's installed kselftests (make install-tests DESTDIR=...) on a
# test machine, as root, on the kernel furing.ko was built for. It readies the
# machine, then runs the kernel's own run_kselftest.sh installed beside it, so the
# options, the TAP output and the exit status are kselftest's:
#
#   run_tests.sh [-s] [-p [DIR]] [-t furing:TEST]... [-S furing:TEST]... [-c furing]
#                [-l] [-d] [-f] [-o SECS] [-h]
#
# Readying: FUSE loaded (modprobe fuse when it is a module), debugfs and the FUSE
# control filesystem mounted. The tests load and unload the furing.ko beside them
# (FURING_KO names another one) and run the helpers of furing/bin/ (FURING_BIN
# another directory). They use /tmp, and count pinned pages and io_uring
# registrations machine-wide: run them on a quiet machine.
here=$(cd "$(dirname "$0")" && pwd -P)

ready() {
	[ "$(id -u)" = 0 ] || { echo "run_tests.sh: the tests need root" >&2; exit 1; }
	[ -d /sys/fs/fuse ] || modprobe fuse ||
		{ echo "run_tests.sh: no FUSE in this kernel (modprobe fuse failed)" >&2; exit 1; }
	grep -q " /sys/kernel/debug debugfs" /proc/mounts ||
		mount -t debugfs debugfs /sys/kernel/debug ||
		{ echo "run_tests.sh: cannot mount debugfs" >&2; exit 1; }
	grep -q " /sys/fs/fuse/connections fusectl" /proc/mounts ||
		mount -t fusectl fusectl /sys/fs/fuse/connections ||
		{ echo "run_tests.sh: cannot mount fusectl" >&2; exit 1; }
	[ -f "$FURING_KO" ] || [ -e /sys/module/furing ] ||
		{ echo "run_tests.sh: no $FURING_KO, and furing is not loaded" >&2; exit 1; }
}

: "${FURING_KO:=$here/furing/furing.ko}"
: "${FURING_BIN:=$here/furing/bin}"
PATH=$FURING_BIN:$PATH
export FURING_KO FURING_BIN PATH
case " $* " in
*" -l "*|*" --list "*|*" -h "*|*" --help "*|*" -d "*|*" --dry-run "*) ;;
*) ready ;;
esac
exec "$here/run_kselftest.sh" "$@"
