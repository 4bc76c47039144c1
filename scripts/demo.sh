#!/usr/bin/env bash
# demo.sh (`make demo`): build what is missing, boot the normal test kernel in QEMU,
# load furing and show, step by step, what it does.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

"$here/deps.sh"
kdir=$("$here/kernel.sh" normal)
ko=$(KDIR=$kdir "$here/module.sh" normal)
work="$FURING_CACHE/work"
make -s -C "$FURING_TOP/selftests" KSRC="$(kernel_src)" OUT="$work/tests"
# libfuse's passthrough_hp, unmodified and with furing's patch
"$here/libfuse.sh" "$work/tests/extra"
"$here/initramfs.sh" demo "$work/demo.cpio.gz" "$ko" "$work/tests"
say "booting Linux $KVER under QEMU (${FURING_ACCEL:-tcg}, 2 vCPUs)"
status=0
"$here/vm.sh" "$kdir" "$work/demo.cpio.gz" "$work/demo" demo || status=$?
grep -v '^FURING-END' "$work/demo/results.log" | tr -d '\r'
echo
say "kernel log: $work/demo/console.log"
exit $status
