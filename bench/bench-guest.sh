#!/bin/sh
# bench-guest.sh: furing's benchmark inside the VM (/bench.sh, furing.mode=bench).
# Settings come from /etc/furing-bench (written by scripts/bench.sh). For each rep and
# each transport (interleaved, so drift hits every transport alike): fresh file set in
# the tmpfs backing dir, furing-server mounted on /mnt (none for "ceiling": fio runs on
# the backing dir itself), every workload with fio, umount, server exit checked.
# One line per cell: "BENCH <transport> <workload> <rep> <MiB/s>"; a failing FUSE
# transport prints "BENCH-ERROR <transport> <workload> <rep> <why>" and the script exits
# 1. The mixed workload prints two cells, "mixed-data" (MiB/s) and "mixed-meta" (ops/s).
# Before each umount, the server's memory: "MEM <transport> <rep> <KiB...>" (see
# server_mem), and per payload buffer class "CLASSES <transport> <rep> ..." (see
# server_classes). With PERF=1 (make bench-profile) each FUSE cell runs under `perf record -a` and its
# hottest symbols follow as "PERF <transport> <workload> <report line>". Everything else
# is a "#" comment.

REPS=3 RUNTIME=4 SIZE=64M JOBS=2 BS=1M DEPTH=8 FILES=1000 PERF=0 RAMP=30
PERF_FREQ=1000 PERF_LIMIT=0.8 PERF_LINES=30 TIMING=0
CLASSES="4096x8 1048576x2"
TRANSPORTS="basic bufring pinned zerocopy classic intree intree-bufpool intree-bufpool-fixed intree-zerocopy intree-classic ceiling"
WORKLOADS="randread-dio randwrite-dio randread-buf randwrite-buf seqread-buf seqwrite-buf"
[ -f /etc/furing-bench ] && . /etc/furing-bench
. /lib/guest-queues.sh
back=/tmp/back
mnt=/mnt
errors=0

# server_opts TRANSPORT: furing-server's mode options
server_opts() {
	case $1 in
	basic) echo "--depth $DEPTH" ;;
	bufring) echo "--depth $DEPTH --bufring" ;;
	pinned) echo "--depth $DEPTH --bufring --pin-headers --pin-buffers" ;;
	zerocopy) echo "--depth $DEPTH --zero-copy" ;;
	# the same with payload buffer classes (CLASSES: SIZExN each, sizes increasing):
	# a few buffers of max_write for the data, many small ones for the rest
	bufring-classes | pinned-classes)
		# shellcheck disable=SC2086
		echo "$(server_opts "${1%-classes}")$(printf ' --buf-class %s' $CLASSES)" ;;
	classic) echo "--no-uring" ;;
	# The same server on the kernel's own /dev/fuse: 7.3's io-uring, and read/write.
	intree) echo "--dev /dev/fuse --depth $DEPTH" ;;
	intree-classic) echo "--dev /dev/fuse --no-uring" ;;
	# 7.3's own buffer pools (plain, and registered as a fixed buffer) and zero-copy
	intree-bufpool) echo "--dev /dev/fuse --depth $DEPTH --bufpool" ;;
	intree-bufpool-fixed) echo "--dev /dev/fuse --depth $DEPTH --bufpool-fixed" ;;
	intree-zerocopy) echo "--dev /dev/fuse --depth $DEPTH --zero-copy" ;;
	# libfuse 3.18's passthrough_hp (io-uring on), unmodified: through furing-launch on
	# furing, mounting itself on /dev/fuse.
	hp-furing | hp-intree) echo "-o io_uring" ;;
	# passthrough_hp-furing (libfuse with scripts/libfuse/*.patch) in furing's modes
	hp-furing-bufring) echo "-o io_uring,io_uring_bufring" ;;
	hp-furing-pinned) echo "-o io_uring,io_uring_pinned" ;;
	hp-furing-zerocopy) echo "-o io_uring,io_uring_zero_copy" ;;
	*) return 1 ;;
	esac
}

