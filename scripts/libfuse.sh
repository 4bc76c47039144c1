#!/usr/bin/env bash
# libfuse.sh OUT: build libfuse 3.18's example/passthrough_hp with io-uring on, as
# static binaries, twice, and copy them to OUT (the initramfs puts them in /bin):
#  - OUT/passthrough_hp: Debian sid's fuse3 source package, unmodified;
#  - OUT/passthrough_hp-furing: the same source with scripts/libfuse/*.patch applied
#    (furing's -o io_uring_bufring / _pinned / _zero_copy / io_uring_bufs=N, built
#    against include/uapi/linux/furing.h; no change with the options off).
# meson -Denable-io-uring=true, and a build fails unless fuse_config.h says HAVE_URING
# (a missing liburing or libnuma would silently turn io-uring off). Cached in
# $FURING_CACHE/libfuse/<version>/ and <version>-furing-<hash of the patches and the
# UAPI header>/; a warm run only copies.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
out=${1:?usage: libfuse.sh OUT}
base="$FURING_CACHE/libfuse"
patches=("$here"/libfuse/*.patch)
uapi="$FURING_TOP/include/uapi"
mkdir -p "$base" "$out"

# build DIR [CFLAGS]: meson + ninja of DIR/src into DIR/build
build() {
	local dir=$1 cflags=${2:-}
	(cd "$dir/src" && meson setup "$dir/build" --buildtype=release \
		-Denable-io-uring=true -Dexamples=true -Dtests=false -Dutils=false -Duseroot=false \
		-Ddefault_library=static -Dprefer_static=true \
		${cflags:+-Dc_args="$cflags" -Dcpp_args="$cflags"} \
		-Dc_link_args=-static -Dcpp_link_args=-static) >"$dir/meson.log" 2>&1 ||
		{ tail -20 "$dir/meson.log" >&2; exit 1; }
	grep -q '^#define HAVE_URING' "$dir/build/fuse_config.h" ||
		{ echo "libfuse: HAVE_URING not set (see $dir/meson.log)" >&2; exit 1; }
	ninja -C "$dir/build" example/passthrough_hp >"$dir/ninja.log" 2>&1 ||
		{ tail -20 "$dir/ninja.log" >&2; exit 1; }
}

ver=$(ls -d "$base"/3.18.*/build/example/passthrough_hp 2>/dev/null | sort -V | tail -n1 |
	sed 's|.*/\(3\.18\.[^/]*\)/build/.*|\1|' || true)
if [[ -z "$ver" ]]; then
	ver=$(src_version fuse3/sid '^3\.18\.')
	say "libfuse: building passthrough_hp from fuse3 $ver (io-uring on, static)"
	fetch_src fuse3 "$ver" "$base/$ver" --skip-patches
	build "$base/$ver"
fi
install -m 0755 "$base/$ver/build/example/passthrough_hp" "$out/passthrough_hp"
say "libfuse: passthrough_hp from fuse3 $ver (HAVE_URING, unmodified) -> $out/passthrough_hp"

hash=$(cat "${patches[@]}" "$uapi/linux/furing.h" | sha256sum | cut -c1-12)
fdir="$base/$ver-furing-$hash"
if [[ ! -x "$fdir/build/example/passthrough_hp" ]]; then
	rm -rf "$base/$ver"-furing-*
	mkdir -p "$fdir"
	cp -a "$base/$ver/src" "$fdir/src"
	for p in "${patches[@]}"; do
		patch -d "$fdir/src" -p1 --quiet --forward <"$p" ||
			{ echo "libfuse: $(basename "$p") does not apply to fuse3 $ver" >&2; exit 1; }
		say "libfuse: applied $(basename "$p")"
	done
	# the patch builds its furing modes only where it finds <linux/furing.h>
	echo '#include <linux/furing.h>' | cc -I"$uapi" -fsyntax-only -x c - ||
		{ echo "libfuse: <linux/furing.h> not found under $uapi" >&2; exit 1; }
	say "libfuse: building passthrough_hp-furing (furing's queue modes, <linux/furing.h> from $uapi)"
	build "$fdir" "-I$uapi"
fi
install -m 0755 "$fdir/build/example/passthrough_hp" "$out/passthrough_hp-furing"
say "libfuse: passthrough_hp-furing from fuse3 $ver + ${#patches[@]} patches" \
	"($(cd "$here/libfuse" && echo *.patch)) -> $out/passthrough_hp-furing"
