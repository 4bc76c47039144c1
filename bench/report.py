#!/usr/bin/env python3
# report.py: turn the "BENCH <transport> <workload> <rep> <MiB/s|NA>" lines of a bench
# VM's results.log into a plain-text table (stdout), a small JSON file and, with --png,
# one bar chart per workload (PNG, next to the JSON: <json stem>-<workload>.png); and the
# "PROFILE <transport> <workload> <rep> <requests> <wait> <task work> <copy in>
# <copy out>" lines (furing's debugfs timers, microseconds) into a table of where
# furing's time goes per request; "MEM <transport> <rep> <peak RSS> <RSS> <VmLck>
# <VmPin> <pinned>" lines (KiB) into a table of the server's memory; "CLASSES
# <transport> <rep> <class> <buffer size> <buffers> <waits>" lines (furing's payload
# buffer classes) into the JSON. Each furing transport is also set beside its Linux 7.3
# counterpart (COUNTERPART); a run of the mixed workload gets a table of its own
# (data, small files, memory: make bench-classes).
#   report.py --log results.log --json out.json --accel tcg [--png] [--meta KEY=VALUE...]
# Exit status: 1 when a cell is missing or a "BENCH-ERROR" line is present (never on
# speed), else 0.
import argparse
import json
import re
import statistics
import sys

SPREAD = 0.10  # flag cells whose (max - min) / median is above this

# Each furing transport and its Linux 7.3 counterpart: the same server (or libfuse
# server) in the in-tree design's matching mode.
COUNTERPART = {
    "basic": "intree",
    "bufring": "intree-bufpool",
    "pinned": "intree-bufpool-fixed",
    "zerocopy": "intree-zerocopy",
    "classic": "intree-classic",
    "hp-furing": "hp-intree",
}
# The server's memory at the end of a transport's workloads (MEM lines, KiB): peak and
# current RSS, locked (VmLck: furing's pinned regions), io_uring's pinned (VmPin:
# registered buffers), and the pages the system holds pinned since the server started
# (FOLL_PIN, whoever pinned them).
MEM_FIELDS = ["hwm_kib", "rss_kib", "vmlck_kib", "vmpin_kib", "pinned_kib"]
# A workload whose one fio run gives several cells: mixed, 1 MiB direct random I/O
# (MiB/s) beside small-file churn (ops/s)
PARTS = {"mixed": ["mixed-data", "mixed-meta"]}
# A transport with payload buffer classes and the same one with a single class
CLASSES_OF = {"pinned-classes": "pinned", "bufring-classes": "bufring"}

# The v2 series' own numbers (passthrough_hp on NVMe, its fio line), over basic io-uring:
# pinned headers and buffers (patch 12) and zero-copy (patch 13). make bench-v2 sets
# ours beside them: passthrough_hp on furing basic, pinned and zero-copy.
V2_BASE = "hp-furing"
V2_CLAIMS = {
    "hp-furing-pinned": {"v2-randread-dio": 1.10, "v2-seqread-dio": 1.04,
                         "v2-randread-buf": 1.08, "v2-seqread-buf": 1.06},
    "hp-furing-zerocopy": {"v2-randread-dio": 1.35, "v2-seqread-dio": 1.15,
                           "v2-randread-buf": 1.15, "v2-seqread-buf": 1.10},
}


