#!/usr/bin/env bash
# kernel.sh VARIANT: build the pinned Linux 7.3.4 (bzImage + modules) for VARIANT
# (normal | debug) into $FURING_CACHE, out of tree, and print the build directory.
#
# The source is unpacked once from ../shared/kernel/linux-source-7.3.tar.xz after its
# sha256 is checked. The build directory is keyed by kernel version + the hash of the
# config fragments, so a warm rerun does nothing but print the path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

variant=${1:?usage: kernel.sh normal|debug}
frags=("$here/kconfig/furing.config")
case "$variant" in
normal) ;;
debug) frags+=("$here/kconfig/furing-debug.config") ;;
*) echo "unknown variant '$variant'" >&2; exit 2 ;;
esac

src=$(kernel_src)
key=$(cat "${frags[@]}" "$here/kernel.sh" | sha256sum | cut -c1-12)
obj="$FURING_CACHE/kbuild/$KVER-$variant-$key"
if [[ -f "$obj/.furing-built" ]]; then
	say "kernel $KVER ($variant, config $key): cached in $obj" >&2
	echo "$obj"
	exit 0
fi

t0=$SECONDS
mkdir -p "$obj"
K=(-C "$src" O="$obj" "${KMAKE_VARS[@]}")
make "${K[@]}" -s rustavailable >&2
make "${K[@]}" -s tinyconfig >&2
"$src/scripts/kconfig/merge_config.sh" -m -O "$obj" "$obj/.config" "${frags[@]}" >/dev/null
make "${K[@]}" -s olddefconfig >&2

# merge_config does not fail when a dependency drops a symbol: check the result.
bad=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		if ! grep -qx -- "$line" "$obj/.config"; then
			echo "config: wanted '$line', got '$(grep -E "^(# )?${line%%=*}[= ]" "$obj/.config" || echo unset)'" >&2
			bad=1
		fi ;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }; sym=${sym%% *}
		if grep -q "^$sym=" "$obj/.config"; then echo "config: wanted $sym unset" >&2; bad=1; fi ;;
	esac
done < <(cat "${frags[@]}")
((bad == 0)) || { echo "kernel config for $variant is not what the fragments ask" >&2; exit 1; }

say "building kernel $KVER ($variant, config $key) in $obj (~12 min on 2 cores)" >&2
make "${K[@]}" -s -j"$(($(nproc) + 1))" bzImage modules >&2
touch "$obj/.furing-built"
say "kernel $KVER ($variant) built in $((SECONDS - t0)) s" >&2
echo "$obj"
