#!/usr/bin/env bash
# vm.sh KDIR INITRD OUTDIR MODE [TIMEOUT_S]: boot bzImage of KDIR with INITRD under
# QEMU (FURING_VM_SMP vCPUs, default 2; FURING_VM_APPEND adds to the kernel command
# line), kernel log to OUTDIR/console.log, results to OUTDIR/results.log.
#
# The accelerator is TCG unless FURING_ACCEL=kvm (check.sh sets it after a short KVM
# probe boots). The run fails (exit 1) when the console shows a kernel splat (BUG,
# WARNING, KASAN, lockdep, kmemleak leak, Oops, hung task, panic) or when the results
# lack the end marker (timeout, crash).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

kdir=$1 initrd=$2 outdir=$3 mode=$4 tmo=${5:-1500}
accel=${FURING_ACCEL:-tcg}
mem=${FURING_VM_MEM:-2G}
smp=${FURING_VM_SMP:-2}
mkdir -p "$outdir"
: >"$outdir/console.log"
: >"$outdir/results.log"
# 4-level paging: with LA57 (which -cpu max offers) KASAN once reported an
# interrupt during early boot, before furing loads, touching the 5-level direct
# map as a wild access; the tests do not need 5-level paging.
cpu=max,la57=off
[[ "$accel" == kvm ]] && cpu=host
# A kernel with page poisoning fills freed pages (stale memory then shows).
extra=${FURING_VM_APPEND:+ $FURING_VM_APPEND}
grep -q '^CONFIG_PAGE_POISONING=y' "$kdir/.config" && extra+=" page_poison=1"
# With an unexpected exit, timeout kills QEMU; the missing end marker reports it.
timeout "$tmo" qemu-system-x86_64 -accel "$accel" -cpu "$cpu" -smp "$smp" -m "$mem" \
	-kernel "$kdir/arch/x86/boot/bzImage" -initrd "$initrd" \
	-append "console=ttyS0 panic=-1 oops=panic furing.mode=$mode$extra" \
	-display none -monitor none -no-reboot \
	-serial "file:$outdir/console.log" -serial "file:$outdir/results.log" \
	</dev/null >"$outdir/qemu.log" 2>&1 || true

status=0
# Kernel splats: any of these in the console log fails the run.
splat='BUG:|WARNING:|KASAN:|UBSAN:|Oops|general protection fault|Kernel panic|'
splat+='INFO: |possible (circular|recursive) locking|inconsistent lock state|'
splat+='turning off the locking correctness validator|DEBUG_LOCKS_WARN_ON|'
splat+='suspected memory leak|unreferenced object|hung task|blocked for more than|'
splat+='soft lockup|rcu_sched detected stalls|RCU stall|list_(add|del) corruption'
if grep -E -n "$splat" "$outdir/console.log" >"$outdir/splats.log"; then
	echo "# kernel splat in $outdir/console.log:"
	sed 's/^/#   /' "$outdir/splats.log" | head -20
	status=1
fi
if ! grep -q '^FURING-END' "$outdir/results.log"; then
	echo "# no end marker: the VM timed out or crashed (see $outdir/console.log)"
	tail -5 "$outdir/console.log" | sed 's/^/#   /'
	status=1
fi
exit $status
