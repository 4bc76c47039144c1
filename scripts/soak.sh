#!/usr/bin/env bash
# soak.sh (`make soak`; not part of make check): furing-soak (selftests/furing_soak.c)
# in QEMU for SOAK_MIN minutes (default 30): mixed client load (fio verify + metadata
# churn) against furing-server killed or aborted at a random point of every round
# and restarted, every mode in turn, leak counters checked after every round. Fails
# on the first loss, a hang, a leak or a kernel splat.
#   SOAK_MIN=30        minutes of rounds
#   SOAK_KERNEL=debug  the kernel (debug: KASAN, lockdep, kmemleak; or normal)
#   SOAK_SEED=N        replay a run (it prints its seed)
#   SOAK_ARGS=...      more furing-soak options (e.g. --inject-loss)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
min=${SOAK_MIN:-30} kernel=${SOAK_KERNEL:-debug}
work="$FURING_CACHE/work"
out="$work/soak"
"$here/deps.sh"
kdir=$("$here/kernel.sh" "$kernel")
ko=$(KDIR=$kdir "$here/module.sh" "$kernel" | tail -n1)
make -s -C "$FURING_TOP/selftests" KSRC="$(kernel_src)" OUT="$work/soak-tests"
"$here/fio.sh" "$work/soak-tests/extra" >/dev/null
args="--minutes $min${SOAK_SEED:+ --seed $SOAK_SEED}${SOAK_ARGS:+ $SOAK_ARGS}"
# shellcheck disable=SC2086
FURING_SUITE_TIMEOUT=$((min * 60 + 900)) "$here/initramfs.sh" check "$work/soak.cpio.gz" \
	"$ko" "$work/soak-tests" /bin/furing-soak $args
say "soak: $min minutes on the $kernel kernel under QEMU (${FURING_ACCEL:-tcg}, 2 vCPUs)"
vm_ok=1
"$here/vm.sh" "$kdir" "$work/soak.cpio.gz" "$out" check $((min * 60 + 1200)) || vm_ok=0
grep -v '^FURING-END' "$out/results.log" | tr -d '\r' || true
read -r p f _ < <(tr -d '\r' <"$out/results.log" | awk -f "$here/tap-count.awk")
((vm_ok == 1)) || { echo "soak: kernel splat or no end marker (console: $out/console.log)"; f=$((f + 1)); }
say "soak: $p passed, $f failed (console: $out/console.log)"
((f == 0 && p == 1))
