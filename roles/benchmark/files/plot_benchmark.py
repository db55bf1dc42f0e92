# Copyright: Contributors to the sparkfleet.trtllm project
# SPDX-License-Identifier: GPL-3.0-or-later
"""Draw the plots of a benchmark report (roles/benchmark): PREFIX-throughput.png and PREFIX-latency.png.

Usage: plot_benchmark.py REPORT.json PREFIX
Runs on the controller with the Python that runs Ansible (matplotlib from requirements.txt).
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")  # no display on a controller or in CI
import matplotlib.pyplot as plt  # noqa: E402  pylint: disable=wrong-import-position

METRICS = (("ttft_ms", "Time to first token (ms)"), ("tpot_ms", "Time per output token (ms)"),
           ("itl_ms", "Inter-token latency (ms)"), ("e2el_ms", "End-to-end latency (ms)"))


def label(run: dict) -> str:
    return "%s %s" % (run["host"], run["name"])


def finish_axis(axis, title: str, legend_size: str) -> None:
    """Concurrency on a log2 axis, as the sweep doubles it."""
    axis.set_xscale("log", base=2)
    axis.set_xlabel("concurrency")
    axis.set_title(title)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=legend_size)


def save(fig, title: str, path: str) -> None:
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(report_path: str, prefix: str) -> int:
    with open(report_path, "r", encoding="utf-8") as handle:
        report = json.load(handle)
    runs = [run for run in report["runs"] if run["levels"]]
    if not runs:
        print("no benchmark run to plot", file=sys.stderr)
        return 1
    settings = report["settings"]
    subtitle = "%s engine, %s API, %d in / %d out tokens, %s" % (
        report["engine"], settings["api"], settings["input_tokens"], settings["output_tokens"], report["generated_at"])

    fig, (ax_tok, ax_req) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        conc = [level["concurrency"] for level in run["levels"]]
        ax_tok.plot(conc, [level["output_throughput"] for level in run["levels"]], marker="o", label=label(run))
        ax_req.plot(conc, [level["request_throughput"] for level in run["levels"]], marker="o", label=label(run))
    for axis, title in ((ax_tok, "Output throughput (tokens/s)"), (ax_req, "Request throughput (requests/s)")):
        finish_axis(axis, title, "small")
    save(fig, "Throughput vs concurrency - " + subtitle, prefix + "-throughput.png")

    pcts = [key for key in ("p50", "p90", "p99") if key in runs[0]["levels"][0]["ttft_ms"]] or ["median"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for axis, (metric, title) in zip(axes.flat, METRICS):
        for run in runs:
            conc = [level["concurrency"] for level in run["levels"]]
            for style, pct in zip(("-", "--", ":"), pcts):
                axis.plot(conc, [level[metric].get(pct) or 0 for level in run["levels"]], linestyle=style, marker="o",
                          label="%s %s" % (label(run), pct))
        finish_axis(axis, title, "x-small")
    save(fig, "Latency percentiles - " + subtitle, prefix + "-latency.png")
    print("%s-throughput.png %s-latency.png" % (prefix, prefix))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
