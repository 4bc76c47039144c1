# lib.sh: shared settings for furing's scripts (sourced, not run).
# Override any of these from the environment.
: "${FURING_CACHE:=$HOME/.cache/furing}"
case ":$PATH:" in *":$HOME/.cargo/bin:"*) ;; *) PATH="$PATH:$HOME/.cargo/bin" ;; esac
: "${BINDGEN:=$HOME/.cargo/bin/bindgen}"
: "${LLVM_SUFFIX:=-19}"
: "${LIBCLANG_PATH:=/usr/lib/llvm-19/lib}"
: "${KERNEL_TARBALL:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/kernel/linux-source-7.3.tar.xz}"
export FURING_CACHE BINDGEN LIBCLANG_PATH
FURING_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KVER=7.3.4
# The kernel make variables every build uses (Debian's rustc-web; rustup's has no rust-src).
KMAKE_VARS=(LLVM="$LLVM_SUFFIX" RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	    BINDGEN="$BINDGEN" CLIPPY_DRIVER=/usr/bin/clippy-driver)
say() { printf '[furing] %s\n' "$*"; }

# kernel_src: unpack the pinned kernel source once (sha256-checked) and print its path.
kernel_src() {
	local dir="$FURING_CACHE/src/linux-$KVER" sum
	if [[ ! -f "$dir/.furing-unpacked" ]]; then
		[[ -f "$KERNEL_TARBALL" ]] || { echo "missing $KERNEL_TARBALL" >&2; return 1; }
		say "checking sha256 of $(basename "$KERNEL_TARBALL")" >&2
		sum=$(cut -d' ' -f1 "$KERNEL_TARBALL.sha256")
		echo "$sum  $KERNEL_TARBALL" | sha256sum -c --quiet - >&2
		say "unpacking kernel source into $dir" >&2
		rm -rf "$dir" "$dir.tmp"
		mkdir -p "$dir.tmp"
		tar -xJf "$KERNEL_TARBALL" -C "$dir.tmp" --strip-components=1
		grep -q "^SUBLEVEL = ${KVER##*.}$" "$dir.tmp/Makefile" || { echo "tarball is not $KVER" >&2; return 1; }
		mv "$dir.tmp" "$dir"
		touch "$dir/.furing-unpacked"
	fi
	echo "$dir"
}

# selftest_src [KDIR]: the kernel source the selftests build with (kselftest_harness.h,
# the FUSE UAPI header): KDIR's own (its "source" link when built with O=), else the
# pinned tree.
selftest_src() {
	local k=${1:-}
	[[ -n $k && -e $k/source ]] && k=$(cd "$k/source" && pwd)
	if [[ -n $k && -f $k/tools/testing/selftests/kselftest_harness.h ]]; then
		echo "$k"
	else
		kernel_src
	fi
}

# need_static FILE: fail unless FILE is a statically linked executable (the VM has no
# shared libraries).
need_static() {
	file "$1" | grep -q 'statically linked' ||
		{ echo "$1 is not statically linked: $(file -b "$1")" >&2; return 1; }
}

# stage NAME CMD...: run CMD, then print how long it took (to stderr).
stage() {
	local name=$1 t=$SECONDS
	shift
	"$@"
	printf '# stage %-28s %4d s\n' "$name" $((SECONDS - t)) >&2
}

# src_version SPEC REGEX: the version of the source package SPEC (as for apt-get source,
# e.g. fio/bookworm) if it matches REGEX; the package lists are updated once when apt
# does not know it yet (deps.sh adds the deb-src lines).
src_version() {
	local spec=$1 re=$2 v try
	for try in 1 2; do
		v=$(apt-get source --print-uris -qq "$spec" 2>/dev/null |
			awk '$2 ~ /\.dsc$/ { v = $2; sub(/^[^_]*_/, "", v); sub(/\.dsc$/, "", v); print v }')
		if [[ -n $v && $v =~ $re ]]; then
			echo "$v"
			return 0
		fi
		((try == 1)) && apt-get update -qq
	done
	echo "no source package $spec matching $re (deb-src missing? run scripts/deps.sh)" >&2
	return 1
}

# fetch_src PKG VERSION DIR [DPKG-SOURCE-OPTION...]: download the source package
# PKG=VERSION into DIR/dl and unpack it into DIR/src.
fetch_src() {
	local pkg=$1 ver=$2 dir=$3
	shift 3
	rm -rf "$dir"
	mkdir -p "$dir/dl"
	(cd "$dir/dl" && apt-get source -qq --download-only "$pkg=$ver" 2>/dev/null)
	dpkg-source -x "$@" "$dir/dl/${pkg}_${ver#*:}.dsc" "$dir/src" >"$dir/dpkg-source.log" 2>&1
}

# install_suite DESTDIR TESTDIR [KO]: lay out the kselftests of TESTDIR (a selftests
# build: the tests of its kselftest-list.txt, extra/, runner/) as the kernel's
# `make -C tools/testing/selftests install` would: DESTDIR/run_kselftest.sh and
# kselftest/ (the kernel's runner), kselftest-list.txt, the tests in DESTDIR/furing/
# with their settings (timeout), plus furing's run_tests.sh (readies the machine, then
# runs run_kselftest.sh), the helpers (furing-server, furing-launch, passthrough_hp (and -furing),
# fio, furing-soak) in DESTDIR/furing/bin/, and KO as DESTDIR/furing/furing.ko.
install_suite() {
	local dest=$1 testdir=$2 ko=${3:-} t
	mkdir -p "$dest/furing/bin"
	cp -r "$testdir/runner/." "$dest/"
	install -m 0755 "$FURING_TOP/selftests/run_tests.sh" "$dest/run_tests.sh"
	install -m 0644 "$testdir/kselftest-list.txt" "$dest/kselftest-list.txt"
	# A test binary may run this long (kselftest's default is 45 s).
	echo "timeout=900" >"$dest/furing/settings"
	while IFS=: read -r _ t; do
		install -m 0755 "$testdir/$t" "$dest/furing/"
	done <"$testdir/kselftest-list.txt"
	install -m 0755 "$testdir"/extra/* "$dest/furing/bin/"
	if [[ -n $ko ]]; then install -m 0644 "$ko" "$dest/furing/furing.ko"; fi
}
