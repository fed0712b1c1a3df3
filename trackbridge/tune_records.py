"""Tune's own records of an experiment, read back from its folder (a local path or any URI ``pyarrow.fs``
understands, e.g. ``s3://bucket/path``): the trials, each trial's results in the order Tune wrote them, its
checkpoints that still exist, its status and error.

Only Tune's JSON files are read, never a pickle (no code from the folder runs): the newest
``experiment_state-*.json`` (trial ids, names, tags, statuses, directories), each trial's ``result.json``
(written by Tune's JSON logger, on unless ``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``) and ``error.txt``.
This is the layout of Ray 2.7 and later (every Ray TrackBridge supports, 2.40+, writes it).

A trial directory with a ``result.json`` that the experiment state does not name (the driver was killed
before Tune saved its state again) is read too, as a trial Tune never finished.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs

from trackbridge.secrets import mask_uri

RESULT_FILE = "result.json"
#: Population Based Training's log of its exploits (one JSON list per line, see ``pbt_exploits``).
PBT_LOG_FILE = "pbt_global.txt"
ERROR_FILE = "error.txt"
STATE_PATTERN = ("experiment_state-", ".json")
#: Tune's statuses: what the trial's completion becomes.
FINISHED_STATUS = "TERMINATED"
ERROR_STATUS = "ERROR"
NEVER_STARTED_STATUS = "PENDING"


class NotATuneExperiment(ValueError):
    """The folder holds no Tune experiment state TrackBridge can read."""


class DamagedTrial(ValueError):
    """A trial's files cannot be read as Tune wrote them; the message says which and why."""


@dataclass(frozen=True)
class Exploit:
    """One PBT exploit of a trial, as PBT logged it: the trial's and the donor's last steps PBT had seen
    (``at_step``, ``donor_step``; they can lag behind the results) and the config it continued with."""

    at_step: int
    donor_step: int
    config: dict[str, Any]


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the experiment state (or, for a trial it lacks, its directory) tells it."""

    trial_id: str
    #: ``str(trial)`` in the live run: what the plugins name the trial's runs.
    trial_name: str
    #: The trial's directory, on the experiment's filesystem.
    path: str
    experiment_tag: str
    #: Tune's status: ``TERMINATED``, ``ERROR``, ``RUNNING``, ``PAUSED``, ``PENDING`` (None: not in the state).
    status: str | None
    #: The config the state holds (the latest; values Tune could not write as JSON are their descriptions).
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def original_tag(self) -> str:
        """The experiment tag the trial started with (PBT appends ``@perturbed[...]`` on exploits)."""
        return self.experiment_tag.split("@perturbed")[0]


@dataclass
class ExperimentRecord:
    """A Tune experiment folder, opened."""

    name: str
    #: The experiment directory on ``filesystem``.
    path: str
    filesystem: pyarrow.fs.FileSystem
    trials: list[TrialRecord]
    #: ``(what, why)`` of entries in the experiment state that could not be read (reported, not replayed).
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_local(self) -> bool:
        return bool(self.filesystem.type_name == "local")

    # ------------------------------------------------------------------ a trial's files
    def results(self, trial: TrialRecord) -> Iterator[dict[str, Any]]:
        """The trial's results in the order Tune wrote them. Raises ``DamagedTrial`` for a missing or unreadable
        ``result.json`` or a line in it that is not JSON (a torn last line, from a killed driver, is skipped)."""
        text = self.read_text(posixpath.join(trial.path, RESULT_FILE))
        if text is None:
            raise DamagedTrial(f"{trial.trial_name}: no {RESULT_FILE} (Tune's JSON logger was off, or it is gone)")
        lines = text.splitlines()
        torn_last = not text.endswith("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                if number == len(lines) and torn_last:
                    return  # the write in progress when the driver stopped
                raise DamagedTrial(f"{trial.trial_name}: {RESULT_FILE} line {number} is not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise DamagedTrial(f"{trial.trial_name}: {RESULT_FILE} line {number} is not a result")
            yield row

    def pbt_exploits(self) -> dict[str, list[Exploit]]:
        """PBT's exploits per trial (by original tag), in order, from ``pbt_global.txt`` (empty without PBT).
        Each line: ``[trial tag, donor tag, trial step, donor step, donor config, new config]``."""
        try:
            text = self.read_text(posixpath.join(self.path, PBT_LOG_FILE))
        except DamagedTrial:
            text = None
        exploits: dict[str, list[Exploit]] = {}
        for line in (text or "").splitlines():
            try:
                tag, _, at_step, donor_step, _, config = json.loads(line)
            except (ValueError, TypeError):
                continue  # a torn or foreign line: that exploit is then recognised by its config change only
            if isinstance(at_step, int) and isinstance(donor_step, int) and isinstance(config, dict):
                exploits.setdefault(str(tag), []).append(Exploit(at_step, donor_step, config))
        return exploits

    def error(self, trial: TrialRecord) -> str | None:
        """The text of the trial's ``error.txt``, if any."""
        try:
            return self.read_text(posixpath.join(trial.path, ERROR_FILE))
        except DamagedTrial:
            return None

    def existing_dir(self, trial: TrialRecord, name: str) -> str | None:
        """The path of the directory ``name`` (relative to the trial's, or absolute) if it still exists."""
        path = name if name.startswith("/") or "://" in name else posixpath.join(trial.path, name)
        if "://" in path:
            try:
                path = pyarrow.fs.FileSystem.from_uri(path)[1]
            except (pyarrow.ArrowInvalid, ValueError):
                return None
        try:
            info = self.filesystem.get_file_info(path)
        except OSError:
            return None
        return path if info.type == pyarrow.fs.FileType.Directory else None

    def read_text(self, path: str) -> str | None:
        """The text of the file at ``path`` on the experiment's filesystem (None when it does not exist)."""
        try:
            with self.filesystem.open_input_stream(path) as stream:
                return bytes(stream.read()).decode("utf-8", errors="replace")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DamagedTrial(f"cannot read {path}: {exc}") from exc


