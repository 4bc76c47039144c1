#!/usr/bin/env bash
# libfuse.sh OUT: build libfuse 3.18's example/passthrough_hp with io-uring on, as one
# static binary, and copy it to OUT/passthrough_hp (the initramfs puts it in /bin).
# The source is Debian sid's fuse3 source package (deb-src line added by deps.sh),
# unmodified; meson -Denable-io-uring=true, and the build fails unless fuse_config.h
# says HAVE_URING (a missing liburing or libnuma would silently turn io-uring off).
# Cached in $FURING_CACHE/libfuse/<version>; a warm run only copies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
out=${1:?usage: libfuse.sh OUT}
base="$FURING_CACHE/libfuse"
mkdir -p "$base" "$out"

bin=$(ls -d "$base"/3.18.*/build/example/passthrough_hp 2>/dev/null | sort -V | tail -n1 || true)
if [[ -z "$bin" ]]; then
	ver=$(src_version fuse3/sid '^3\.18\.')
	dir="$base/$ver"
	say "libfuse: building passthrough_hp from fuse3 $ver (io-uring on, static)"
	fetch_src fuse3 "$ver" "$dir" --skip-patches
	(cd "$dir/src" && meson setup "$dir/build" --buildtype=release \
		-Denable-io-uring=true -Dexamples=true -Dtests=false -Dutils=false -Duseroot=false \
		-Ddefault_library=static -Dprefer_static=true \
		-Dc_link_args=-static -Dcpp_link_args=-static) >"$dir/meson.log" 2>&1 ||
		{ tail -20 "$dir/meson.log" >&2; exit 1; }
	grep -q '^#define HAVE_URING' "$dir/build/fuse_config.h" ||
		{ echo "libfuse: HAVE_URING not set (see $dir/meson.log)" >&2; exit 1; }
	ninja -C "$dir/build" example/passthrough_hp >"$dir/ninja.log" 2>&1 ||
		{ tail -20 "$dir/ninja.log" >&2; exit 1; }
	bin="$dir/build/example/passthrough_hp"
fi
ver=$(basename "$(dirname "$(dirname "$(dirname "$bin")")")")
install -m 0755 "$bin" "$out/passthrough_hp"
say "libfuse: passthrough_hp from fuse3 $ver (HAVE_URING) -> $out/passthrough_hp"
