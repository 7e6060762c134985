"""The fleet benchmark's report: rates reached, fold lag per phase, CPU per process, RSS, checks; and the PNG plot."""

from __future__ import annotations

import itertools
import json
import os
import statistics
from pathlib import Path
from typing import Any

TARGET_MEDIAN, TARGET_WORST, TARGET_RSS_MB = 1.0, 2.0, 300.0
ROLES = ("web", "worker1", "worker2", "broker", "mariadbd", "load", "sampler")


def lag_figures(run: Any) -> list[dict[str, Any]]:
    """Per phase: fold and route lag (median, worst) over the phase's samples after its warm-up."""
    out = []
    for phase in run.phases:
        samples = [s for s in run.samples if phase.start + run.args.warmup <= s.at < phase.end]
        row: dict[str, Any] = {"phase": phase.label, "settings": phase.settings, "samples": len(samples)}
        for stage in ("fold", "route"):
            values = [s.lag[stage] for s in samples]
            row[stage] = (statistics.median(values), max(values)) if values else (float("nan"), float("nan"))
        first, last = (samples[0], samples[-1]) if len(samples) > 1 else (None, None)
        seconds = (last.at - first.at) if first and last else 0.0
        row["cores"] = {r: (last.cpu[r] - first.cpu[r]) / seconds for r in ROLES if seconds and r in first.cpu and r in last.cpu}
        row["rss"] = max((v for s in samples for k, v in s.rss.items() if k.startswith("worker")), default=0.0)
        row["agents"] = getattr(phase, "agents", 0)
        row["batches"] = batch_figures(samples)
        out.append(row)
    return out


def batch_figures(samples: list[Any]) -> dict[str, dict[str, float]]:
    """Per stage, over the samples' worker counters (both workers summed): batches per second, events per fold
    batch, mean seconds per batch, database retries per second."""
    scraped = [s for s in samples if s.workers]
    if len(scraped) < 2:
        return {}
    first, last = scraped[0], scraped[-1]
    seconds = last.at - first.at

    def delta(name: str) -> float:
        return sum(last.workers.get(r, {}).get(name, 0.0) - first.workers.get(r, {}).get(name, 0.0) for r in last.workers)

    out = {}
    for stage in ("fold", "route"):
        batches = delta(f"{stage}.batches")
        out[stage] = {
            "batches_per_s": batches / seconds,
            "seconds_per_batch": delta(f"{stage}.batch_seconds") / batches if batches else 0.0,
            "retries_per_s": delta(f"{stage}.retries") / seconds,
        }
    fold_batches = delta("fold.batches")
    out["fold"]["events_per_batch"] = delta("fold.events") / fold_batches if fold_batches else 0.0
    return out


def rates(run: Any) -> list[tuple[str, float, str]]:
    seconds = run.args.duration
    kinds = run.load.get("kinds", {})
    out = []
    for kind in ("heartbeat", "log", "task"):
        answers = kinds.get(kind, {}).get("answers", {})
        ok = answers.get("202", 0)
        other = {k: v for k, v in answers.items() if k != "202"}
        k = kinds.get(kind, {})
        extra = f"p50 {k.get('p50_ms', 0):.0f} ms, p99 {k.get('p99_ms', 0):.0f} ms, max {k.get('max_ms', 0):.0f} ms"
        out.append((f"{kind} requests/s", ok / seconds, f"{extra}; not 202: {other or 'none'}"))
    out.append(("log lines/s", run.load.get("lines", 0) / seconds, ""))
    return out


def db_rates(run: Any) -> dict[str, float]:
    """Per second over the load: the server's counters (global: whatever else uses the server counts too)."""
    during = [s for s in run.samples if run.phases[0].start <= s.at <= run.phases[-1].end]
    if len(during) < 2:
        return {}
    first, last = during[0], during[-1]
    seconds = last.at - first.at
    return {name: (last.db.get(name, 0.0) - first.db.get(name, 0.0)) / seconds for name in first.db}