# workload_opts WORKLOAD: fio's options for it. The guest kernel has no fadvise
# (no CONFIG_ADVISE_SYSCALLS), so fio cannot drop the page cache between passes: the
# buffered reads instead loop over the file, and every loop reopens it, which empties
# the cache of a FUSE file (furing-server never sets FOPEN_KEEP_CACHE).
workload_opts() {
	case $1 in
	randread-dio) echo "--rw=randread --direct=1 --time_based" ;;
	randwrite-dio) echo "--rw=randwrite --direct=1 --time_based" ;;
	randread-buf) echo "--rw=randread --loops=1000000" ;;
	# 4 KiB direct random reads from 8 psync threads (queue depth 8): IOPS
	randread-4k-iops) echo "--rw=randread --direct=1 --time_based --bs=4k --numjobs=8" ;;
	# metadata: create, stat and unlink of many 4 KiB files (fio's file engines): ops/s
	meta-create) echo "--ioengine=filecreate --rw=write" ;;
	meta-stat) echo "--ioengine=filestat --rw=read" ;;
	meta-unlink) echo "--ioengine=filedelete --rw=read" ;;
	# 1 MiB direct random reads and writes (one job) and, at the same time, in a
	# reporting group of its own (its own terse line), small files: FILES 4 KiB files
	# per loop each created on open, written and closed, unlinked at the next loop,
	# until RUNTIME is up (fio's file engines count no-ops once time-based)
	mixed) echo "--rw=randrw --direct=1 --time_based --numjobs=1" \
		"--name=small --new_group --ioengine=psync --rw=write --bs=4k --filesize=4k" \
		"--nrfiles=$FILES --openfiles=1 --create_on_open=1 --unlink_each_loop=1" \
		"--unlink=1 --loops=1000000 --runtime=$RUNTIME" ;;
	randwrite-buf) echo "--rw=randwrite --time_based" ;;
	seqread-buf) echo "--rw=read --loops=1000000" ;;
	seqwrite-buf) echo "--rw=write --time_based" ;;
	# make bench-v2: the v2 series' own fio line (v2_base), direct and buffered
	v2-randread-dio) echo "--rw=randread --direct=1" ;;
	v2-randwrite-dio) echo "--rw=randwrite --direct=1" ;;
	v2-seqread-dio) echo "--rw=read --direct=1" ;;
	v2-randread-buf) echo "--rw=randread" ;;
	v2-randwrite-buf) echo "--rw=randwrite" ;;
	v2-seqread-buf) echo "--rw=read" ;;
	*) return 1 ;;
	esac
}

# The v2 series' benchmark ("fio --name=test_run --ioengine=sync --rw=rand{read,write}
# --bs=1M --size=1G --numjobs=2 --ramp_time=30 --group_reporting=1"), SIZE and RAMP as
# set (make bench-v2: 1G and 30 by default)
v2_base="--name=test_run --ioengine=sync --bs=1M --size=$SIZE --ramp_time=$RAMP --group_reporting=1"

# error TRANSPORT WORKLOAD REP WHY...: a ceiling cell that cannot run is NA (tmpfs may
# refuse O_DIRECT); anything failing on a FUSE transport fails the run.
error() {
	if [ "$1" = ceiling ]; then
		echo "BENCH $1 $2 $3 NA"
		echo "# ceiling $2: $4"
	else
		echo "BENCH-ERROR $*"
		errors=$((errors + 1))
	fi
}

