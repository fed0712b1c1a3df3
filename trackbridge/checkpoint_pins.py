"""Pin every reported local checkpoint until each plugin that takes checkpoints has passed its event.

Tune deletes old checkpoints (``CheckpointConfig(num_to_keep=...)``) on its own thread, while a plugin's
worker may still be busy with earlier events. So when a checkpoint event is emitted (on Tune's thread, before
Tune can delete that checkpoint), ``CheckpointPins`` hard-links the checkpoint's files into a staging
directory TrackBridge owns and sets
``CheckpointInfo.pinned_path``; ``CheckpointInfo.local_copy()`` then reads the pin.

Layout of one pin: ``<root>/<n>/files/<checkpoint's name>/...`` and ``<root>/<n>/holders/<plugin>``, one empty
marker per plugin implementing ``trackbridge_trial_checkpoint``. A plugin's worker removes its marker once
the call has passed it (delivered, failed or dropped, see ``release``), and whoever removes the last marker
removes the pin. Markers are files, so this works across processes too (an ``isolate=``d plugin's own
worker releases in its process). ``close`` removes whatever is left (a stuck plugin's) at the end of the run.

The root is in the system's temporary directory when that is on the checkpoint's device, else next to the
checkpoint (a hidden ``.trackbridge-pins-*`` directory in its parent), so the links never cross a device.
Where hard links are impossible anyway (a file system without them) the checkpoint is not pinned, never
copied: a copy would cost Tune's thread the whole checkpoint's size. It is counted (``unpinned``, the report's
``unpinned_checkpoints``) and the plugins read the original path.

Remote checkpoints (a pyarrow file system other than the local one) are not pinned: the plugin's worker
downloads them when it reaches the event, and a checkpoint Tune has deleted by then raises
``CheckpointGone`` (counted as a failed event of that plugin, never skipped silently).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import shutil
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterable

from trackbridge.events import CheckpointInfo
from trackbridge.loading import LoadedPlugin
from trackbridge.transport import TRIAL_CHECKPOINT, HookCall

logger = logging.getLogger("trackbridge")

FILES = "files"
HOLDERS = "holders"


def _marker(name: str) -> str:
    """A file name for the plugin ``name``, distinct for distinct names."""
    return "p-" + urllib.parse.quote(name, safe="")


def release(calls: Iterable[HookCall], holder: str) -> None:
    """``holder``'s worker has passed ``calls``: give up its hold on the pins among them (on that worker's
    thread). A worker that holds no marker of a pin (it does not take checkpoints) changes nothing."""
    for call in calls:
        if call.hook != TRIAL_CHECKPOINT:
            continue
        pinned = getattr(call.kwargs.get("checkpoint"), "pinned_path", None)
        if not pinned:
            continue
        pin = os.path.dirname(os.path.dirname(pinned))
        holders = os.path.join(pin, HOLDERS)
        try:
            os.unlink(os.path.join(holders, _marker(holder)))
        except FileNotFoundError:
            continue
        try:
            left = os.listdir(holders)
        except FileNotFoundError:  # another holder removed the pin meanwhile
            left = []
        if not left:
            shutil.rmtree(pin, ignore_errors=True)


class CheckpointPins:
    """The pins of one run (see the module docstring). ``sink`` is used on Tune's thread only."""

    def __init__(self, holders: Iterable[str]) -> None:
        #: The plugins that implement ``trackbridge_trial_checkpoint``: each must pass a pin before it goes.
        self.holders = sorted({_marker(h) for h in holders})
        self._roots: dict[int, str] = {}
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        #: Local checkpoints that could not be pinned (already gone, or an error): plugins may miss them.
        self.unpinned = 0

    @classmethod
    def for_plugins(cls, plugins: Iterable[LoadedPlugin]) -> CheckpointPins:
        return cls(p.name for p in plugins if TRIAL_CHECKPOINT in p.hooks)

    def sink(self, submit: Callable[[HookCall], None]) -> Callable[[HookCall], None]:
        """``submit`` with every checkpoint event pinned first."""

        def pin_then_submit(call: HookCall) -> None:
            submit(self.pin(call))

        return pin_then_submit

    def pin(self, call: HookCall) -> HookCall:
        """``call`` with its checkpoint pinned, if it is a checkpoint event some plugin takes and the checkpoint
        is a local directory; else ``call`` unchanged."""
        if call.hook != TRIAL_CHECKPOINT or not self.holders:
            return call
        checkpoint = call.kwargs.get("checkpoint")
        if not isinstance(checkpoint, CheckpointInfo) or not checkpoint.is_local or checkpoint.pinned_path:
            return call
        pinned = self._pin_directory(checkpoint.path)
        if pinned is None:
            return call
        kwargs = dict(call.kwargs)
        kwargs["checkpoint"] = dataclasses.replace(checkpoint, pinned_path=pinned)
        return dataclasses.replace(call, kwargs=kwargs)

    def _pin_directory(self, path: str) -> str | None:
        source = os.path.abspath(path.rstrip("/") or "/")
        pin: str | None = None
        try:
            pin = os.path.join(self._root_for(source), str(next(self._numbers)))
            target = os.path.join(pin, FILES, os.path.basename(source) or "checkpoint")
            shutil.copytree(source, target, copy_function=os.link)  # links only (see the module docstring)
            os.makedirs(os.path.join(pin, HOLDERS))
            for holder in self.holders:
                open(os.path.join(pin, HOLDERS, holder), "x").close()
        except OSError as exc:  # gone already, or unreadable: the plugins see the original path
            if pin is not None:
                shutil.rmtree(pin, ignore_errors=True)
            self.unpinned += 1
            logger.warning(
                "trackbridge: could not pin checkpoint %s for the trackers (%s: %s); it is uploaded only if it "
                "still exists when each tracker reaches it",
                path,
                type(exc).__name__,
                exc,
            )
            return None
        return target

    def _root_for(self, source: str) -> str:
        parent = os.path.dirname(source)
        device = os.stat(source).st_dev
        with self._lock:
            root = self._roots.get(device)
            if root is None:
                temp = tempfile.gettempdir()
                on_device = os.stat(temp).st_dev == device
                root = tempfile.mkdtemp(
                    prefix="trackbridge-pins-" if on_device else ".trackbridge-pins-", dir=temp if on_device else parent
                )
                self._roots[device] = root
            return root

    def close(self) -> None:
        """Remove every pin left (a stuck plugin's, or one an isolated plugin's process never reached)."""
        with self._lock:
            roots, self._roots = list(self._roots.values()), {}
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)