def open_experiment(path: str, storage_filesystem: pyarrow.fs.FileSystem | None = None) -> ExperimentRecord:
    """Open the Tune experiment at ``path`` (a local path or a URI; with ``storage_filesystem``, a path on it,
    as Tune's ``RunConfig(storage_filesystem=...)`` takes it). Raises ``NotATuneExperiment``."""
    shown = mask_uri(str(path))  # what messages name: never a password in the URI
    if storage_filesystem is not None:
        fs, root = storage_filesystem, str(path)
    else:
        try:
            fs, root = pyarrow.fs.FileSystem.from_uri(_absolute(str(path)))
        except (pyarrow.ArrowInvalid, ValueError, OSError) as exc:
            raise NotATuneExperiment(f"trackbridge: cannot open {shown!r}: {mask_uri(str(exc))}") from exc
    root = root.rstrip("/") or "/"
    try:
        entries = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except OSError as exc:
        raise NotATuneExperiment(f"trackbridge: cannot list {shown!r}: {mask_uri(str(exc))}") from exc
    names = {posixpath.basename(e.path): e for e in entries}
    states = sorted(n for n in names if n.startswith(STATE_PATTERN[0]) and n.endswith(STATE_PATTERN[1]))
    if not states:
        what = "does not exist or is empty" if not names else "has no experiment_state-*.json"
        raise NotATuneExperiment(
            f"trackbridge: {shown!r} is not a Tune experiment folder: it {what} (the folder Tune writes is "
            "<storage_path>/<experiment name>, holding experiment_state-*.json and one directory per trial; "
            "Ray 2.7 or later)"
        )
    record = ExperimentRecord(name=posixpath.basename(root), path=root, filesystem=fs, trials=[])
    state = _newest_readable_state(record, [posixpath.join(root, n) for n in reversed(states)])
    known: set[str] = set()
    for index, entry in enumerate(state.get("trial_data") or []):
        try:
            trial = _trial_from_state(root, entry)
        except (ValueError, TypeError, KeyError) as exc:
            record.problems.append((f"trial #{index + 1} of the experiment state", f"unreadable ({exc})"))
            continue
        record.trials.append(trial)
        known.add(posixpath.basename(trial.path))
    for name, info in sorted(names.items()):
        if info.type == pyarrow.fs.FileType.Directory and name not in known:
            orphan = _trial_from_directory(record, info.path)
            if orphan is not None:
                record.trials.append(orphan)
    record.trials.sort(key=lambda t: t.trial_id)
    return record


