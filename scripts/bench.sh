#!/usr/bin/env bash
# bench.sh [--quick|--profile|--v2|--classes] (`make bench`, `make bench-quick`,
# `make bench-profile`, `make bench-v2`, `make bench-classes`):
# build what is missing (deps, normal kernel, furing.ko, selftests with furing-server,
# static fio), boot the normal kernel in QEMU and run bench/bench-guest.sh there: fio
# over every transport, reps interleaved. Prints a table (median, min-max, ratios to furing basic, to Linux 7.3's
# io-uring and to the tmpfs ceiling, spread) and writes the raw numbers as JSON to
# bench/results/<date>-<accel>.json with a PNG bar chart per workload beside it
# (--quick: JSON only, to the cache). --profile: one rep of a few transports and
# workloads, each FUSE cell under the kernel's perf tool (built static from the pinned
# source, scripts/perf.sh): the hottest symbols per cell go to
# bench/results/<date>-<accel>-perf.txt (its numbers, slowed by sampling, to the cache).
# --v2: the v2 series' own benchmark, its fio line (sync, bs 1M, 2 jobs x 1G, 30 s ramp)
# over passthrough_hp on furing basic, pinned and zero-copy, direct and buffered, with
# the series' claimed ratios beside ours (bench/results/<date>-<accel>-v2.json); the VM
# gets FURING_VM_MEM=8G unless set (2 x 1G files in tmpfs plus the page cache).
# --classes: payload buffer classes against one class sized for max_write, pinned and
# not (pinned, pinned-classes, bufring, bufring-classes), over the mixed workload (1 MiB
# direct I/O beside small-file churn) and, for context, randread-dio and meta-create;
# a table of data MiB/s, small-file ops/s, locked and pinned MiB and peak RSS
# (bench/results/<date>-<accel>-classes.json).
# Exits non-zero when a transport fails, a cell is missing or the VM splats; never on
# speed.
#
#   BENCH_REPS=3 BENCH_RUNTIME=4 BENCH_SIZE=64M    reps, seconds per cell, size per job
#   BENCH_FILES=1000                               files per job of the meta-* workloads
#   BENCH_TRANSPORTS="basic bufring pinned zerocopy classic intree intree-bufpool
#                     intree-bufpool-fixed intree-zerocopy intree-classic hp-furing
#                     hp-furing-bufring hp-furing-pinned hp-furing-zerocopy hp-intree
#                     ceiling"
#   BENCH_WORKLOADS="randread-dio randwrite-dio randread-buf randwrite-buf seqread-buf
#                    seqwrite-buf randread-4k-iops meta-create meta-stat meta-unlink"
#   BENCH_RAMP=30                                  --v2: fio's --ramp_time
#   BENCH_CLASSES="4096x8 1048576x2"               the *-classes transports' buffer
#                                                  classes, SIZExN each (--buf-class)
#   BENCH_JSON=path                                where the JSON goes
#   BENCH_PERF_FREQ=1000 BENCH_PERF_LIMIT=0.8      --profile: samples per second, the
#   BENCH_PERF_LINES=30                            smallest share (%) and most symbols
#                                                  reported per cell
#   BENCH_TIMING=1                                 --profile: furing's request timers
#                                                  (a few clock reads per request; 0
#                                                  profiles the untimed path)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

quick=0 profile=0 v2=0 classes=0
[[ "${1:-}" == --quick ]] && quick=1
[[ "${1:-}" == --profile ]] && profile=1
[[ "${1:-}" == --v2 ]] && v2=1
[[ "${1:-}" == --classes ]] && classes=1
ramp=${BENCH_RAMP:-30}
buf_classes=${BENCH_CLASSES:-4096x8 1048576x2}
if ((v2)); then
	reps=${BENCH_REPS:-5} size=${BENCH_SIZE:-1G} files=${BENCH_FILES:-1000}
	# for the timeout only: each cell's ramp plus 2 x SIZE of I/O under TCG
	runtime=$((ramp + 60))
	: "${BENCH_TRANSPORTS:=hp-furing hp-furing-pinned hp-furing-zerocopy}"
	: "${BENCH_WORKLOADS:=v2-randread-dio v2-randwrite-dio v2-seqread-dio v2-randread-buf v2-randwrite-buf v2-seqread-buf}"
	export FURING_VM_MEM=${FURING_VM_MEM:-8G}
elif ((quick)); then
	reps=${BENCH_REPS:-1} runtime=${BENCH_RUNTIME:-2} size=${BENCH_SIZE:-32M}
	files=${BENCH_FILES:-200}