# cell TRANSPORT WORKLOAD REP DIR: one fio run, prints its BENCH line: MiB/s, or ops/s
# for the *-iops and meta-* workloads (mixed: two lines, mixed-data in MiB/s and
# mixed-meta in ops/s), and (with PERF=1; TIMING=1, the default there, turns furing's request
# timing on) for a cell served over furing's ring a "PROFILE <transport> <workload>
# <rep> <requests> <wait> <task work> <copy in> <copy out>" line (what the cell added
# to furing's counters, microseconds)
cell() {
	opts=$(workload_opts "$2") || { error "$1" "$2" "$3" "unknown workload"; return; }
	case $2 in
	meta-*)
		# FILES files per job in their own directory (made with the file set), each
		# touched once
		set -- "$1" "$2" "$3" "$4/meta"
		base="--name=meta --nrfiles=$FILES --filesize=4k --openfiles=1 --bs=4k"
		;;
	v2-*) base=$v2_base ;;
	*) base="--name=bench --size=$SIZE --bs=$BS --ioengine=psync --runtime=$RUNTIME" ;;
	esac
	# both vCPUs sampled: fio, the server and the kernel (symbols from /proc/kallsyms)
	perf=
	[ "$PERF" = 1 ] && [ "$1" != ceiling ] &&
		perf="perf record -a -q -N -e cpu-clock -F $PERF_FREQ -o /tmp/perf.data --" &&
		before=$(furing_times | cut -d' ' -f1-5)
	# the options before the first --name are every job's
	# shellcheck disable=SC2086
	if ! $perf fio --directory="$4" --group_reporting --invalidate=0 --fadvise_hint=0 \
		--output-format=terse $base --numjobs="$JOBS" $opts \
		>/tmp/fio.out 2>/tmp/fio.err; then
		error "$1" "$2" "$3" "fio failed: $(grep -v '^3;' /tmp/fio.out /tmp/fio.err | tail -n1)"
		return
	fi
	# terse v3, a line per group: 4 = group, 5 = error, 7/8 = read KiB/s / IOPS,
	# 48/49 = write KiB/s / IOPS; mixed: group 0 the data, group 1 the small files
	groups=1
	case $2 in
	*-iops | meta-*) fields='$8 + $49' ;;
	mixed) fields='$4 ? $49 : ($7 + $48) / 1024' groups=2 ;;
	*) fields='($7 + $48) / 1024' ;;
	esac
	val=$(awk -F';' '$1 == 3 && $5 == 0 { v[$4] = sprintf("%.1f", '"$fields"'); n++ }
		END { if (n != '"$groups"') exit 1
			for (g = 0; g < n; g++) printf "%s%s", g ? " " : "", v[g] }' /tmp/fio.out) ||
		{ error "$1" "$2" "$3" "no fio result: $(tail -n1 /tmp/fio.err)"; return; }
	if [ "$2" = mixed ]; then
		echo "BENCH $1 mixed-data $3 ${val% *}"
		echo "BENCH $1 mixed-meta $3 ${val#* }"
	else
		echo "BENCH $1 $2 $3 $val"
	fi
	[ -n "$perf" ] || return 0
	perf report -i /tmp/perf.data --stdio -q --sort dso,sym --percent-limit "$PERF_LIMIT" \
		2>/dev/null | head -n "$PERF_LINES" | sed "s/^/PERF $1 $2 /"
	# shellcheck disable=SC2086
	set -- "$1" "$2" "$3" $before $(furing_times | cut -d' ' -f1-5)
	[ "$9" -gt "$4" ] && echo "PROFILE $1 $2 $3 $(($9 - $4)) $((${10} - $5))" \
		"$((${11} - $6)) $((${12} - $7)) $((${13} - $8))"
}

# pins: pages held pinned (FOLL_PIN) system-wide, by anyone
pins() {
	echo 1 >/proc/sys/vm/stat_refresh
	awk '$1 == "nr_foll_pin_acquired" { a = $2 } $1 == "nr_foll_pin_released" { r = $2 }
		END { print a - r }' /proc/vmstat
}

# server_mem TRANSPORT: "MEM <transport> <rep> <peak RSS> <RSS> <VmLck> <VmPin>
# <pinned>", KiB, of the serving process (passthrough_hp is furing-launch's child);
# pinned = the pages held pinned now over those held before the server started
server_mem() {
	pid=$srv
	case $1 in
	hp-furing*) pid=$(awk -v p=$srv '$4 == p { print $1; exit }' /proc/[0-9]*/stat 2>/dev/null) ;;
	esac
	awk -v t="$1" -v r="$r" -v pin=$((($(pins) - pins0) * 4)) '
		/^VmHWM:/ { h = $2 } /^VmRSS:/ { s = $2 } /^VmLck:/ { l = $2 } /^VmPin:/ { p = $2 }
		END { if (h) print "MEM", t, r, h, s, l + 0, p + 0, pin }' "/proc/$pid/status"
}

