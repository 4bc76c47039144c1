#!/usr/bin/env bash
# kconfig-check.sh KDIR [VARIANT...]: can `make check KDIR=...` run the suite on the
# kernel built in KDIR? Checks the version (furing targets 7.3), the bzImage, and the
# config symbols the module, the VM and the tests need, naming each one missing, and
# says which tests will skip for an optional symbol. VARIANT smp4 also needs what
# booting 4 of 5 possible CPUs takes. Exits 1 when something required is missing.
set -euo pipefail
kdir=${1:?usage: kconfig-check.sh KDIR [VARIANT...]}
shift
cfg="$kdir/.config"
bad=0
[[ -f $cfg ]] || { echo "config: no $cfg (KDIR must be the kernel's build directory)" >&2; exit 1; }

# value SYM: the symbol's value in the config ("" when unset).
value() { sed -n "s/^CONFIG_$1=//p" "$cfg"; }
# need SYM VALUES WHY: fail unless SYM is one of VALUES ("y" or "y|m").
need() {
	local v
	v=$(value "$1")
	if [[ ! $v =~ ^($2)$ ]]; then
		echo "config: CONFIG_$1 must be ${2//|/ or } (is ${v:-unset}): $3" >&2
		bad=1
	fi
}

rel=$(cat "$kdir/include/config/kernel.release" 2>/dev/null || echo unknown)
if [[ ! $rel =~ ^7\.3(\.|$|[-+]) ]]; then
	echo "config: kernel $rel: furing is built for Linux 7.3 (its fs/fuse internals)" >&2
	bad=1
fi
[[ -f $kdir/arch/x86/boot/bzImage ]] ||
	{ echo "config: no $kdir/arch/x86/boot/bzImage (build the kernel first)" >&2; bad=1; }

need X86_64 y "the suite boots it with qemu-system-x86_64"
need RUST y "furing is a Rust module"
need MODULES y "furing is loaded as a module"
need MODULE_UNLOAD y "the module tests unload and reload furing"
need FUSE_FS "y|m" "furing is a transport of the FUSE core"
need IO_URING y "the ring protocol is io_uring commands"
need DEBUG_FS y "the tests read furing's debugfs counters"
need BLK_DEV_INITRD y "the VM boots an initramfs"
need RD_GZIP y "the initramfs is gzip-compressed"
need DEVTMPFS y "the VM's /dev"
need TMPFS y "the VM's /tmp holds the servers' backing directories"
need PROC_FS y "the tests read /proc"
need SYSFS y "the tests read /sys/module and /sys/fs/fuse"
need SERIAL_8250_CONSOLE y "the console and the results go over the serial ports"
need BINFMT_ELF y "the test binaries"
need BINFMT_SCRIPT y "the VM's /init is a script"
need FUTEX y "the tests and servers are threaded"
need EVENTFD y "io_uring and libfuse use eventfds"
need EPOLL y "libfuse's session loop"
need POSIX_TIMERS y "fio and the tests' timers"
need FILE_LOCKING y "passthrough_hp takes flock locks"
if [[ $(value MODULE_SIG_FORCE) == y ]]; then
	echo "config: CONFIG_MODULE_SIG_FORCE must be unset: furing.ko is not signed" >&2
	bad=1
fi
for v in "$@"; do
	[[ $v == smp4 ]] || continue
	need SMP y "smp4 boots 5 vCPUs"
	need ACPI y "the guest sees more than one CPU only through ACPI"
	need HOTPLUG_CPU y "smp4 takes a CPU offline and back"
	n=$(value NR_CPUS)
	if ((${n:-1} < 5)); then
		echo "config: CONFIG_NR_CPUS must be at least 5 (is ${n:-unset}): smp4 has 5 possible CPUs" >&2
		bad=1
	fi
done

# Optional: without these some tests skip, and say so.
for s in FAULT_INJECTION_DEBUG_FS:"the fault sweep skips" FAILSLAB:"the fault sweep skips" \
	FAIL_PAGE_ALLOC:"the fault sweep skips" FAULT_INJECTION_USERCOPY:"the copy-failure sweep skips" \
	DEBUG_KMEMLEAK:"no final leak scan" KASAN:"no out-of-bounds or use-after-free checks" \
	PROVE_LOCKING:"no lock order checks"; do
	[[ -n $(value "${s%%:*}") ]] ||
		echo "# config: CONFIG_${s%%:*} is not set: ${s#*:}" >&2
done
((bad == 0)) || { echo "config: $kdir cannot run furing's suite (see above)" >&2; exit 1; }
echo "# config: $kdir (Linux $rel) has what the suite needs" >&2