elif ((profile)); then
	reps=${BENCH_REPS:-1} runtime=${BENCH_RUNTIME:-4} size=${BENCH_SIZE:-64M}
	files=${BENCH_FILES:-1000}
	: "${BENCH_TRANSPORTS:=basic pinned zerocopy intree hp-furing hp-intree}"
	: "${BENCH_WORKLOADS:=randread-dio randwrite-dio randread-4k-iops meta-stat}"
else
	reps=${BENCH_REPS:-3} runtime=${BENCH_RUNTIME:-4} size=${BENCH_SIZE:-64M}
	files=${BENCH_FILES:-1000}
	if ((classes)); then
		: "${BENCH_TRANSPORTS:=pinned pinned-classes bufring bufring-classes}"
		: "${BENCH_WORKLOADS:=randread-dio meta-create mixed}"
	fi
fi
transports=${BENCH_TRANSPORTS:-basic bufring pinned zerocopy classic intree intree-bufpool intree-bufpool-fixed intree-zerocopy intree-classic hp-furing hp-furing-bufring hp-furing-pinned hp-furing-zerocopy hp-intree ceiling}
workloads=${BENCH_WORKLOADS:-randread-dio randwrite-dio randread-buf randwrite-buf seqread-buf seqwrite-buf randread-4k-iops meta-create meta-stat meta-unlink}
work="$FURING_CACHE/work"
mkdir -p "$work"
t_all=$SECONDS

# Builds share the 2 cores with whatever else runs: niced.
stage deps "$here/deps.sh"
kdir=$(stage kernel nice -n 10 "$here/kernel.sh" normal | tail -n1)
ko=$(KDIR=$kdir stage module nice -n 10 "$here/module.sh" normal | tail -n1)
stage selftests nice -n 10 make -s -C "$FURING_TOP/selftests" KSRC="$(kernel_src)" OUT="$work/tests"
stage libfuse nice -n 10 "$here/libfuse.sh" "$work/tests/extra"
stage fio nice -n 10 "$here/fio.sh" "$work/bench"
bins=$work/bench/fio
if ((profile)); then
	stage perf "$here/perf.sh" "$work/bench-perf"
	bins+=:$work/bench-perf/perf
fi

accel=$("$here/accel.sh" "$kdir" "$ko" "$work/tests" bench-probe)
export FURING_ACCEL=$accel
say "accelerator: $accel"
[[ $accel == kvm ]] ||
	say "$accel is an emulated CPU: the numbers compare transports, they are not hardware numbers"

"$here/initramfs.sh" bench "$work/bench.cpio.gz" "$ko" "$work/tests" "$bins" \
	PERF="$profile" REPS="$reps" RUNTIME="$runtime" SIZE="$size" FILES="$files" RAMP="$ramp" \
	TRANSPORTS="$transports" WORKLOADS="$workloads" CLASSES="$buf_classes" \
	PERF_FREQ="${BENCH_PERF_FREQ:-1000}" PERF_LIMIT="${BENCH_PERF_LIMIT:-0.8}" \
	PERF_LINES="${BENCH_PERF_LINES:-30}" TIMING="${BENCH_TIMING:-$profile}"
ntr=$(wc -w <<<"$transports") nwl=$(wc -w <<<"$workloads")
# Generous: each cell is RUNTIME s plus fio's start and exit, slow under TCG.
tmo=$((300 + reps * ntr * (60 + nwl * (runtime + 30))))
out="$work/bench-run"
rm -rf "$out"
say "booting Linux $KVER (normal) under QEMU ($accel, 2 vCPUs): $reps rep(s) x $ntr transports" \
	"x $nwl workloads, ${runtime} s each (timeout $tmo s)"
t=$SECONDS
vm_ok=1
"$here/vm.sh" "$kdir" "$work/bench.cpio.gz" "$out" bench "$tmo" || vm_ok=0
printf '# stage %-28s %4d s\n' "vm bench" $((SECONDS - t)) >&2
tr -d '\r' <"$out/results.log" | grep -v -e '^BENCH ' -e '^MEM ' -e '^CLASSES ' -e '^PROFILE ' -e '^PERF ' \
	-e '^FURING-END' ||
	true