# server_classes TRANSPORT: per payload buffer class of furing's buffer-ring queues
# (debugfs), over every queue: "CLASSES <transport> <rep> <class> <buffer size>
# <buffers> <requests that waited for one>"; nothing for other transports
server_classes() {
	cat /sys/kernel/debug/furing/*/classes 2>/dev/null |
		awk -v t="$1" -v r="$r" 'NF == 6 && $1 != "qid" { s[$2] = $3; b[$2] += $4; w[$2] += $6 }
			END { for (k = 0; k in s; k++) print "CLASSES", t, r, k, s[k], b[k], w[k] }'
}

# mounted FSTYPE-REGEX: whether /mnt is mounted with a matching fs type
mounted() {
	awk -v m="$mnt" -v t="$1" '$2 == m && $3 ~ t { f = 1 } END { exit !f }' /proc/mounts
}

# wait_server TRANSPORT CMD...: wait (30 s at most) until CMD succeeds, with the
# server ($srv) alive all along
wait_server() {
	t=$1
	shift
	i=0
	until "$@"; do
		i=$((i + 1))
		if [ $i -gt 300 ] || ! kill -0 $srv 2>/dev/null; then
			error "$t" - "$r" "server not ready: $(tail -n1 /tmp/server.err)"
			kill $srv 2>/dev/null
			wait $srv
			return 1
		fi
		sleep 0.1
	done
}

# hp_ready TRANSPORT: passthrough_hp serves: on furing, both queues registered
# (debugfs); on /dev/fuse, mounted and answering
hp_ready() {
	if [ "$1" != hp-intree ]; then
		mounted '^furing$' &&
			[ "$(queues_registered)" -ge 2 ]
	else
		mounted '^fuse' && stat "$mnt" >/dev/null
	fi
}

# server_start TRANSPORT: mount /mnt with furing-server (waiting for its ready line),
# or passthrough_hp on furing (through furing-launch) or on /dev/fuse (it mounts itself)
server_start() {
	case $1 in
	hp-furing)
		furing-launch -o default_permissions "$mnt" passthrough_hp --foreground \
			--nopassthrough -o io_uring "$back" @fd >/tmp/server.out 2>/tmp/server.err &
		;;
	hp-furing-*)
		# shellcheck disable=SC2046
		furing-launch -o default_permissions "$mnt" passthrough_hp-furing --foreground \
			--nopassthrough $(server_opts "$1") "$back" @fd \
			>/tmp/server.out 2>/tmp/server.err &
		;;
	hp-intree)
		passthrough_hp --foreground --nopassthrough -o io_uring "$back" "$mnt" \
			>/tmp/server.out 2>/tmp/server.err &
		;;
	*)
		# shellcheck disable=SC2046
		furing-server --dev /dev/furing $(server_opts "$1") "$back" "$mnt" \
			>/tmp/server.out 2>/tmp/server.err &
		;;
	esac
	srv=$!
	case $1 in
	hp-*) wait_server "$1" hp_ready "$1" ;;
	*) wait_server "$1" grep -q '^furing-server: ready' /tmp/server.out ;;
	esac
}

# server_stop TRANSPORT: umount, the server must exit 0; a ring transport must have
# served over the ring (not fallen back to read()/write())
server_stop() {
	# furing's own counters (where the time goes: copies, task work), for the log
	for q in /sys/kernel/debug/furing/*/queues; do
		[ -f "$q" ] && sed "s/^/# $1 rep $r debugfs: /" "$q"
	done
	# hp-furing: what went over furing's ring (passthrough_hp counts nothing itself)
	read -r ring _ _ _ _ zc flags <<EOF
$(furing_times)
EOF
	server_mem "$1"
	server_classes "$1"
	umount "$mnt" || { error "$1" - "$r" "umount failed"; kill $srv; }
	wait $srv
	rc=$?
	case $1 in
	hp-*)
		echo "# $1 rep $r: exit $rc; furing ring requests $ring, queue flags $flags, zero-copied $zc"
		[ $rc -eq 0 ] || error "$1" - "$r" "passthrough_hp exit status $rc: $(tail -n1 /tmp/server.err)"
		[ "$1" = hp-intree ] || [ "$ring" -gt 0 ] ||
			error "$1" - "$r" "nothing served over furing's ring"
		# the mode is the transport's (libfuse falls back to basic or read() on failure)
		case $1:$flags in
		hp-furing:0x0 | hp-intree:* | hp-furing-bufring:0x1 | hp-furing-pinned:0x7) ;;
		hp-furing-zerocopy:0xf) [ "$zc" -gt 0 ] || error "$1" - "$r" "nothing zero-copied" ;;
		*) error "$1" - "$r" "queue flags $flags, not the transport's" ;;
		esac
		return
		;;
	esac
	line=$(grep '^furing-server: exit' /tmp/server.out)
	echo "# $1 rep $r: ${line#furing-server: }"
	[ $rc -eq 0 ] || error "$1" - "$r" "server exit status $rc: $(tail -n1 /tmp/server.err)"
	case $1 in
	classic | intree-classic) ;;
	*) echo "$line" | grep -q ', ring [1-9]' ||
		error "$1" - "$r" "nothing served over the ring" ;;
	esac
	case $1 in
	zerocopy | intree-zerocopy) echo "$line" | grep -q ' zc [1-9]' ||
		error "$1" - "$r" "nothing zero-copied" ;;
	# "; classes SIZExN used M, ...": every class served requests
	*-classes) echo "$line" | grep -q '; classes ' && ! echo "$line" | grep -q ' used 0[^0-9]' ||
		error "$1" - "$r" "a buffer class served nothing" ;;
	esac
}

