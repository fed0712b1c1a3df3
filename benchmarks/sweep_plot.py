"""The sweep's PNG: one figure, six panels, one x position per size (``T x R``, in the sweep's order).

1. fit() ratio to ``none`` per Tune configuration (with the goals' 1.3x and 1.6x);
2. driver peak RSS, MiB, per Tune configuration;
3. tracker processes: their peak MiB (line) and count (the number at each point);
4. TrackBridge's plugin queue depth: ``max_queue_depth``, max over plugins;
5. Tune's thread per result inside the callbacks, median and p99 (with the 0.05 ms goal);
6. fit() of ``none`` and ``tb-all``, the time added, and the optimized and naive direct-write floors.
"""

from __future__ import annotations

from typing import Any


def plot_sweep(points: list[dict[str, Any]], path: str, title: str) -> None:
    """Draw ``points`` (``benchmarks.sweep.point`` dicts) into ``path`` (PNG, matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys((p["trials"], p["results"]) for p in points))
    x_of = {size: i for i, size in enumerate(sizes)}
    tune = [c for c in dict.fromkeys(p["config"] for p in points) if not c.startswith(("direct-", "fast-"))]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {config: cycle[i % len(cycle)] for i, config in enumerate(tune)}  # one colour per configuration
    fig, axes = plt.subplots(2, 3, figsize=(18, 9.5))
    ratio, driver, trackers, depth, thread, seconds = axes.flat

    def series(config: str, key: str) -> tuple[list[int], list[Any]]:
        pts = [p for p in points if p["config"] == config and p[key] is not None]
        return [x_of[(p["trials"], p["results"])] for p in pts], [p[key] for p in pts]

    for config in tune:
        if config != "none":
            ratio.plot(*series(config, "fit_ratio"), marker="o", color=color[config], label=config)
        driver.plot(*series(config, "driver_mib"), marker="o", color=color[config], label=config)
        pts = [p for p in points if p["config"] == config and p["tracker_procs"]]
        if pts:
            xs = [x_of[(p["trials"], p["results"])] for p in pts]
            trackers.plot(xs, [p["tracker_mib"] for p in pts], marker="o", color=color[config], label=config)
            for x, p in zip(xs, pts, strict=True):
                trackers.annotate(
                    str(p["tracker_procs"]), (x, p["tracker_mib"]), textcoords="offset points", xytext=(0, 6)
                )
        xs, q = series(config, "queue_depth")
        if xs:
            depth.plot(xs, q, marker="o", color=color[config], label=config)
        xs, med = series(config, "stall_median")
        if xs:
            thread.plot(xs, med, marker="o", color=color[config], label=f"{config} median")
            p99 = series(config, "stall_p99")
            thread.plot(*p99, marker="x", linestyle=":", color=color[config], label=f"{config} p99")
    for config in ("none", "tb-all"):
        if config in color:
            seconds.plot(*series(config, "fit"), marker="o", color=color[config], label=f"{config} fit()")
    seconds.plot(*series("tb-all", "added"), marker="^", color="tab:purple", label="tb-all - none (added)")
    seconds.plot(*series("tb-all", "fast_floor"), "k:", marker="s", label="optimized floor (sum of fast-*)")
    seconds.plot(*series("tb-all", "direct_floor"), ":", color="grey", marker="s", label="naive floor (direct-*)")
    ratio.axhline(1.3, color="grey", linewidth=0.8, label="goal 1.3x (4x200)")
    ratio.axhline(1.6, color="grey", linewidth=0.8, linestyle="--", label="goal 1.6x (16x2000)")
    thread.axhline(0.05, color="grey", linewidth=0.8, label="goal median 0.05 ms")
    ratio.set(title="fit() x `none` (no tracking)", ylabel="ratio")
    driver.set(title="driver peak RSS", ylabel="MiB")
    trackers.set(title="tracker processes: peak MiB (number: count)", ylabel="MiB")
    depth.set(title="TrackBridge plugin queue depth (max over plugins)", ylabel="events waiting")
    thread.set(title="Tune's thread per result, in the callbacks", ylabel="ms", yscale="log")
    seconds.set(title="fit() and the direct-write floors", ylabel="seconds")
    for ax in (driver, trackers, depth, seconds):
        ax.set_ylim(0, ax.get_ylim()[1] * 1.12 or 1)  # from zero, with room for the counts above the points
    for ax in axes.flat:
        ax.set_xticks(range(len(sizes)), [f"{t}x{r}" for t, r in sizes])
        ax.set_xlabel("trials x results per trial")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