# per_request LOG: each profiled cell's samples by binary (dso) as time per request (ops/s
# workloads) or per MiB, from the cell's share of both vCPUs and its result; a
# transport listed twice is averaged. Only the symbols above the report's limit count.
per_request() {
	/usr/bin/python3 - "$1" <<'PY'
import collections, re, sys
pct = collections.defaultdict(collections.Counter)
runs = collections.Counter()
vals = collections.defaultdict(list)
seen = set()
for line in open(sys.argv[1], errors="replace"):
    line = line.replace("\r", "")
    f = line.split()
    if f[:1] == ["BENCH"] and len(f) == 5 and f[4] != "NA":
        vals[(f[1], f[2])].append(float(f[4]))
        seen.discard((f[1], f[2]))
    m = re.match(r"PERF (\S+) (\S+)\s+([\d.]+)%\s+(\S+)\s+\[.\]\s+(\S+)", line)
    if m:
        cell = (m.group(1), m.group(2))
        if cell not in seen:
            seen.add(cell)
            runs[cell] += 1
        # the idle loop apart from the kernel's work
        dso = "idle" if "safe_halt" in m.group(5) or "idle" in m.group(5) else m.group(4)
        pct[cell][dso] += float(m.group(3))
print()
print("# per request (ops/s workloads) or per MiB: microseconds of the 2 vCPUs, by binary")
for cell, by in pct.items():
    v = vals.get(cell)
    if not v:
        continue
    rate = sum(v) / len(v)
    unit = "us/op" if cell[1].endswith("-iops") or cell[1].startswith("meta") else "us/MiB"
    parts = sorted(by.items(), key=lambda kv: -kv[1])
    print("## %s %s (%.1f %s/s): " % (cell[0], cell[1], rate, "ops" if unit == "us/op" else "MiB")
          + ", ".join("%s %.2f" % (d, p / runs[cell] / 100 * 2 / rate * 1e6) for d, p in parts)
          + " " + unit)
PY
}

if ((profile)); then
	perf_txt=$FURING_TOP/bench/results/$(date -u +%Y-%m-%d-%H%M)-$accel-perf.txt
	mkdir -p "$(dirname "$perf_txt")"
	{
		echo "# furing bench-profile: Linux $KVER, $accel, commit $(git -C "$FURING_TOP" describe --always --dirty 2>/dev/null)"
		echo "# BENCH_TRANSPORTS=\"$transports\" BENCH_WORKLOADS=\"$workloads\" BENCH_RUNTIME=$runtime"
		echo "# BENCH_PERF_FREQ=${BENCH_PERF_FREQ:-1000} BENCH_PERF_LIMIT=${BENCH_PERF_LIMIT:-0.8} BENCH_PERF_LINES=${BENCH_PERF_LINES:-30} BENCH_TIMING=${BENCH_TIMING:-1}"
		echo "# perf record -a -e cpu-clock over each fio run (2 vCPUs: fio, server, kernel);"
		echo "# perf report --sort dso,sym, symbols over ${BENCH_PERF_LIMIT:-0.8}%"
		tr -d '\r' <"$out/results.log" | awk '$1 == "PERF" && NF > 3 {
			if ($2 " " $3 != cur) { cur = $2 " " $3; print ""; print "## " cur }
			$1 = $2 = $3 = ""; sub(/^ +/, "  "); print }'
		per_request "$out/results.log"
	} >"$perf_txt"
	cat "$perf_txt"
fi
if ((quick || profile)); then
	json=${BENCH_JSON:-$work/bench-${1#--}.json}
else
	suffix=
	((v2)) && suffix=-v2
	((classes)) && suffix=-classes
	json=${BENCH_JSON:-$FURING_TOP/bench/results/$(date -u +%Y-%m-%d-%H%M)-$accel$suffix.json}
	mkdir -p "$(dirname "$json")"
fi
v2opt=
((v2)) && v2opt=--v2-claims
commit=$(git -C "$FURING_TOP" describe --always --dirty 2>/dev/null || echo unknown)
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
status=0
# Debian's python3 (with python3-matplotlib, for the charts), whatever else is on PATH.
png=--png
((quick || profile || classes)) && png=
/usr/bin/python3 "$FURING_TOP/bench/report.py" --log "$out/results.log" --json "$json" $png $v2opt \
	--accel "$accel" --reps "$reps" --transports "$transports" --workloads "$workloads" \
	--meta date="$(date -u +%Y-%m-%dT%H:%M:%SZ)" --meta commit="$commit" \
	--meta host_cpu="$cpu" --meta host_cpus="$(nproc)" --meta vm_mem="${FURING_VM_MEM:-2G}" \
	--meta runtime_s="$( ((v2)) && echo size-bound || echo "$runtime")" \
	--meta size_per_job="$size" --meta ramp_s="$( ((v2)) && echo "$ramp" || echo 0)" \
	--meta buf_classes="$buf_classes" || status=1
echo
((profile)) && say "perf report: $perf_txt"
say "raw results: $json; guest output: $out/results.log; kernel log: $out/console.log"
if ((vm_ok == 0)); then
	say "the VM splatted or did not finish (see above)"
	status=1
fi
printf '# stage %-28s %4d s\n' total $((SECONDS - t_all)) >&2
((status == 0)) && say "bench: every transport ran" || say "bench: FAILED"
exit $status
