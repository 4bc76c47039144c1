#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# run_tests.sh: furing's installed kselftests (make install-tests DESTDIR=...) on a
# test machine, as root, on the kernel furing.ko was built for. Options and output
# follow the kernel's run_kselftest.sh: TAP 13, one "ok N selftests: furing: TEST"
# line per test binary, each test's own TAP indented as "# " lines.
#
#   run_tests.sh [-s|--summary] [-t|--test furing:TEST]... [-c|--collection furing]
#                [-l|--list] [-o|--override-timeout SECS] [-h|--help]
#
# The tests load and unload the furing.ko installed beside them (FURING_KO names
# another one), run the helpers of furing/bin (FURING_BIN), and use /tmp. They
# count pinned pages and io_uring registrations machine-wide: run them on a quiet
# machine. Exit status 0 when every test passed or skipped.
here=$(cd "$(dirname "$0")" && pwd)
dir="$here/furing"
summary=0 timeout=900 tests=""

usage() {
	sed -n 's/^#   //p' "$0"
	exit "${1:-0}"
}
while [ $# -gt 0 ]; do
	case "$1" in
	-s|--summary) summary=1 ;;
	-t|--test) shift; tests="$tests ${1#furing:}" ;;
	-c|--collection) shift; [ "$1" = furing ] || { echo "no collection '$1'" >&2; exit 1; } ;;
	-l|--list) sed 's/^/  /' "$here/kselftest-list.txt"; exit 0 ;;
	-o|--override-timeout) shift; timeout=$1 ;;
	-h|--help) usage 0 ;;
	*) usage 1 >&2 ;;
	esac
	shift
done
[ -n "$tests" ] || tests=$(sed -n 's/^furing://p' "$here/kselftest-list.txt")
for t in $tests; do
	[ -x "$dir/$t" ] || { echo "no test furing:$t (see --list)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "run_tests.sh: the tests need root" >&2; exit 1; }

: "${FURING_KO:=$dir/furing.ko}"
FURING_BIN=$dir/bin
PATH=$FURING_BIN:$PATH
export FURING_KO FURING_BIN PATH
[ -f "$FURING_KO" ] || [ -e /sys/module/furing ] ||
	{ echo "run_tests.sh: no $FURING_KO and furing is not loaded" >&2; exit 1; }
# What the tests read: debugfs, and the FUSE control filesystem (fusectl abort).
grep -q " /sys/kernel/debug debugfs" /proc/mounts ||
	mount -t debugfs debugfs /sys/kernel/debug
grep -q " /sys/fs/fuse/connections fusectl" /proc/mounts ||
	mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null

echo "TAP version 13"
echo "1..$(echo $tests | wc -w)"
n=0 failed=0
logdir=${TMPDIR:-/tmp}
exec 5>&1
for t in $tests; do
	n=$((n + 1))
	echo "# selftests: furing: $t"
	if [ $summary = 1 ]; then
		timeout "$timeout" "$dir/$t" >"$logdir/furing_$t.log" 2>&1
		rc=$?
	else
		# The test's status comes back on fd 3 (sh has no pipefail), its output on 5.
		rc=$( { { timeout "$timeout" "$dir/$t" 2>&1 3>&- 5>&-; echo $? >&3; } |
			sed 's/^/# /' >&5; } 3>&1)
	fi
	case $rc in
	0) echo "ok $n selftests: furing: $t" ;;
	4) echo "ok $n selftests: furing: $t # SKIP" ;;
	124) echo "not ok $n selftests: furing: $t # TIMEOUT $timeout seconds"; failed=1 ;;
	*) echo "not ok $n selftests: furing: $t # exit=$rc"; failed=1 ;;
	esac
done
exit $failed
