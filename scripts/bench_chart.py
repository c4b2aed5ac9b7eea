#!/usr/bin/env python3
"""Chart and table of the peer benchmarks (benches/peers.rs).

Reads criterion's output, target/criterion/<group>/<engine>/new/estimates.json,
and target/criterion/peer-sizes.json (written by the bench itself), then:

- writes docs/bench/peers.svg: one panel per workload, a bar per engine,
  bar length = time relative to the fastest engine of that workload (shorter
  is better), labelled with the absolute mean time;
- prints a Markdown table of mean times and the ratio peer / Aerolith for
  every peer (above 1.00: Aerolith is faster).

Standard library only, so it runs anywhere Python 3 does:

    python3 scripts/bench_chart.py [--criterion target/criterion] [--out docs/bench/peers.svg]
"""

import argparse
import glob
import json
import os
import sys
from xml.sax.saxutils import escape

ENGINES = ["aerolith", "sqlite", "redb", "sled"]
COLORS = {"aerolith": "#d9480f", "sqlite": "#1c7ed6", "redb": "#37b24d", "sled": "#7048e8"}

# Workload order and the label shown for each criterion group.
GROUPS = [
    ("insert_single_fsync", "single insert, fsync per commit"),
    ("insert_single_nosync", "single insert, no fsync"),
    ("insert_batch1000_fsync", "batch of 1,000 inserts, fsync per commit"),
    ("insert_batch1000_nosync", "batch of 1,000 inserts, no fsync"),
    ("get_hot", "point read by id, hot"),
    ("get_cold_after_reopen", "100 point reads right after reopen"),
    ("open_loaded", "open loaded database + first read"),
    ("query_indexed_eq", "equality query on indexed field (~1% of docs)"),
    ("scan_filter_unindexed", "full scan with filter on unindexed field"),
]


def load_estimates(criterion_dir):
    """{group: {engine: mean_ns}} from criterion's estimates.json files."""
    results = {}
    pattern = os.path.join(criterion_dir, "*", "*", "new", "estimates.json")
    for path in glob.glob(pattern):
        parts = os.path.normpath(path).split(os.sep)
        group, engine = parts[-4], parts[-3]
        if engine not in ENGINES:
            continue
        with open(path) as f:
            estimates = json.load(f)
        results.setdefault(group, {})[engine] = estimates["mean"]["point_estimate"]
    return results


def load_sizes(criterion_dir):
    path = os.path.join(criterion_dir, "peer-sizes.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def fmt_ns(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_bytes(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def panels(results, sizes):
    """[(title, [(engine, value, label)])], lower value = better."""
    out = []
    for group, title in GROUPS:
        row = results.get(group, {})
        bars = [(e, row[e], fmt_ns(row[e])) for e in ENGINES if e in row]
        if bars:
            out.append((title, bars))
    if sizes:
        by_engine = {r["engine"]: r for r in sizes["engines"]}
        bars = [(e, by_engine[e]["disk_bytes"], fmt_bytes(by_engine[e]["disk_bytes"]))
                for e in ENGINES if e in by_engine]
        out.append((f"size on disk after loading {sizes['docs']:,} docs", bars))
        bars = [(e, by_engine[e]["load_ms"], fmt_ns(by_engine[e]["load_ms"] * 1e6))
                for e in ENGINES if e in by_engine]
        out.append((f"load {sizes['docs']:,} docs, 1,000 per transaction", bars))
    return out


def svg(panel_list, docs):
    width, left, right = 760, 90, 120
    bar_h, gap, title_h, panel_gap = 16, 4, 22, 14
    plot_w = width - left - right
    y = 56
    body = []
    for title, bars in panel_list:
        body.append(f'<text x="10" y="{y + 15}" class="title">{escape(title)}</text>')
        y += title_h
        best = min(v for _, v, _ in bars) or 1
        worst = max(v for _, v, _ in bars) / best
        for engine, value, label in bars:
            ratio = value / best
            w = max(2.0, plot_w * ratio / worst)
            body.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{engine}</text>')
            body.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{COLORS[engine]}"/>')
            note = label if ratio < 1.005 else f"{label}  ({ratio:.2f}x)"
            body.append(f'<text x="{left + w + 5:.1f}" y="{y + 12}">{escape(note)}</text>')
            y += bar_h + gap
        y += panel_gap
    height = y + 10
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">\n'
        "<style>.title{font-weight:bold;font-size:13px}.h{font-size:16px;font-weight:bold}</style>\n"
        f'<rect width="{width}" height="{height}" fill="white"/>\n'
        f'<text x="10" y="22" class="h">Aerolith vs SQLite, redb, sled ({docs} documents of ~1 KiB)</text>\n'
        '<text x="10" y="40">Mean time per operation (criterion); bar length relative to the fastest '
        "engine of each row, shorter is better.</text>\n"
    )
    return head + "\n".join(body) + "\n</svg>\n"


def markdown(results):
    lines = ["| workload | " + " | ".join(ENGINES) + " | sqlite / aerolith | redb / aerolith | sled / aerolith |",
             "|---|" + "---:|" * (len(ENGINES) + 3)]
    for group, title in GROUPS:
        row = results.get(group)
        if not row:
            continue
        cells = [fmt_ns(row[e]) if e in row else "–" for e in ENGINES]
        base = row.get("aerolith")
        ratios = [f"{row[e] / base:.2f}" if base and e in row else "–" for e in ENGINES[1:]]
        lines.append(f"| {title} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--criterion", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion"))
    parser.add_argument("--out", default=os.path.join("docs", "bench", "peers.svg"))
    args = parser.parse_args()
    results = load_estimates(args.criterion)
    if not results:
        sys.exit(f"no criterion results under {args.criterion}; run `cargo bench --bench peers` first")
    sizes = load_sizes(args.criterion)
    docs = f"{sizes['docs']:,}" if sizes else "?"
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        f.write(svg(panels(results, sizes), docs))
    print(markdown(results))
    if sizes:
        print()
        print("| engine | load | size on disk | size / JSON bytes |")
        print("|---|---:|---:|---:|")
        for r in sizes["engines"]:
            print(f"| {r['engine']} | {r['load_ms'] / 1000:.2f} s | {fmt_bytes(r['disk_bytes'])} | "
                  f"{r['disk_bytes'] / sizes['json_bytes']:.2f} |")
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
