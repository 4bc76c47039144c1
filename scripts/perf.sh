#!/usr/bin/env bash
# perf.sh OUT: build the kernel's perf tool (tools/perf of the pinned source) as one
# static binary and copy it to OUT/perf, for `make bench-profile` in the guest. Every
# optional library is off but libelf/zlib (Debian's static archives): cpu-clock
# sampling and reports on kernel and module symbols from /proc/kallsyms is all the
# profile needs. Target `perf` only: the default target also links the dlfilter
# shared objects, which -static breaks. NO_RUST: perf's Rust test workload would be
# built with whatever rustc is on PATH.
# Cached in $FURING_CACHE/perf/<kernel version>; a warm run only copies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
out=${1:?usage: perf.sh OUT}
dir="$FURING_CACHE/perf/$KVER"
mkdir -p "$dir/build" "$out"

if [[ ! -x "$dir/perf" ]]; then
	src=$(kernel_src)
	say "perf: building tools/perf of Linux $KVER, static"
	t0=$SECONDS
	nice -n 10 make -C "$src/tools/perf" O="$dir/build" -j"$(nproc)" LDFLAGS=-static \
		NO_LIBTRACEEVENT=1 NO_LIBPYTHON=1 NO_LIBPERL=1 NO_JEVENTS=1 NO_SLANG=1 NO_GTK2=1 \
		NO_LIBBPF=1 NO_BPF_SKEL=1 NO_LIBCAP=1 NO_LIBNUMA=1 NO_LIBCRYPTO=1 NO_LIBUNWIND=1 \
		NO_LIBDW=1 NO_LIBBABELTRACE=1 NO_LIBLLVM=1 NO_CAPSTONE=1 NO_LIBPFM4=1 \
		NO_DEMANGLE=1 NO_SHELLCHECK=1 NO_JVMTI=1 NO_RUST=1 perf >"$dir/make.log" 2>&1 ||
		{ tail -20 "$dir/make.log" >&2; exit 1; }
	need_static "$dir/build/perf"
	install -s -m 0755 "$dir/build/perf" "$dir/perf"
	say "perf: built in $((SECONDS - t0)) s"
fi
install -m 0755 "$dir/perf" "$out/perf"
say "perf: $("$out/perf" --version), static -> $out/perf"
