#!/usr/bin/env python3
"""One plot of a bench.html as a standalone SVG file (for the README, a wiki, a CI comment):

    scripts/bench_figure.py reports/bench/bench.html softhsm-p11kit rsa2048_sign -o plot.svg [--latency]

The page's plots are inline SVG styled partly by the page's stylesheet; the file gets the SVG namespace and the
rules its elements use, so it renders the same on its own."""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

STYLE = ("text { font-family: 'DejaVu Sans', sans-serif; font-size: 12px; fill: #1d2329; } "
         ".axis { stroke: #333; stroke-width: 1; } .grid { stroke: #e3e7eb; stroke-width: 1; } "
         ".axis-label { font-size: 12.5px; fill: #5d6873; } .empty { fill: #5d6873; font-style: italic; } "
         ".mark-label { font-size: 11px; }")


def figure(page: str, vendor: str, mechanism: str, kind: str) -> str:
    start = page.find(f'<section class="vendor" data-vendor="{html.escape(vendor)}"')
    if start < 0:
        raise SystemExit(f"no vendor {vendor!r} in the page")
    end = page.find('<section class="vendor"', start + 1)
    section = page[start:end if end > 0 else len(page)]
    found = re.search(rf'<figure class="{kind}" data-mechanism="{re.escape(mechanism)}">.*?(<svg.*?</svg>)', section,
                      re.S)
    if not found:
        raise SystemExit(f"no {kind} plot of {mechanism!r} for {vendor!r}")
    svg = found.group(1).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    head_end = svg.index(">") + 1
    return svg[:head_end] + f"<style>{STYLE}</style>" + svg[head_end:] + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("page", type=Path)
    parser.add_argument("vendor")
    parser.add_argument("mechanism")
    parser.add_argument("-o", dest="out", type=Path, required=True)
    parser.add_argument("--latency", action="store_true", help="the latency plot instead of the throughput plot")
    args = parser.parse_args()
    svg = figure(args.page.read_text(encoding="utf-8"), args.vendor, args.mechanism,
                 "latency" if args.latency else "throughput")
    args.out.write_text(svg, encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