def unit(workload):
    """What a workload's numbers count."""
    return ("ops/s" if workload.endswith("-iops") or workload.startswith("meta-")
            or workload == "mixed-meta" else "MiB/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--accel", required=True)
    ap.add_argument("--transports", required=True)
    ap.add_argument("--workloads", required=True)
    ap.add_argument("--reps", type=int, required=True)
    ap.add_argument("--meta", action="append", default=[])
    ap.add_argument("--png", action="store_true")
    ap.add_argument("--v2-claims", action="store_true",
                    help="set the v2 series' claimed ratios beside ours")
    a = ap.parse_args()

    transports = a.transports.split()
    workloads = [p for w in a.workloads.split() for p in PARTS.get(w, [w])]
    cells = {t: {w: {} for w in workloads} for t in transports}
    prof = {t: {w: {} for w in workloads} for t in transports}
    mem = {t: {} for t in transports}
    bufcls = {t: {} for t in transports}
    errors, notes, kernel = [], [], ""
    for raw in open(a.log, errors="replace"):
        line = raw.strip().replace("\r", "")
        f = line.split()
        if line.startswith("BENCH-ERROR"):
            errors.append(line)
        elif len(f) == 5 and f[0] == "BENCH" and f[1] in cells and f[4] == "NA" and \
                all(p in cells[f[1]] for p in PARTS.get(f[2], [None])):
            for p in PARTS[f[2]]:
                cells[f[1]][p][int(f[3])] = None
        elif len(f) == 5 and f[0] == "BENCH" and f[1] in cells and f[2] in cells[f[1]]:
            cells[f[1]][f[2]][int(f[3])] = None if f[4] == "NA" else float(f[4])
        elif len(f) == 9 and f[0] == "PROFILE" and f[1] in prof and f[2] in prof[f[1]]:
            prof[f[1]][f[2]][int(f[3])] = [int(x) for x in f[4:]]
        elif len(f) == 8 and f[0] == "MEM" and f[1] in mem:
            mem[f[1]][int(f[2])] = dict(zip(MEM_FIELDS, (int(x) for x in f[3:])))
        elif len(f) == 7 and f[0] == "CLASSES" and f[1] in bufcls:
            bufcls[f[1]].setdefault(int(f[2]), {})[int(f[3])] = [int(x) for x in f[4:]]
        elif line.startswith("# kernel "):
            kernel = f[2].rstrip(",")
        elif line.startswith("# fio ") or line.startswith("# memory"):
            notes.append(line[2:])

    missing = [f"{t} {w} rep {r}" for t in transports for w in workloads
               for r in range(1, a.reps + 1) if r not in cells[t][w]]

    meta = dict(kv.split("=", 1) for kv in a.meta)

    def median_of(t, w):
        v = [x for x in cells.get(t, {}).get(w, {}).values() if x is not None]
        return statistics.median(v) if v else None

    pairs = [(f, c) for f, c in COUNTERPART.items() if f in transports and c in transports]
    cp = {f"{f}/{c}": {w: round(median_of(f, w) / median_of(c, w), 3)
                           if median_of(f, w) and median_of(c, w) else None
                           for w in workloads} for f, c in pairs}
    out = {
        "accel": a.accel,
        "kernel": kernel,
        **meta,
        "notes": notes,
        "unit": {w: unit(w) for w in workloads},
        "transports": transports,
        "workloads": workloads,
        "reps": a.reps,
        # results[transport][workload] = [MiB/s per rep, null = NA]
        "results": {t: {w: [cells[t][w].get(r) for r in range(1, a.reps + 1)]
                        for w in workloads} for t in transports},
        # profile[transport][workload] = per rep [requests, wait, task work, copy in,
        # copy out] (microseconds, furing's debugfs timers), null = not served by furing
        "profile": {t: {w: [prof[t][w].get(r) for r in range(1, a.reps + 1)]
                        for w in workloads if prof[t][w]} for t in transports if
                    any(prof[t].values())},
        # counterparts["furing/7.3"][workload] = furing's median / its counterpart's
        "counterparts": cp,
        # memory[transport][field] = per rep, KiB (MEM_FIELDS), null = not measured
        "memory": {t: {k: [mem[t].get(r, {}).get(k) for r in range(1, a.reps + 1)]
                       for k in MEM_FIELDS} for t in transports if mem[t]},
        # buffer_classes[transport] = per rep, per class [buffer size, buffers, requests
        # that waited for one], over the queues (furing's buffer-ring transports)
        "buffer_classes": {t: [[bufcls[t].get(r, {})[k] for k in sorted(bufcls[t].get(r, {}))]
                               for r in range(1, a.reps + 1)] for t in transports if bufcls[t]},
        "errors": errors,
        "missing": missing,
    }
    write_json(a.json, out)

    print(f"# furing bench: kernel {kernel or '?'}, accelerator {a.accel}, "
          f"{a.reps} rep(s); {'; '.join(notes)}")
    print("# MiB/s (ops/s for *-iops, meta-*, mixed-meta): median (min-max) over the reps; "
          "'x T' = median / T's median; "
          f"'!' = spread (max-min)/median > {SPREAD:.0%}")
    if a.accel != "kvm":
        print(f"# {a.accel.upper()}: emulated CPU, these are relative numbers only, "
              "not hardware numbers")
    # Ratios: to furing basic, to Linux 7.3's own io-uring, to the ceiling (if they ran).
    # "x 7.3": a furing transport over its Linux 7.3 counterpart.
    refs = [r for r in ("basic", "intree", "ceiling") if r in transports]
    tw = max([len(t) + 2 for t in transports] + [len(w) + 8 for w in workloads])
    for w in workloads:
        print()
        print(f"{w + ' (' + unit(w) + ')':<{tw}} {'median':>9} {'(min-max)':>19}"
              + "".join(f" {'x ' + r:>9}" for r in refs) + f" {'x 7.3':>9}"
              + f" {'spread':>7}")
        for t in transports:
            vals = [cells[t][w][r] for r in sorted(cells[t][w])]
            nums = [x for x in vals if x is not None]
            name = f"{'  ' + t:<{tw}}"
            if not nums:
                print(f"{name} {'NA' if vals else 'missing':>9}")
                continue
            med, lo, hi = statistics.median(nums), min(nums), max(nums)
            spread = (hi - lo) / med if med else 0.0
            ratios = ""
            for r in refs:
                b = median_of(r, w)
                ratios += f" {f'{med / b:.2f}' if b else '-':>9}"
            c = median_of(COUNTERPART[t], w) if t in COUNTERPART else None
            ratios += f" {f'{med / c:.2f}' if c else '':>9}"
            flag = " !" if spread > SPREAD else ""
            extra = f"  ({len(vals) - len(nums)} NA)" if len(nums) < len(vals) else ""
            print(f"{name} {med:9.1f} {f'({lo:.1f}-{hi:.1f})':>19}{ratios} "
                  f"{spread:6.0%}{flag}{extra}")
    counterparts(pairs, cp, workloads, tw)
    if a.v2_claims:
        # v2_claims[transport][workload] = [ours, claimed], over V2_BASE
        out["v2_claims"] = v2_claims(transports, workloads, median_of, a.accel)
        write_json(a.json, out)
    memory(mem, transports, workloads, median_of, tw)
    if "mixed-data" in workloads:
        # mixed[transport] = medians: data MiB/s, small-file ops/s, memory MiB;
        # classes_over_one["X-classes/X"] = X-classes' median over X's
        out["mixed"], out["classes_over_one"] = mixed(mem, bufcls, transports, median_of, tw)
        write_json(a.json, out)
    profile(prof, transports, workloads, tw)
    if a.png:
        plot(a.json, a.accel, kernel, transports, workloads, cells)
    for e in errors:
        print(e)
    for m in missing:
        print(f"BENCH-MISSING {m}")

    return 1 if errors or missing else 0


