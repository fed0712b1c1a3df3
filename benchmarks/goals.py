"""The performance goals, checked against what ``python -m benchmarks.compare`` measured.

Two parts feed them: the side-by-side comparison (goal size 4 x 200) and the large goal run (16 x 2000:
``none``, ``none-callback``, ``tb-all`` and the optimized direct-write floor ``fast-*``). Every goal is a
line PASS, FAIL or SKIP (not measured) with the measured number and the target:

- time: ``tb-all`` fit() <= 1.3x ``none``'s at 4 x 200, <= 1.6x at 16 x 2000 (medians over repeats);
- floor: at 16 x 2000, ``tb-all`` minus ``none`` <= 1.0x the optimized floor (the sum of the ``fast-*`` medians);
- Tune's thread: ``tb-all``'s per-result time in the callback (median of the runs' medians) < 0.05 ms;
- stored: every value of every TrackBridge run (``tb-*``) read back with the tracker's own reader;
- memory: ``tb-all``'s driver peak RSS <= 1.2x ``none-callback``'s (medians);
- tracker processes: ``tb-all``'s at the large run's trials against the comparison's: count not higher, MiB
  at most 1.25x (RSS grows a little with the data a process holds; a process per trial would be 4x).

A goal whose configuration FAILED (crashed, or lost values) is FAIL whatever its numbers. Measured at other
sizes than the goal's, the line says so (``--quick``: "smoke sizes: not the goal workload").
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import configs
from benchmarks.result_files import command, machine_line, stem, write_csv, write_markdown
from benchmarks.runs import FLOOR_TRACKERS
from benchmarks.tables import MEMORY_BASELINE, TIME_BASELINE, Row, markdown

SMALL_SIZE = (4, 200)
LARGE_SIZE = (16, 2000)
TIME_SMALL = 1.3
TIME_LARGE = 1.6
FLOOR_RATIO = 1.0
STALL_MS = 0.05
MEMORY_RATIO = 1.2
TRACKER_MIB_GROWTH = 1.25
SUBJECT = "tb-all"


@dataclass
class Goal:
    name: str
    measured: str
    target: str
    #: "PASS", "FAIL" or "SKIP" (not measured).
    status: str
    note: str = ""

    def line(self) -> str:
        return f"{self.status:<4}  {self.name}: {self.measured} (target {self.target})" + (
            f" {self.note}" if self.note else ""
        )


def _by(rows: list[Row] | None) -> dict[str, Row]:
    return {row.config: row for row in rows or []}


def _size_note(rows: list[Row], goal: tuple[int, int], smoke: bool) -> str:
    size = (rows[0].trials, rows[0].results)
    if size == goal:
        return ""
    if smoke:
        return "(smoke sizes: not the goal workload)"
    return f"(measured at {size[0]}x{size[1]}, not the goal's {goal[0]}x{goal[1]})"


def _failed(rows: dict[str, Row], names: list[str]) -> str:
    """Why the goal cannot pass: the named rows missing or FAILED ("" when all ran and passed)."""
    missing = [n for n in names if n not in rows]
    if missing:
        return f"not run: {', '.join(missing)}"
    failed = [n for n in names if not rows[n].passed]
    return f"{', '.join(failed)} FAILED" if failed else ""


def _judge(
    name: str,
    rows: dict[str, Row],
    needs: list[str],
    value: float | None,
    ok: bool,
    measured: str,
    target: str,
    note: str,
) -> Goal:
    """PASS when ``ok`` and every needed row ran and passed; SKIP when one was not run; FAIL otherwise."""
    why = _failed(rows, needs)
    if why.startswith("not run"):
        return Goal(name, why, target, "SKIP", note)
    if value is None:
        return Goal(name, why or "not measured", target, "FAIL" if why else "SKIP", note)
    status = "PASS" if ok and not why else "FAIL"
    return Goal(name, measured + (f"; {why}" if why else ""), target, status, note)


def _part_goals(rows: list[Row], goal: tuple[int, int], limit: float, smoke: bool) -> list[Goal]:
    by, note = _by(rows), _size_note(rows, goal, smoke)
    size = f"{rows[0].trials}x{rows[0].results}"
    out = []
    tb, base = by.get(SUBJECT), by.get(TIME_BASELINE)
    fit, base_fit = (tb.median("fit_seconds") if tb else None), (base.median("fit_seconds") if base else None)
    ratio = fit / base_fit if fit is not None and base_fit else None
    out.append(
        _judge(
            f"time at {size}, {SUBJECT} fit() x `{TIME_BASELINE}`",
            by,
            [SUBJECT, TIME_BASELINE],
            ratio,
            ratio is not None and ratio <= limit,
            f"{ratio:.2f}x ({fit:.2f} s / {base_fit:.2f} s)" if ratio is not None else "",
            f"<= {limit:.2f}x",
            note,
        )
    )
    stall = tb.median("stall_ms_median") if tb else None
    out.append(
        _judge(
            f"Tune's thread per result at {size}, {SUBJECT} (median)",
            by,
            [SUBJECT],
            stall,
            stall is not None and stall < STALL_MS,
            f"{stall:.3f} ms" if stall is not None else "",
            f"< {STALL_MS} ms",
            note,
        )
    )
    out.append(_stored_goal(rows, size, note))
    driver = tb.median("driver_peak_mib") if tb else None
    mem = by.get(MEMORY_BASELINE)
    mem_base = mem.median("driver_peak_mib") if mem else None
    mem_ratio = driver / mem_base if driver and mem_base else None
    out.append(
        _judge(
            f"driver memory at {size}, {SUBJECT} peak RSS x `{MEMORY_BASELINE}`",
            by,
            [SUBJECT, MEMORY_BASELINE],
            mem_ratio,
            mem_ratio is not None and mem_ratio <= MEMORY_RATIO,
            f"{mem_ratio:.2f}x ({driver:.0f} MiB / {mem_base:.0f} MiB)" if mem_ratio is not None else "",
            f"<= {MEMORY_RATIO:.2f}x",
            note,
        )
    )
    return out


def _stored_goal(rows: list[Row], size: str, note: str) -> Goal:
    """Every value of every TrackBridge run read back (the do-nothing plugin stores nothing: not counted)."""
    tracked = [
        row
        for row in rows
        if (config := configs.CONFIGS.get(row.config)) and config.kind == "trackbridge" and config.trackers
    ]
    checks = [c for row in tracked for r in row.runs for c in r.checks]
    name = f"every value stored at {size}, TrackBridge runs (read back)"
    if not tracked:
        return Goal(name, "not run: no TrackBridge configuration", "all", "SKIP", note)
    valid, expected = sum(c["valid"] for c in checks), sum(c["expected"] for c in checks)
    runs = sum(len(row.runs) for row in tracked)
    failed = [row.config for row in tracked if not row.passed]
    measured = f"{valid}/{expected} values in {runs} runs" + (f"; {', '.join(failed)} FAILED" if failed else "")
    return Goal(name, measured, "all, every run ok", "FAIL" if failed or valid != expected else "PASS", note)


def _floor_goal(rows: list[Row], smoke: bool) -> list[Goal]:
    by, note = _by(rows), _size_note(rows, LARGE_SIZE, smoke)
    size = f"{rows[0].trials}x{rows[0].results}"
    fast = [f"fast-{t}" for t in FLOOR_TRACKERS]
    parts = [by[n].median("fit_seconds") if n in by else None for n in fast]
    floor = sum(p for p in parts if p is not None) if all(p is not None for p in parts) else None
    tb, base = by.get(SUBJECT), by.get(TIME_BASELINE)
    fit, base_fit = (tb.median("fit_seconds") if tb else None), (base.median("fit_seconds") if base else None)
    added = fit - base_fit if fit is not None and base_fit is not None else None
    ratio = added / floor if added is not None and floor else None
    detail = " + ".join(f"{p:.2f}" for p in parts) if floor is not None else ""
    return [
        _judge(
            f"added time at {size}, ({SUBJECT} - `{TIME_BASELINE}`) x optimized floor (sum of fast-*)",
            by,
            [SUBJECT, TIME_BASELINE, *fast],
            ratio,
            ratio is not None and ratio <= FLOOR_RATIO,
            f"{ratio:.2f}x ({added:.2f} s added / {floor:.2f} s floor = {detail})" if ratio is not None else "",
            f"<= {FLOOR_RATIO:.2f}x",
            note,
        )
    ]


def _trackers_goal(small: list[Row], large: list[Row], smoke: bool) -> Goal:
    a, b = _by(small).get(SUBJECT), _by(large).get(SUBJECT)
    name = f"tracker processes of {SUBJECT} not growing with trials"
    target = f"count not higher, MiB <= {TRACKER_MIB_GROWTH:.2f}x"
    if a is None or b is None or b.trials <= a.trials:
        return Goal(name, "not measured: needs tb-all at two trial counts", target, "SKIP")
    count_a, count_b = a.max("tracker_procs") or 0, b.max("tracker_procs") or 0
    mib_a, mib_b = a.median("tracker_peak_mib") or 0.0, b.median("tracker_peak_mib") or 0.0
    ok = count_b <= count_a and (mib_b <= TRACKER_MIB_GROWTH * mib_a if mib_a else mib_b == 0)
    measured = (
        f"{a.trials} trials: count {count_a}, {mib_a:.0f} MiB; {b.trials} trials: count {count_b}, {mib_b:.0f} MiB"
    )
    why = _failed({SUBJECT: a}, [SUBJECT]) or _failed({SUBJECT: b}, [SUBJECT])
    note = ""
    if (a.trials, b.trials) != (SMALL_SIZE[0], LARGE_SIZE[0]):
        note = (
            "(smoke sizes: not the goal workload)"
            if smoke
            else f"(measured at {a.trials} and {b.trials} trials, not the goal's {SMALL_SIZE[0]} and {LARGE_SIZE[0]})"
        )
    return Goal(name, measured + (f"; {why}" if why else ""), target, "PASS" if ok and not why else "FAIL", note)


def evaluate(small: list[Row] | None, large: list[Row] | None, smoke: bool = False) -> list[Goal]:
    """Every goal, from the comparison's rows (``small``) and the large goal run's (``large``); None: not run."""
    goals: list[Goal] = []
    if small:
        goals += _part_goals(small, SMALL_SIZE, TIME_SMALL, smoke)
    else:
        goals.append(Goal(f"time at {SMALL_SIZE[0]}x{SMALL_SIZE[1]}", "not run", f"<= {TIME_SMALL:.2f}x", "SKIP"))
    if large:
        goals += _part_goals(large, LARGE_SIZE, TIME_LARGE, smoke)
        goals += _floor_goal(large, smoke)
    else:
        size = f"{LARGE_SIZE[0]}x{LARGE_SIZE[1]}"
        goals.append(Goal(f"time at {size}", "not run (--no-large)", f"<= {TIME_LARGE:.2f}x", "SKIP"))
        goals.append(Goal(f"added time at {size}", "not run (--no-large)", f"<= {FLOOR_RATIO:.2f}x", "SKIP"))
    goals.append(_trackers_goal(small or [], large or [], smoke))
    return goals


def report(goals: list[Goal]) -> str:
    """The goal lines, for the end of the run."""
    passed = sum(g.status == "PASS" for g in goals)
    failed = sum(g.status == "FAIL" for g in goals)
    head = f"goals: {passed} PASS, {failed} FAIL, {len(goals) - passed - failed} SKIP (not measured)"
    return "\n".join([head, *(g.line() for g in goals)])


GOAL_COLUMNS = ["goal", "measured", "target", "status"]


def markdown_section(goals: list[Goal]) -> list[str]:
    """The goals as a Markdown section (for the result files)."""
    body = [[g.name, g.measured + (f" {g.note}" if g.note else ""), g.target, g.status] for g in goals]
    return ["## Goals", "", markdown(GOAL_COLUMNS, body)]


def as_dicts(goals: list[Goal]) -> list[dict[str, str]]:
    return [asdict(g) for g in goals]


def write_goals(goals: list[Goal], args: argparse.Namespace, info: dict[str, Any], sizes: list[str]) -> str:
    """``goals-<sizes>`` (Markdown, CSV, JSON) in the output directory; returns the Markdown's path."""
    path = stem(args, "goals-" + "-".join(sizes))
    lines = [f"# Performance goals: {', '.join(sizes)}", "", f"Machine: {machine_line(info)}.", ""]
    lines += [f"Command: `{command(args)}`. Medians over {args.repeats} repeat(s).", ""]
    write_markdown(path, lines + markdown_section(goals)[2:])
    write_csv(path, ["goal", "measured", "target", "status", "note"], [list(asdict(g).values()) for g in goals])
    with open(path + ".json", "w", encoding="utf-8") as f:
        json.dump({"machine": info, "args": args.argv, "goals": as_dicts(goals)}, f, indent=1, default=str)
    print(f"written: {path}.md, .csv, .json", flush=True)
    return path + ".md"
