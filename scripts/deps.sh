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
      meson ninja-build pkg-config libnuma-dev g++ dpkg-dev file)

# libfuse 3.18 (the fuse3 source package, for passthrough_hp) is only in sid: a
# deb-src line for it, sources only, so no binary package ever comes from sid.
sid_src=/etc/apt/sources.list.d/furing-sid-src.sources
need_update=0
if [[ ! -f $sid_src ]]; then
	say "apt: adding deb-src for sid (fuse3 3.18 source package) in $sid_src"
	cat >"$sid_src" <<-'SRC'
	Types: deb-src
	URIs: http://deb.debian.org/debian
	Suites: sid
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	SRC
	need_update=1
fi
# fio for the benchmark VM is built static from bookworm's fio source package
# (scripts/fio.sh): a deb-src line for bookworm, sources only, in the same style.
bookworm_src=/etc/apt/sources.list.d/furing-bookworm-src.sources
if [[ ! -f $bookworm_src ]]; then
	say "apt: adding deb-src for bookworm (fio source package) in $bookworm_src"
	cat >"$bookworm_src" <<-'SRC'
	Types: deb-src
	URIs: http://deb.debian.org/debian
	Suites: bookworm
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	SRC
	need_update=1
fi

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
