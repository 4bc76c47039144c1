# SPDX-License-Identifier: GPL-2.0
#
# furing: FUSE over io_uring, an out-of-tree Rust-for-Linux module.
#
#   make                 build furing.ko in place against KDIR (default: the cached
#                        normal test kernel, built first if missing)
#   make CLIPPY=1        the same, linted with clippy
#   make check           everything, tested in QEMU on the normal and debug kernels
#   make check KDIR=...  the same on a kernel of your own (its config checked first)
#   make install-tests DESTDIR=...
#                        the kselftests for a test machine: DESTDIR/run_tests.sh
#   make soak            killed and restarted servers under load, SOAK_MIN minutes
#   make demo            boot, load furing and show what it does
#   make bench           fio over every transport in QEMU, table + bench/results/*.json
#   make bench-quick     the same, one short rep: fails only if a transport fails
#   make bench-profile   a few cells under perf: where the time goes, per symbol
#   make bench-v2        the v2 series' fio line over passthrough_hp on furing basic,
#                        pinned, zero-copy, beside the series' claims
#   make bench-classes   payload buffer classes against one class of max_write, pinned
#                        and not, under 1 MiB I/O beside small-file churn
#   make rustfmt         format the Rust sources; rustfmtcheck only checks
#   make clean

FURING_CACHE ?= $(HOME)/.cache/furing
LLVM_SUFFIX ?= -19
BINDGEN ?= $(HOME)/.cargo/bin/bindgen
RUSTFMT ?= $(shell command -v rustfmt || echo $(HOME)/.cargo/bin/rustfmt)
KMAKE := LLVM=$(LLVM_SUFFIX) RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc \
	 BINDGEN=$(BINDGEN) CLIPPY_DRIVER=/usr/bin/clippy-driver
export FURING_CACHE

all: modules

modules:
	$(MAKE) -C $(or $(KDIR),$(shell scripts/kernel.sh normal)) M=$(CURDIR) $(KMAKE) modules

check:
	scripts/check.sh

install-tests:
	scripts/install-tests.sh $(or $(DESTDIR),$(error DESTDIR: where to install the tests))

soak:
	scripts/soak.sh

demo:
	scripts/demo.sh

bench:
	scripts/bench.sh

bench-quick:
	scripts/bench.sh --quick

bench-profile:
	scripts/bench.sh --profile

bench-v2:
	scripts/bench.sh --v2

bench-classes:
	scripts/bench.sh --classes

RUST_ROOT := rust/furing_main.rs
rustfmt:
	$(RUSTFMT) --edition 2021 --config-path $(CURDIR)/.rustfmt.toml $(RUST_ROOT)

rustfmtcheck:
	$(RUSTFMT) --check --edition 2021 --config-path $(CURDIR)/.rustfmt.toml $(RUST_ROOT)

clean:
	$(MAKE) -C $(or $(KDIR),$(shell scripts/kernel.sh normal)) M=$(CURDIR) $(KMAKE) clean
	rm -f rust/ffi_generated.rs

.PHONY: all modules check install-tests soak demo bench bench-quick bench-profile bench-v2 bench-classes rustfmt rustfmtcheck clean