def report(run: Any) -> int:
    args = run.args
    print(f"\nrates reached over {args.duration:.0f} s:")
    for name, value, note in rates(run):
        print(f"  {name:22} {value:9.1f}  {note}")
    print(f"\nfold lag (age of the oldest record not folded; after {args.warmup:.0f} s of each phase), seconds:")
    print(f"  {'phase':10} {'fold median':>12} {'fold worst':>11} {'route median':>13} {'route worst':>12}  settings")
    figures = lag_figures(run)
    for row in figures:
        (fm, fw), (rm, rw) = row["fold"], row["route"]
        print(f"  {row['phase']:10} {fm:12.2f} {fw:11.2f} {rm:13.2f} {rw:12.2f}  {row['settings'] or ''}")
    print("\nfold transactions (both workers, after the warm-up): batches/s, events per batch, ms per batch, db retries/s:")
    for row in figures:
        b = row.get("batches") or {}
        if b:
            f, r = b["fold"], b["route"]
            fold = (f"fold {f['batches_per_s']:6.1f}/s x {f['events_per_batch']:6.0f} events, "
                    f"{f['seconds_per_batch'] * 1000:6.0f} ms, {f['retries_per_s']:.2f} retries/s")  # fmt: skip
            route = f"route {r['batches_per_s']:6.1f}/s, {r['seconds_per_batch'] * 1000:6.0f} ms"
            print(f"  {row['phase']:10} {fold}; {route}")
    wall = max(run.load_seconds, 1e-9)
    print(f"\nCPU seconds during the load ({wall:.0f} s; cores = seconds / wall):")
    for role in ROLES:
        if role in run.cpu_load:
            print(f"  {role:9} {run.cpu_load[role]:8.1f} s  {run.cpu_load[role] / wall:5.2f} cores")
    total = sum(run.cpu_load.values()) - run.cpu_load.get("mariadbd", 0.0)
    print(f"  (all but mariadbd: {total / wall:.2f} cores; the machine has {os.cpu_count()})")
    rss = {role: max((s.rss.get(role, 0.0) for s in run.samples), default=0.0) for role in ("worker1", "worker2")}
    load_rss = max((s.rss.get("load", 0.0) for s in run.samples), default=0.0)
    sizes = ", ".join(f"{r} {v:.0f} MB" for r, v in rss.items())
    print(f"\nworker RSS, largest sampled: {sizes} (load generator {load_rss:.0f} MB)")
    db = db_rates(run)
    if db:
        print("database counters per second (global): " + ", ".join(f"{k} {v:,.0f}" for k, v in db.items()))
    checks = run.checks
    print(f"\nchecks after the drain ({checks.get('drain_seconds', 0):.0f} s): {json.dumps(checks)}")
    landed = (checks.get("log_rows") == checks.get("log_lines_accepted")
              and checks.get("task_rows") == checks.get("tasks_accepted") and checks.get("heartbeats_behind") == 0)  # fmt: skip
    refused = sum(v for k in run.load.get("kinds", {}).values() for a, v in k["answers"].items() if a != "202")
    worst_phase = max(figures, key=lambda r: r["fold"][0])
    verdicts = {
        f"fold lag median < {TARGET_MEDIAN:.0f} s": all(r["fold"][0] < TARGET_MEDIAN for r in figures),
        f"fold lag worst < {TARGET_WORST:.0f} s": all(r["fold"][1] < TARGET_WORST for r in figures),
        "no request refused": refused == 0,
        "every row landed": landed,
        "no event refused by the fold (dlq)": checks.get("dlq_records") == 0,
        f"worker RSS <= {TARGET_RSS_MB:.0f} MB": max(rss.values(), default=0) <= TARGET_RSS_MB,
    }
    print("targets: " + "; ".join(f"{name}: {'ok' if ok else 'MISSED'}" for name, ok in verdicts.items())
          + f" (slowest phase {worst_phase['phase']})")  # fmt: skip
    print(
        "\nmarkdown (docs/performance.md): | agents | fold lag median / worst, s | route lag median / worst, s | CPU cores: "
        + " / ".join(ROLES)
        + " | worker RSS, MB |"
    )
    for row in figures:
        cores = " / ".join(f"{row['cores'].get(r, 0):.2f}" for r in ROLES)
        print(
            f"| {row['agents']:,} | {row['fold'][0]:.2f} / {row['fold'][1]:.2f} | {row['route'][0]:.2f} / {row['route'][1]:.2f}"
            f" | {cores} | {row['rss']:.0f} |"
        )
    plot(run, args.plot)
    data = args.plot.with_suffix(".json")
    data.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "figures": figures, "checks": checks,
                                "cpu": run.cpu_load, "load": {k: v for k, v in run.load.items() if k != "last_heartbeat"},
                                "samples": [vars(s) for s in run.samples],
                                "phases": [vars(p) for p in run.phases]}, default=str))  # fmt: skip
    print(f"plot: {args.plot} (samples: {data})")
    return 0 if landed and refused == 0 else 1


def plot(run: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    samples = run.samples
    if len(samples) < 2:
        return
    t0 = run.phases[0].start
    times = [s.at - t0 for s in samples]
    figure, (lag_axes, cpu_axes) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for stage in ("fold", "route"):
        lag_axes.plot(times, [s.lag[stage] for s in samples], label=f"{stage} lag", linewidth=1)
    lag_axes.axhline(TARGET_WORST, color="red", linestyle=":", linewidth=0.8, label=f"{TARGET_WORST:.0f} s")
    lag_axes.set_ylabel("lag, s (oldest record not folded)")
    lag_axes.set_yscale("symlog", linthresh=1.0)
    lag_axes.legend(loc="upper left", fontsize=8)
    for role in ROLES:
        points = [(b.at - t0, (b.cpu[role] - a.cpu[role]) / (b.at - a.at)) for a, b in itertools.pairwise(samples)
                  if role in a.cpu and role in b.cpu and b.at > a.at]  # fmt: skip
        if points:
            cpu_axes.plot([p[0] for p in points], [p[1] for p in points], label=role, linewidth=0.8)
    cpu_axes.set_ylabel("CPU, cores")
    cpu_axes.set_xlabel("seconds since the load started")
    cpu_axes.legend(loc="upper left", fontsize=8, ncol=4)
    for axes in (lag_axes, cpu_axes):
        for phase in run.phases[1:]:
            axes.axvline(phase.start - t0, color="grey", linewidth=0.6)
    labels = " / ".join(p.label for p in run.phases)
    figure.suptitle(f"fleet: {run.args.agents} agents, {run.args.log_rate:.0f} log lines/s ({labels})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
