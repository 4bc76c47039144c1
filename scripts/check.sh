#!/usr/bin/env bash
# check.sh: furing's whole test run (`make check`). Builds what is missing (deps,
# kernels, modules, selftests), checks rustfmt, then boots each kernel variant in QEMU
# and runs the kselftests there. Prints TAP, the time of each stage, and ends with
# "N passed, N failed" summed over both kernels; exits non-zero on any failure or splat.
#
#   VARIANTS="normal debug smp4"  runs to make: each kernel with 2 vCPUs, and the normal
#                             kernel with 4 vCPUs online of 5 possible (smp4)
#   TESTS="bin [args]"        one test binary (and harness args, e.g. "-t dev_node")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

variants=${VARIANTS:-normal debug smp4}
# The kernel a run boots: smp4 is the normal kernel on more CPUs.
kernel_of() { [[ $1 == smp4 ]] && echo normal || echo "$1"; }
kernels=$(for v in $variants; do kernel_of "$v"; done | sort -u)
work="$FURING_CACHE/work"
mkdir -p "$work"
t_all=$SECONDS

stage deps "$here/deps.sh"
declare -A kdir ko
for k in $kernels; do
	kdir[$k]=$(stage "kernel ($k)" "$here/kernel.sh" "$k" | tail -n1)
done
for k in $kernels; do
	ko[$k]=$(KDIR=${kdir[$k]} stage "module ($k, CLIPPY=1)" "$here/module.sh" "$k" | tail -n1)
done
stage rustfmt make -s -C "$FURING_TOP" rustfmtcheck
src=$(kernel_src)
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
	# shellcheck disable=SC2086
	"$here/initramfs.sh" check "$work/check-$v.cpio.gz" "${ko[$k]}" "$work/tests" ${TESTS:-}
	echo "# ==== $v: $k kernel, -smp $smp${append:+, $append} ($FURING_ACCEL) ===="
	vm_ok=1
	t=$SECONDS
	FURING_VM_SMP=$smp FURING_VM_APPEND=$append "$here/vm.sh" "${kdir[$k]}" "$work/check-$v.cpio.gz" "$out" check 2700 || vm_ok=0
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