def _absolute(path: str) -> str:
    if "://" in path:
        return path
    import os

    return os.path.abspath(os.path.expanduser(path))


def _newest_readable_state(record: ExperimentRecord, paths: list[str]) -> dict[str, Any]:
    for path in paths:
        try:
            text = record.read_text(path)
            state = json.loads(text or "")
        except (DamagedTrial, ValueError) as exc:
            record.problems.append((posixpath.basename(path), f"unreadable ({exc}); trying an older one"))
            continue
        if isinstance(state, dict):
            return state
    raise NotATuneExperiment(f"trackbridge: no readable experiment state in {record.path!r}: {record.problems}")


def _trial_from_state(root: str, entry: Any) -> TrialRecord:
    # Ray 2.7+: [trial state as JSON, run metadata as JSON]; the trial state is Trial.__getstate__ encoded with
    # Tune's JSON encoder (values it cannot write are cloudpickled: never loaded here).
    text = entry[0] if isinstance(entry, list | tuple) else entry
    state = json.loads(text)
    trial_id = str(state["trial_id"])
    config = _plain(state.get("config") or {})
    custom = state.get("custom_trial_name")
    return TrialRecord(
        trial_id=trial_id,
        trial_name=str(custom) if custom else _default_trial_name(str(state.get("trainable_name")), trial_id, config),
        path=posixpath.join(root, str(state["relative_logdir"])),
        experiment_tag=str(state.get("experiment_tag") or ""),
        status=str(state.get("status") or "") or None,
        config=config if isinstance(config, dict) else {},
    )


def _default_trial_name(trainable_name: str, trial_id: str, config: Any) -> str:
    """``str(trial)`` of Ray's ``Trial`` without a custom name: ``<trainable>[_<env>]_<trial id>``."""
    identifier = trainable_name
    env = config.get("env") if isinstance(config, dict) else None
    if env is not None:
        identifier += f"_{env}"
    return f"{identifier}_{trial_id}".replace("/", "_")


def _trial_from_directory(record: ExperimentRecord, path: str) -> TrialRecord | None:
    """A trial directory the experiment state does not name: its id and config from its first result."""
    probe = TrialRecord(trial_id="?", trial_name=posixpath.basename(path), path=path, experiment_tag="", status=None)
    try:
        first = next(record.results(probe), None)
    except DamagedTrial:
        return None
    if not first or not first.get("trial_id"):
        return None
    trial_id, dirname = str(first["trial_id"]), posixpath.basename(path)
    prefix, found, rest = dirname.partition(f"_{trial_id}")
    if not found:
        return None
    tag = rest.lstrip("_").rsplit("_", 2)[0] if rest.count("_") >= 2 else ""
    found_config = first.get("config")
    config: dict[str, Any] = found_config if isinstance(found_config, dict) else {}
    return TrialRecord(
        trial_id=trial_id, trial_name=f"{prefix}_{trial_id}", path=path, experiment_tag=tag, status=None, config=config
    )


def _plain(value: Any) -> Any:
    """Tune's JSON encoding with its pickled fallbacks replaced by a description (never unpickled)."""
    if isinstance(value, dict):
        if value.get("_type") == "CLOUDPICKLE_FALLBACK":
            return "<not JSON: pickled by Tune>"
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