# fio's jobs are threads sharing one fd table; the meta-* workloads open FILES per job
ulimit -n 65536 || ulimit -n 4096
insmod /lib/modules/furing.ko || { echo "BENCH-ERROR - - - insmod failed"; exit 1; }
# furing's request timers cost a few clock reads per request: only when profiling, and
# TIMING=0 leaves them off there too
[ "$TIMING" = 1 ] && echo 1 >/sys/kernel/debug/furing/timing
# Linux 7.3's own FUSE io-uring is off by default.
echo Y >/sys/module/fuse/parameters/enable_uring ||
	{ echo "BENCH-ERROR - - - fuse.enable_uring not settable"; exit 1; }
mkdir -p "$mnt"
case $WORKLOADS in
v2-*) echo "# fio $(fio --version); reps $REPS; the v2 line: sync, bs 1M, $JOBS jobs x $SIZE, ramp $RAMP s" ;;
*) echo "# fio $(fio --version); reps $REPS, runtime $RUNTIME s, $JOBS jobs x $SIZE, bs $BS, depth $DEPTH" ;;
esac
echo "# memory: $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
for r in $(seq "$REPS"); do
	# a clocksource change (TSC found unstable) slows every clock read: say so
	echo "# rep $r: clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
	for t in $TRANSPORTS; do
		rm -rf "$back"
		mkdir -p "$back"
		# the v2 line's jobs are named test_run (their files test_run.N.0)
		name=bench
		case $WORKLOADS in v2-*) name=test_run ;; esac
		fio --name=$name --directory="$back" --size="$SIZE" --numjobs="$JOBS" --bs="$BS" \
			--create_only=1 >/dev/null 2>/tmp/fio.err ||
			{ error "$t" - "$r" "file set: $(tail -n1 /tmp/fio.err)"; continue; }
		mkdir "$back/meta"
		dir=$mnt
		if [ "$t" = ceiling ]; then
			dir=$back
		elif ! server_opts "$t" >/dev/null; then
			error "$t" - "$r" "unknown transport"
			continue
		elif ! pins0=$(pins) || ! server_start "$t"; then
			continue
		fi
		for w in $WORKLOADS; do
			cell "$t" "$w" "$r" "$dir"
		done
		[ "$t" = ceiling ] || server_stop "$t"
	done
done
rm -rf "$back"
rmmod furing || { echo "BENCH-ERROR - - - rmmod failed"; errors=$((errors + 1)); }
echo "# bench: $errors errors"
[ $errors -eq 0 ]
