#!/usr/bin/env bash
# initramfs.sh MODE OUT.cpio.gz KO TESTDIR [TEST [ARGS...]]: pack the test VM's
# initramfs: busybox-static, /init (scripts/guest-init), furing.ko, the static test
# binaries of TESTDIR (all of them, or only TEST with ARGS), and the demo script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

mode=$1 out=$2 ko=$3 testdir=$4
shift 4
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,tests,lib/modules}
cp /bin/busybox "$root/bin/busybox"
cp "$here/guest-init" "$root/init"
cp "$here/demo-guest.sh" "$root/demo.sh"
cp "$ko" "$root/lib/modules/furing.ko"
cp "$testdir"/*_test "$root/tests/"
[[ -d "$testdir/extra" ]] && cp -r "$testdir/extra/." "$root/bin/"
if (($#)); then
	echo "$*" >"$root/etc/furing-tests"
else
	(cd "$testdir" && ls -1 *_test) >"$root/etc/furing-tests"
fi
chmod +x "$root/init" "$root/demo.sh"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
