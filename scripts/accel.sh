#!/usr/bin/env bash
# accel.sh KDIR KO TESTDIR NAME: print the accelerator the VM should use: $FURING_ACCEL
# if set; otherwise kvm when /dev/kvm is writable and a short probe boot of KDIR
# finishes (KVM on some hosts hangs normal guests), tcg otherwise. The probe's files
# are $FURING_CACHE/work/NAME.cpio.gz and NAME/ (distinct names keep runs apart).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

kdir=$1 ko=$2 testdir=$3 name=$4
work="$FURING_CACHE/work"
if [[ -n "${FURING_ACCEL:-}" ]]; then
	echo "$FURING_ACCEL"
	exit 0
fi
if [[ -w /dev/kvm ]]; then
	"$here/initramfs.sh" probe "$work/$name.cpio.gz" "$ko" "$testdir" true
	if FURING_ACCEL=kvm "$here/vm.sh" "$kdir" "$work/$name.cpio.gz" "$work/$name" probe 20 \
		>/dev/null 2>&1; then
		echo kvm
		exit 0
	fi
fi
echo tcg
