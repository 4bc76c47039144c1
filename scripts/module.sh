#!/usr/bin/env bash
# module.sh VARIANT: build furing.ko against the VARIANT kernel (built if missing) with
# CLIPPY=1, into $FURING_CACHE/mod/VARIANT (the source tree stays clean), and print the
# path of the .ko. Fails on any compiler or clippy warning. KDIR set: against that
# kernel build directory instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

variant=${1:?usage: module.sh normal|debug}
kdir=${KDIR:-$("$here/kernel.sh" "$variant")}
kdir=$(cd "$kdir" && pwd)
out="$FURING_CACHE/mod/$(basename "$kdir")"
# A kernel of the user's (make check KDIR=...): its path keys the build too.
[[ $kdir == "$FURING_CACHE/kbuild/"* ]] || out+="-$(echo "$kdir" | sha256sum | cut -c1-8)"
mkdir -p "$out"
log="$out/build.log"
if ! make -C "$kdir" M="$FURING_TOP" MO="$out" "${KMAKE_VARS[@]}" CLIPPY=1 modules >"$log" 2>&1; then
	cat "$log" >&2
	echo "module build failed ($variant)" >&2
	exit 1
fi
if grep -E "^(warning|error)(\[|:)|: (warning|error):" "$log" >&2; then
	echo "module build for $variant has warnings (see $log)" >&2
	exit 1
fi
echo "$out/furing.ko"
