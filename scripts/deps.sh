#!/usr/bin/env bash
# deps.sh: install what furing's build and test rig needs on Debian 12 (idempotent).
#   apt: Rust (rustc-web + rust-web-src + clippy), clang/LLVM 19, QEMU, kernel build
#        tools, busybox-static, liburing, fio, meson (libfuse build for the tests);
#        file; deb-src lines for sid (fuse3) and bookworm (fio, static for the bench).
#   cargo: bindgen-cli 0.72.1 (Debian's bindgen is too old for 7.3).
# Skips every step whose result is already present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

pkgs=(rustc-web rust-web-src rust-web-clippy clang-19 lld-19 llvm-19 libclang-19-dev
      qemu-system-x86 flex bison bc libelf-dev libssl-dev cpio busybox-static kmod
      liburing-dev fio make gcc xz-utils python3
      meson ninja-build pkg-config libnuma-dev g++ dpkg-dev file python3-matplotlib)

# Two source packages are built from Debian's sources: libfuse 3.18 (fuse3, only in
# sid; for passthrough_hp) and fio (bookworm's, static for the bench VM). deb-src lines
# only, so no binary package ever comes from sid.
need_update=0
add_src() { # add_src SUITE WHAT
	local f=/etc/apt/sources.list.d/furing-$1-src.sources
	[[ -f $f ]] && return 0
	say "apt: adding deb-src for $1 ($2) in $f"
	printf '%s\n' "Types: deb-src" "URIs: http://deb.debian.org/debian" "Suites: $1" \
		"Components: main" "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" >"$f"
	need_update=1
}
add_src sid "fuse3 3.18 source package"
add_src bookworm "fio source package"

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	say "apt: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	need_update=0
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	say "apt: all ${#pkgs[@]} packages present"
fi

if "$BINDGEN" --version 2>/dev/null | grep -q "^bindgen 0.72.1$"; then
	say "bindgen-cli 0.72.1 present ($BINDGEN)"
else
	say "cargo: installing bindgen-cli 0.72.1 (~2 min)"
	command -v cargo >/dev/null || { echo "cargo not found: install rustup's cargo first" >&2; exit 1; }
	cargo install --locked --quiet --root "$(dirname "$(dirname "$BINDGEN")")" bindgen-cli --version 0.72.1
fi
if ((need_update)); then
	apt-get update -qq
fi
