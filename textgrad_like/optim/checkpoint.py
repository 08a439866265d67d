"""Checkpoint and resume for optimizer runs.

``Checkpoint(dir)`` gives a run two things:

- a **call journal**: every LM reply received inside ``with ckpt.active():`` is written to an
  on-disk store in ``dir/calls`` as soon as it arrives; after a crash the same calls are answered from
  the journal, so no call that was already paid for is made again (whatever each LM's ``cache=``);
- a **state file**: ``save(state)`` writes the optimizer's JSON search state atomically
  (write to a temporary file, then rename), ``load()`` reads it back, so a resumed run skips the
  work it had finished.

Both hold **data only** (JSON text), so resuming from a checkpoint directory someone sent you never
runs code: the journal is the same store as the LM cache (:class:`~textgrad_like.lm.cache.Cache`),
which refuses, logs and deletes any entry that is not JSON it wrote (a pickle included), and the
state file is read with ``json``. See ``SECURITY.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from ..lm.cache import Cache
from ..settings import settings

logger = logging.getLogger(__name__)


class Checkpoint:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.journal = Cache(enable_memory=True, enable_disk=True, disk_dir=os.path.join(self.directory, "calls"))
        self.state_path = os.path.join(self.directory, "state.json")

    @contextlib.contextmanager
    def active(self) -> Iterator[Checkpoint]:
        with settings.context(call_journal=self.journal):
            yield self

    def save(self, state: dict[str, Any]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, ensure_ascii=False, default=str)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load(self) -> dict[str, Any] | None:
        if not os.path.exists(self.state_path):
            return None
        try:
            with open(self.state_path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError, RecursionError) as exc:
            logger.warning("Checkpoint state %s is unreadable (%s: %s); starting the search over (journaled LM "
                           "replies are still reused).", self.state_path, type(exc).__name__, exc)
            return None
        if not isinstance(data, dict):
            logger.warning("Checkpoint state %s is not a JSON object; starting the search over.", self.state_path)
            return None
        return data


@contextlib.contextmanager
def maybe_checkpoint(directory: str | os.PathLike[str] | None) -> Iterator[Checkpoint | None]:
    """``with maybe_checkpoint(checkpoint_dir) as ckpt:`` — a no-op when ``directory`` is None."""
    if directory is None:
        yield None
        return
    ckpt = Checkpoint(directory)
    with ckpt.active():
        yield ckpt
