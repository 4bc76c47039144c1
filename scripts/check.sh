#!/usr/bin/env bash
# check.sh: furing's whole test run (`make check`). Builds what is missing (deps,
# kernels, modules, selftests), checks rustfmt, then boots each kernel variant in QEMU
# and runs the kselftests there. Prints TAP, the time of each stage, and ends with
# "N passed, N failed" summed over both kernels; exits non-zero on any failure or splat.
#
#   VARIANTS="normal debug smp4"  runs to make: each kernel with 2 vCPUs, and the normal
#                             kernel with 4 vCPUs online of 5 possible (smp4)
#   TESTS="bin [args]"        one test binary (and harness args, e.g. "-t dev_node")
#   KDIR=/path/to/build       the suite on that kernel instead (a 7.3 build directory
#                             with bzImage; its config is checked first, each missing
#                             symbol named): VARIANTS "kdir smp4" by default, both
#                             booting it (kdir: 2 vCPUs). A modular FUSE (fuse.ko) is
#                             loaded before the tests.
#   FURING_VM_TIMEOUT=SECS    a run's limit (default 2700)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

user_kdir=${KDIR:-}
# module.sh takes KDIR per kernel; make's command-line variables (make check KDIR=...
# TESTS=...) must not reach the kernel's and the selftests' makes as overrides.
unset KDIR MAKEFLAGS MFLAGS MAKELEVEL
if [[ -n $user_kdir ]]; then
	user_kdir=$(cd "$user_kdir" && pwd)
	variants=${VARIANTS:-kdir smp4}
	for v in $variants; do
		[[ $v == kdir || $v == smp4 ]] ||
			{ echo "with KDIR the runs are kdir and smp4, not '$v'" >&2; exit 2; }
	done
else
	variants=${VARIANTS:-normal debug smp4}
fi
# The kernel a run boots: smp4 is the normal kernel (or KDIR's) on more CPUs.
kernel_of() {
	if [[ -n $user_kdir ]]; then echo kdir; elif [[ $1 == smp4 ]]; then echo normal; else echo "$1"; fi
}
kernels=$(for v in $variants; do kernel_of "$v"; done | sort -u)
work="$FURING_CACHE/work"
mkdir -p "$work"
t_all=$SECONDS

stage deps "$here/deps.sh"
declare -A kdir ko
preload=
for k in $kernels; do
	if [[ $k == kdir ]]; then
		# shellcheck disable=SC2086
		stage "config ($user_kdir)" "$here/kconfig-check.sh" "$user_kdir" $variants
		kdir[$k]=$user_kdir
		if grep -q '^CONFIG_FUSE_FS=m' "$user_kdir/.config"; then
			preload=$user_kdir/fs/fuse/fuse.ko
			[[ -f $preload ]] || { echo "no $preload (CONFIG_FUSE_FS=m: build the modules)" >&2; exit 1; }
		fi
	else
		kdir[$k]=$(stage "kernel ($k)" "$here/kernel.sh" "$k" | tail -n1)
	fi
done
for k in $kernels; do
	ko[$k]=$(KDIR=${kdir[$k]} stage "module ($k, CLIPPY=1)" "$here/module.sh" "$k" | tail -n1)
done
stage rustfmt make -s -C "$FURING_TOP" rustfmtcheck
src=$(selftest_src "$user_kdir")
stage selftests make -s -C "$FURING_TOP/selftests" KSRC="$src" OUT="$work/tests"
stage libfuse "$here/libfuse.sh" "$work/tests/extra"
stage fio "$here/fio.sh" "$work/tests/extra"

# The accelerator: KVM only if a short probe boots; TCG otherwise.
first=$(kernel_of "${variants%% *}")
FURING_ACCEL=$("$here/accel.sh" "${kdir[$first]}" "${ko[$first]}" "$work/tests" probe)
export FURING_ACCEL
echo "# accelerator: $FURING_ACCEL"

passed=0 failed=0 skipped=0
for v in $variants; do
	k=$(kernel_of "$v")
	out="$work/run-$v"
	rm -rf "$out"
	smp=2 append=
	# 4 vCPUs online and a fifth that boots offline (maxcpus=4): queues of CPUs without
	# a server thread, a possible CPU that is not online, CPU hotplug.
	[[ $v == smp4 ]] && smp=5 append=maxcpus=4
	# smp4 runs the suites where the number of CPUs matters (queues per CPU, hotplug,
	# per-CPU flow control, the fuzzer's teardown races); the rest ran on 2 vCPUs.
	only=
	[[ $v == smp4 && -z ${TESTS:-} ]] &&
		only="furing_uring_test furing_io_test furing_flow_test furing_cycles_test furing_fuzz_test"
	# shellcheck disable=SC2086
	FURING_PRELOAD=$preload FURING_TESTS_ONLY=$only "$here/initramfs.sh" check "$work/check-$v.cpio.gz" "${ko[$k]}" "$work/tests" ${TESTS:-}
	echo "# ==== $v: $k kernel, -smp $smp${append:+, $append} ($FURING_ACCEL) ===="
	vm_ok=1
	t=$SECONDS
	FURING_VM_SMP=$smp FURING_VM_APPEND=$append "$here/vm.sh" "${kdir[$k]}" "$work/check-$v.cpio.gz" "$out" check "${FURING_VM_TIMEOUT:-2700}" || vm_ok=0
	grep -v '^FURING-END' "$out/results.log" | tr -d '\r' || true
	read -r p f s < <(tr -d '\r' <"$out/results.log" | awk -f "$here/tap-count.awk")
	if ((vm_ok == 0)); then
		echo "not ok - $v kernel: splat or no end marker (logs in $out)"
		f=$((f + 1))
	fi
	printf '# stage %-28s %4d s\n' "vm tests ($v)" $((SECONDS - t))
	echo "# $v: $p passed, $f failed, $s skipped (console: $out/console.log)"
	passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
done
printf '# stage %-28s %4d s\n' total $((SECONDS - t_all))
echo "$passed passed, $failed failed, $skipped skipped"
((failed == 0 && passed > 0))
