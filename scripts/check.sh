#!/usr/bin/env bash
# check.sh: furing's whole test run (`make check`). Builds what is missing (deps,
# kernels, modules, selftests), checks rustfmt, then boots each kernel variant in QEMU
# and runs the kselftests there. Prints TAP, the time of each stage, and ends with
# "N passed, N failed" summed over both kernels; exits non-zero on any failure or splat.
#
#   VARIANTS="normal debug"   kernels to test
#   TESTS="bin [args]"        one test binary (and harness args, e.g. "-t dev_node")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

variants=${VARIANTS:-normal debug}
work="$FURING_CACHE/work"
mkdir -p "$work"
t_all=$SECONDS

stage deps "$here/deps.sh"
declare -A kdir ko
for v in $variants; do
	kdir[$v]=$(stage "kernel ($v)" "$here/kernel.sh" "$v" | tail -n1)
done
for v in $variants; do
	ko[$v]=$(KDIR=${kdir[$v]} stage "module ($v, CLIPPY=1)" "$here/module.sh" "$v" | tail -n1)
done
stage rustfmt make -s -C "$FURING_TOP" rustfmtcheck
src=$(kernel_src)
stage selftests make -s -C "$FURING_TOP/selftests" KSRC="$src" OUT="$work/tests"
stage libfuse "$here/libfuse.sh" "$work/tests/extra"

# The accelerator: KVM only if a short probe boots; TCG otherwise.
first=${variants%% *}
FURING_ACCEL=$("$here/accel.sh" "${kdir[$first]}" "${ko[$first]}" "$work/tests" probe)
export FURING_ACCEL
echo "# accelerator: $FURING_ACCEL"

passed=0 failed=0 skipped=0
for v in $variants; do
	out="$work/run-$v"
	rm -rf "$out"
	# shellcheck disable=SC2086
	"$here/initramfs.sh" check "$work/check-$v.cpio.gz" "${ko[$v]}" "$work/tests" ${TESTS:-}
	echo "# ==== $v kernel ($FURING_ACCEL) ===="
	vm_ok=1
	t=$SECONDS
	"$here/vm.sh" "${kdir[$v]}" "$work/check-$v.cpio.gz" "$out" check 2700 || vm_ok=0
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
