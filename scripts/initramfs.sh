#!/usr/bin/env bash
# initramfs.sh MODE OUT.cpio.gz KO TESTDIR [TEST [ARGS...]]: pack the test VM's
# initramfs: busybox-static, /init (scripts/guest-init), furing.ko, the static test
# binaries of TESTDIR (all of them, or only TEST with ARGS), and the demo script.
# The tests are installed as on a test machine (make install-tests) in /opt/furing,
# and /tests, /bin and /lib/modules hold hard links of those files; without TEST the
# run ends with two of the binaries through the installed run_tests.sh. FURING_PRELOAD: modules (.ko paths, in order)
# /init loads first, e.g. a kernel's fuse.ko when CONFIG_FUSE_FS=m.
# FURING_SUITE_TIMEOUT: seconds a test binary may run (default 900).
# FURING_TESTS_ONLY="a_test b_test": only these binaries (without TEST).
# initramfs.sh bench OUT.cpio.gz KO TESTDIR BIN[:BIN...] [VAR=VALUE...]: the benchmark
# image instead: no test binaries, the static tools BIN (fio, and perf to profile) in
# /bin, bench/bench-guest.sh as /bench.sh and its settings (VAR=VALUE, one per line) in
# /etc/furing-bench.
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
cp "$here/guest-queues.sh" "$root/lib/guest-queues.sh"
for m in ${FURING_PRELOAD:-}; do
	mkdir -p "$root/lib/modules/preload"
	cp "$m" "$root/lib/modules/preload/"
	basename "$m" >>"$root/etc/furing-preload"
done
if [[ $mode == bench ]]; then
	cp "$ko" "$root/lib/modules/furing.ko"
	[[ -d "$testdir/extra" ]] && cp -r "$testdir/extra/." "$root/bin/"
	IFS=: read -ra bins <<<"${1:?initramfs.sh bench: BIN missing}"
	shift
	cp "${bins[@]}" "$root/bin/"
	cp "$FURING_TOP/bench/bench-guest.sh" "$root/bench.sh"
	chmod +x "$root/bench.sh"
	# sourced by the guest's sh: quote each value
	for kv in "$@"; do
		[[ $kv =~ ^[A-Z_]+=[^\']*$ ]] || { echo "bad bench setting '$kv'" >&2; exit 1; }
		printf "%s='%s'\n" "${kv%%=*}" "${kv#*=}"
	done >"$root/etc/furing-bench"
else
	inst="$root/opt/furing"
	install_suite "$inst" "$testdir" "$ko"
	ln -f "$inst/furing/"*_test "$root/tests/"
	ln -f "$inst/furing/bin/"* "$root/bin/"
	ln -f "$inst/furing/furing.ko" "$root/lib/modules/furing.ko"
	[[ -n ${FURING_SUITE_TIMEOUT:-} ]] && echo "$FURING_SUITE_TIMEOUT" >"$root/etc/furing-timeout"
	if (($#)); then
		echo "$*" >"$root/etc/furing-tests"
	elif [[ -n ${FURING_TESTS_ONLY:-} ]]; then
		# shellcheck disable=SC2086
		printf '%s\n' $FURING_TESTS_ONLY >"$root/etc/furing-tests"
	else
		(cd "$testdir" && ls -1 *_test) >"$root/etc/furing-tests"
		# the installed runner, on one suite (the rest ran above)
		echo "/opt/furing/run_tests.sh -t furing:furing_mount_test" >>"$root/etc/furing-tests"
	fi
fi
chmod +x "$root/init" "$root/demo.sh"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out"
