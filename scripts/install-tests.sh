#!/usr/bin/env bash
# install-tests.sh DESTDIR (`make install-tests DESTDIR=...`): build furing.ko against
# KDIR (default: the cached normal test kernel), the kselftests and their helpers
# (furing-server, furing-launch, libfuse's passthrough_hp and passthrough_hp-furing, fio; all static), and
# install them in DESTDIR for a test machine without QEMU, laid out as the kernel's
# kselftest install (with its run_kselftest.sh): run DESTDIR/run_tests.sh there as
# root (it readies the machine, then runs run_kselftest.sh; see its header).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
dest=${1:?usage: install-tests.sh DESTDIR}
kdir=${KDIR:-$("$here/kernel.sh" normal)}
# make's command-line variables (DESTDIR=, KDIR=) must not reach the nested makes.
unset KDIR MAKEFLAGS MFLAGS MAKELEVEL
ko=$(KDIR=$kdir "$here/module.sh" normal | tail -n1)
build="$FURING_CACHE/work/install-build"
rm -rf "$build"
make -s -C "$FURING_TOP/selftests" KSRC="$(selftest_src "$kdir")" OUT="$build"
"$here/libfuse.sh" "$build/extra" >/dev/null
"$here/fio.sh" "$build/extra" >/dev/null
install_suite "$dest" "$build" "$ko"
say "installed $(wc -l <"$dest/kselftest-list.txt") tests for $(cat "$kdir/include/config/kernel.release") in $dest; run $dest/run_tests.sh as root"
