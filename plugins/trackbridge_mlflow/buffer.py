"""Per-run metric buffers, written with ``log_batch`` in MLflow-sized chunks, with bounded retries.

Results only buffer; ``trackbridge_flush`` writes. One run's failing batch must not cost the other runs
their data, and must not be retried for ever: it is kept for ``retries`` more flushes, then dropped, and
every failure is raised (after the other runs have been written) so the core counts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from trackbridge_mlflow.limits import chunked


class FlushError(RuntimeError):
    """Some runs' metrics could not be written; the message says which, and what was kept or dropped."""

    def __init__(self, problems: list[str], dropped: int) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.dropped = dropped


@dataclass
class _Pending:
    metrics: list[Any] = field(default_factory=list)
    failures: int = 0


class MetricBuffer:
    """Metrics waiting to be written, per run id."""

    def __init__(self, log_batch: Callable[[str, list[Any]], None], chunk_size: int, retries: int) -> None:
        self._log_batch = log_batch
        self._chunk_size = chunk_size
        self._retries = retries
        self._pending: dict[str, _Pending] = {}
        #: Metric points given up on (after ``retries`` failed flushes), over the buffer's life.
        self.dropped = 0

    def add(self, run_id: str, metrics: Iterable[Any]) -> None:
        self._pending.setdefault(run_id, _Pending()).metrics.extend(metrics)

    def pending(self, run_id: str | None = None) -> int:
        if run_id is not None:
            p = self._pending.get(run_id)
            return len(p.metrics) if p else 0
        return sum(len(p.metrics) for p in self._pending.values())

    def flush(
        self, run_ids: Iterable[str] | None = None, *, final: bool = False, label: Callable[[str], str] = str
    ) -> int:
        """Write the buffers of ``run_ids`` (default: all). Returns how many points were written.

        A run whose write fails keeps its unwritten points for the next flush, up to ``retries`` failed
        flushes in a row (``final=True``: none, it is the last chance); then they are dropped. Raises
        ``FlushError`` naming every failed run once every run has had its turn.
        """
        targets = list(self._pending) if run_ids is None else [r for r in run_ids if r in self._pending]
        written = 0
        problems: list[str] = []
        dropped = 0
        for run_id in targets:
            pending = self._pending[run_id]
            sent = 0
            try:
                for chunk in chunked(pending.metrics, self._chunk_size):
                    self._log_batch(run_id, list(chunk))
                    sent += len(chunk)
            except Exception as exc:
                pending.metrics = pending.metrics[sent:]
                written += sent
                pending.failures += 1
                left = len(pending.metrics)
                reason = f"{type(exc).__name__}: {exc}"
                if final or pending.failures > self._retries:
                    dropped += left
                    self.dropped += left
                    del self._pending[run_id]
                    problems.append(
                        f"log_batch failed for {label(run_id)} ({pending.failures} attempts); "
                        f"dropped {left} metric points: {reason}"
                    )
                else:
                    problems.append(
                        f"log_batch failed for {label(run_id)} (attempt {pending.failures} of "
                        f"{self._retries + 1}); keeping {left} metric points for the next flush: {reason}"
                    )
            else:
                written += sent
                del self._pending[run_id]
        if problems:
            raise FlushError(problems, dropped)
        return written
