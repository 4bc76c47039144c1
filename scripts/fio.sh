#!/usr/bin/env bash
# fio.sh OUT: build fio as one static binary and copy it to OUT/fio (the bench and
# check initramfs put it in /bin). Debian's fio links ~70 shared libraries (ceph,
# gluster...); this one is built from bookworm's fio source package (deb-src line
# added by deps.sh), Debian's patches applied, with every optional library engine off:
# psync, sync, mmap and io_uring (raw syscalls) are all the bench and the tests need. Also --disable-shm
# (the guest kernel has no SysV IPC: fio runs its jobs as threads) and --disable-native
# (the guest CPU is QEMU's, not the build host's).
# Cached in $FURING_CACHE/fio/<version>; a warm run only copies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
out=${1:?usage: fio.sh OUT}
base="$FURING_CACHE/fio"
mkdir -p "$base" "$out"

bin=$(ls -d "$base"/*/fio 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z "$bin" ]]; then
	ver=$(src_version fio/bookworm '^3\.')
	dir="$base/$ver"
	say "fio: building fio $ver (bookworm source package) static"
	t0=$SECONDS
	fetch_src fio "$ver" "$dir"
	(cd "$dir/src" && ./configure --build-static --disable-native --disable-shm \
		--disable-numa --disable-rdma --disable-rados --disable-rbd --disable-http \
		--disable-gfapi --disable-libnfs --disable-pmem --disable-xnvme --disable-libzbc \
		--disable-tcmalloc --disable-dfs --disable-lex) >"$dir/configure.log" 2>&1 ||
		{ tail -20 "$dir/configure.log" >&2; exit 1; }
	grep -q '^Static build *yes' "$dir/configure.log" ||
		{ echo "fio: configure did not take --build-static (see $dir/configure.log)" >&2; exit 1; }
	nice -n 10 make -C "$dir/src" -j"$(nproc)" fio >"$dir/make.log" 2>&1 ||
		{ tail -20 "$dir/make.log" >&2; exit 1; }
	need_static "$dir/src/fio"
	"$dir/src/fio" --version >/dev/null
	install -s -m 0755 "$dir/src/fio" "$dir/fio"
	say "fio: built in $((SECONDS - t0)) s"
	bin="$dir/fio"
fi
install -m 0755 "$bin" "$out/fio"
need_static "$out/fio"
say "fio: $("$out/fio" --version), static -> $out/fio"