def counterparts(pairs, ratios, workloads, tw):
    """Every furing mode over its Linux 7.3 counterpart, one row per workload."""
    if not pairs:
        return
    print()
    print("# furing / Linux 7.3 counterpart, median over median; '<' marks a ratio "
          "under 1.00")
    print("# " + ", ".join(f"{f} = {f} / {c}" for f, c in pairs))
    cw = max(len(f) for f, _ in pairs) + 3
    print(f"{'':<{tw}}" + "".join(f"{f:>{cw - 1}} " for f, _ in pairs))
    for w in workloads:
        row = ""
        for f, c in pairs:
            r = ratios[f"{f}/{c}"][w]
            row += f"{(f'{r:.2f}' + ('<' if r < 1 else ' ')) if r else '-':>{cw}}"
        print(f"{'  ' + w:<{tw}}{row}")


def write_json(path, out):
    text = json.dumps(out, indent=1)
    # lists of numbers and names on one line each
    text = re.sub(r"\[\s+([^][{}]*?)\s+\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    with open(path, "w") as fh:
        fh.write(text + "\n")


def v2_claims(transports, workloads, median_of, accel):
    """Ours over passthrough_hp on furing basic, beside the series' claim; returns
    {transport: {workload: [ours, claimed]}}."""
    print()
    print(f"# the v2 series' benchmark: passthrough_hp, x {V2_BASE} (basic io-uring); "
          "claimed: the series' NVMe numbers")
    if accel != "kvm":
        print(f"# ours are {accel.upper()} (emulated CPU): every copy costs many times "
              "more, so copy savings weigh more; compare directions, not sizes")
    rows = {}
    print(f"{'':<22}" + "".join(f" {t + ' ours':>26} {'claimed':>8}" for t in V2_CLAIMS
                               if t in transports))
    for w in workloads:
        b = median_of(V2_BASE, w)
        line = f"  {w:<20}"
        for t, claims in V2_CLAIMS.items():
            if t not in transports:
                continue
            m = median_of(t, w)
            r = m / b if m and b else None
            c = claims.get(w)
            rows.setdefault(t, {})[w] = [round(r, 3) if r else None, c]
            line += f" {f'{r:.2f}' if r else '-':>26} {f'{c:.2f}' if c else '-':>8}"
        print(line)
    return rows


def mem_median(mem, t):
    """A transport's memory (MEM_FIELDS), median over the reps, KiB; None if not measured."""
    if not mem[t]:
        return None
    return {k: statistics.median(v[k] for v in mem[t].values()) for k in MEM_FIELDS}


def mixed(mem, bufcls, transports, median_of, tw):
    """The mixed workload per transport beside the server's memory, and each transport
    with buffer classes over the same one with a single class (CLASSES_OF)."""
    cols = (("data_mib_s", "data MiB/s"), ("meta_ops_s", "meta ops/s"), ("locked_mib", "locked"),
            ("pinned_mib", "pinned"), ("peak_rss_mib", "peak RSS"))
    pairs = [(c, one) for c, one in CLASSES_OF.items() if c in transports and one in transports]
    nw = max([tw] + [len(f"{c}/{one}") + 2 for c, one in pairs])

    def line(name, values, fmt, extra=""):
        print(f"{name:<{nw}}" + "".join(f" {fmt(v) if v is not None else '-':>{len(h)}}"
                                        for v, (_, h) in zip(values, cols)) + extra)

    print()
    print("# mixed: 1 MiB direct random reads and writes (one job) beside small-file churn")
    print("# (4 KiB files created, written, closed, unlinked); median over the reps. data")
    print("# MiB/s, meta ops/s (files), the server's locked (VmLck) and pinned (FOLL_PIN)")
    print("# MiB and peak RSS; per buffer class (over the queues): buffer size x buffers,")
    print("# requests that waited for one (over all the transport's workloads)")
    print(f"{'mixed':<{nw}}" + "".join(f" {h}" for _, h in cols) + "  classes")
    rows = {}
    for t in transports:
        m = mem_median(mem, t)
        row = {"data_mib_s": median_of(t, "mixed-data"), "meta_ops_s": median_of(t, "mixed-meta")}
        if m:
            row.update(locked_mib=round(m["vmlck_kib"] / 1024, 1),
                       pinned_mib=round(m["pinned_kib"] / 1024, 1),
                       peak_rss_mib=round(m["hwm_kib"] / 1024, 1))
        rows[t] = row
        cls = []
        for k in sorted({k for r in bufcls[t].values() for k in r}):
            per_rep = [r[k] for r in bufcls[t].values() if k in r]
            waits = statistics.median(x[2] for x in per_rep)
            cls.append(f"{fmt_size(per_rep[0][0])}x{per_rep[0][1]} waited {waits:.0f}")
        line("  " + t, [row.get(k) for k, _ in cols], lambda v: f"{v:.1f}",
             f"  {', '.join(cls) or '-'}")
    ratios = {}
    for c, one in pairs:
        ratios[f"{c}/{one}"] = {k: round(rows[c][k] / rows[one][k], 3)
                                if rows[c].get(k) and rows[one].get(k) else None
                                for k, _ in cols}
    if ratios:
        print("# with classes over one class (median over median):")
        for name, r in ratios.items():
            line("  " + name, list(r.values()), lambda v: f"{v:.2f}")
    return rows, ratios


def fmt_size(b):
    """4096 -> 4K, 1048576 -> 1M"""
    for unit_, n in (("M", 1 << 20), ("K", 1 << 10)):
        if b % n == 0:
            return f"{b // n}{unit_}"
    return str(b)


def memory(mem, transports, workloads, median_of, tw):
    """The server's memory per transport (median over the reps, MiB), and its peak RSS
    per MiB/s of 1 MiB direct random reads."""
    rows = [t for t in transports if mem[t]]
    rd = [w for w in workloads if w.endswith("randread-dio")]
    if not rows:
        return
    print()
    print("# server memory at the end of its workloads, MiB (median over the reps):")
    print("# peak RSS, locked (VmLck), io_uring-pinned (VmPin), pages held pinned")
    print("# (FOLL_PIN, anyone's); the last column is peak RSS KiB per MiB/s of "
          f"{rd[0] if rd else 'randread-dio (not run)'}")
    print(f"{'memory':<{tw}} {'peak RSS':>9} {'locked':>9} {'VmPin':>9} {'pinned':>9}"
          f" {'KiB/MiB/s':>10}")
    for t in rows:
        med = mem_median(mem, t)
        tput = median_of(t, rd[0]) if rd else None
        per = f"{med['hwm_kib'] / tput:.0f}" if tput else "-"
        print(f"{'  ' + t:<{tw}}" + "".join(
            f" {med[k] / 1024:9.1f}" for k in ("hwm_kib", "vmlck_kib", "vmpin_kib",
                                              "pinned_kib")) + f" {per:>10}")


def profile(prof, transports, workloads, tw):
    """Where furing's time goes: per request, median over the reps."""
    if not any(prof[t][w] for t in transports for w in workloads):
        return
    print()
    print("# where furing's time goes, microseconds per request (median over the reps):")
    print("# wait = for an entry or a payload buffer, task = from entry to task work,")
    print("# in/out = copying the request to the ring / the reply back")
    for w in workloads:
        rows = [t for t in transports if prof[t][w]]
        if not rows:
            continue
        print()
        print(f"{w:<{tw}} {'requests':>9} {'wait':>8} {'task':>8} {'in':>8} {'out':>8}")
        for t in rows:
            reps = list(prof[t][w].values())
            n = statistics.median(r[0] for r in reps)
            per = [statistics.median(r[i] / r[0] for r in reps) for i in range(1, 5)]
            print(f"{'  ' + t:<{tw}} {n:9.0f}" + "".join(f" {x:8.1f}" for x in per))


def plot(json_path, accel, kernel, transports, workloads, cells):
    """One bar chart per workload: median MiB/s per transport, min-max as error bars."""
    import os
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = os.path.splitext(json_path)[0]
    for w in workloads:
        names, med, lo, hi = [], [], [], []
        for t in transports:
            nums = [x for x in cells[t][w].values() if x is not None]
            if not nums:
                continue
            m = statistics.median(nums)
            names.append(t)
            med.append(m)
            lo.append(m - min(nums))
            hi.append(max(nums) - m)
        fig, ax = plt.subplots(figsize=(8, 4))
        colors = ["tab:gray" if n == "ceiling" else "tab:orange" if "intree" in n
                  else "tab:blue" for n in names]
        ax.bar(names, med, yerr=[lo, hi], capsize=4, color=colors)
        for i, m in enumerate(med):
            ax.text(i, m, f"{m:.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(f"{unit(w)} (median, min-max)")
        ax.set_title(f"{w} -- Linux {kernel}, {accel.upper()}"
                     + (" (relative numbers only)" if accel != "kvm" else ""))
        ax.tick_params(axis="x", labelrotation=30)
        fig.tight_layout()
        fig.savefig(f"{stem}-{w}.png", dpi=90)
        plt.close(fig)
    print(f"# charts: {stem}-<workload>.png")


if __name__ == "__main__":
    sys.exit(main())
