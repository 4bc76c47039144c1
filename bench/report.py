#!/usr/bin/env python3
# report.py: turn the "BENCH <transport> <workload> <rep> <MiB/s|NA>" lines of a bench
# VM's results.log into a plain-text table (stdout), a small JSON file and, with --png,
# one bar chart per workload (PNG, next to the JSON: <json stem>-<workload>.png); and the
# "PROFILE <transport> <workload> <rep> <requests> <wait> <task work> <copy in>
# <copy out>" lines (furing's debugfs timers, microseconds) into a table of where
# furing's time goes per request.
#   report.py --log results.log --json out.json --accel tcg [--png] [--meta KEY=VALUE...]
# Exit status: 1 when a cell is missing or a "BENCH-ERROR" line is present (never on
# speed), else 0.
import argparse
import json
import re
import statistics
import sys

SPREAD = 0.10  # flag cells whose (max - min) / median is above this


def unit(workload):
    """What a workload's numbers count."""
    return "ops/s" if workload.endswith("-iops") or workload.startswith("meta-") else "MiB/s"


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
    a = ap.parse_args()

    transports = a.transports.split()
    workloads = a.workloads.split()
    cells = {t: {w: {} for w in workloads} for t in transports}
    prof = {t: {w: {} for w in workloads} for t in transports}
    errors, notes, kernel = [], [], ""
    for raw in open(a.log, errors="replace"):
        line = raw.strip().replace("\r", "")
        f = line.split()
        if line.startswith("BENCH-ERROR"):
            errors.append(line)
        elif len(f) == 5 and f[0] == "BENCH" and f[1] in cells and f[2] in cells[f[1]]:
            cells[f[1]][f[2]][int(f[3])] = None if f[4] == "NA" else float(f[4])
        elif len(f) == 9 and f[0] == "PROFILE" and f[1] in prof and f[2] in prof[f[1]]:
            prof[f[1]][f[2]][int(f[3])] = [int(x) for x in f[4:]]
        elif line.startswith("# kernel "):
            kernel = f[2].rstrip(",")
        elif line.startswith("# fio ") or line.startswith("# memory"):
            notes.append(line[2:])

    missing = [f"{t} {w} rep {r}" for t in transports for w in workloads
               for r in range(1, a.reps + 1) if r not in cells[t][w]]

    meta = dict(kv.split("=", 1) for kv in a.meta)
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
        "errors": errors,
        "missing": missing,
    }
    text = json.dumps(out, indent=1)
    # lists of numbers and names on one line each
    text = re.sub(r"\[\s+([^][{}]*?)\s+\]",
                  lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text)
    with open(a.json, "w") as fh:
        fh.write(text + "\n")

    print(f"# furing bench: kernel {kernel or '?'}, accelerator {a.accel}, "
          f"{a.reps} rep(s); {'; '.join(notes)}")
    print("# MiB/s (ops/s for *-iops, meta-*): median (min-max) over the reps; "
          "'x T' = median / T's median; "
          f"'!' = spread (max-min)/median > {SPREAD:.0%}")
    if a.accel != "kvm":
        print(f"# {a.accel.upper()}: emulated CPU, these are relative numbers only, "
              "not hardware numbers")
    def median_of(t, w):
        v = [x for x in cells.get(t, {}).get(w, {}).values() if x is not None]
        return statistics.median(v) if v else None

    # Ratios: to furing basic, to Linux 7.3's own io-uring, to the ceiling (if they ran).
    refs = [r for r in ("basic", "intree", "ceiling") if r in transports]
    tw = max([len(t) + 2 for t in transports] + [len(w) + 8 for w in workloads])
    for w in workloads:
        print()
        print(f"{w + ' (' + unit(w) + ')':<{tw}} {'median':>9} {'(min-max)':>19}"
              + "".join(f" {'x ' + r:>9}" for r in refs) + f" {'spread':>7}")
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
            flag = " !" if spread > SPREAD else ""
            extra = f"  ({len(vals) - len(nums)} NA)" if len(nums) < len(vals) else ""
            print(f"{name} {med:9.1f} {f'({lo:.1f}-{hi:.1f})':>19}{ratios} "
                  f"{spread:6.0%}{flag}{extra}")
    profile(prof, transports, workloads, tw)
    if a.png:
        plot(a.json, a.accel, kernel, transports, workloads, cells)
    for e in errors:
        print(e)
    for m in missing:
        print(f"BENCH-MISSING {m}")

    return 1 if errors or missing else 0


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
