"""Many taps, one reader: every tap's audio of a bridge tick as one batch of numpy arrays.

A reader per tap (``async for frame in tap``) costs one coroutine wake-up, one future and a
few Python objects per chunk of every call: 2-3 microseconds with warm caches, 6-9 in a busy
server, which for a tap on each of hundreds of calls is a fifth of what the calls themselves
cost (bench/tap.py). Work that looks at every call at once (level meters, silence and
talk-over detection, a recognizer pool fed from one place) reads a ``TapGroup`` instead::

    group = engine.tap_group(chunk_ms=40)
    tap = await engine.open_tap(call, group=group)       # for each call, whenever
    async for batch in group:                            # one TapBatch per bridge tick
        levels = np.abs(batch.matrix()).mean(axis=1)     # vectorized over the calls
        for tap_id, frame in batch.frames():             # or call by call
            ...

A batch is built from the native pass without a Python object per chunk. Taps of a group keep
their own ``write``/``flush``/``stats``/``close``; reading them one by one raises ``TapError``.
A reader that falls behind loses the group's oldest batches (``TapGroup.batches_dropped``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .audio import Pcm
from .tap import Handoff, HubPump, Tap, TapFrame, split_frames

_PASSES_PER_S = 50  # the bridge ticks every 20 ms: at most one pass per tick


@dataclass(frozen=True, slots=True)
class TapBatch:
    """The chunks a group's taps delivered in one pass, as parallel arrays (one entry each).

    An entry is one chunk, or the short tail of a tap that closed; a tap has several entries,
    in order, if the loop was late. ``ended`` lists the taps that closed and are now drained. The
    arrays are views of one int64 table (``rows``): read them, do not write them.
    """

    rate: int
    chunk_samples: int
    pcm: Pcm  # every entry's samples, one after the other (read-only use)
    rows: np.ndarray  # int64 (entries, 6): tap id, start, length, position, time in ns, ended
    ended: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def taps(self) -> np.ndarray:
        """Tap id of each entry."""
        return self.rows[:, 0]

    @property
    def starts(self) -> np.ndarray:
        """Offset of each entry in ``pcm``."""
        return self.rows[:, 1]

    @property
    def lengths(self) -> np.ndarray:
        """Samples of each entry."""
        return self.rows[:, 2]

    @property
    def positions(self) -> np.ndarray:
        """Index of each entry's first sample since its tap opened."""
        return self.rows[:, 3]

    @property
    def times(self) -> np.ndarray:
        """time.monotonic() at which the bridge delivered each entry's first sample (float64)."""
        return self.rows[:, 4] * 1e-9

    def matrix(self) -> np.ndarray:
        """The entries as rows of a (entries, chunk_samples) view when every entry is one chunk.

        Raises ValueError otherwise (a closed tap's short tail): use ``frames()``.
        """
        if len(self.rows) and not (self.rows[:, 2] == self.chunk_samples).all():
            raise ValueError("entries of unequal length in this batch: use frames()")
        return self.pcm[: len(self.rows) * self.chunk_samples].reshape(len(self.rows), self.chunk_samples)

    def frames(self) -> Iterator[tuple[int, TapFrame]]:
        """Each chunk as ``(tap id, TapFrame)``, split to ``chunk_samples``."""
        for tap, start, n, pos, t_ns, _ in self.rows.tolist():
            for frame in split_frames(self.pcm, start, n, self.chunk_samples, self.rate, pos, t_ns * 1e-9):
                yield tap, frame


class TapGroup:
    """Taps read together: ``async for batch in group``. Made by ``Engine.tap_group``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rate: int, chunk_ms: int, max_pending_s: float) -> None:
        self.rate = rate
        self.chunk_ms = chunk_ms
        self.chunk_samples = max(1, rate * chunk_ms // 1000)
        self._pump = _GroupPump(loop, self)
        self._batches: Handoff[TapBatch] = Handoff(loop, int(max_pending_s * _PASSES_PER_S), "this TapGroup")

    @property
    def batches_dropped(self) -> int:
        """Batches dropped because the reader fell behind."""
        return self._batches.dropped

    @property
    def taps(self) -> dict[int, Tap]:
        """The group's open taps by id."""
        return dict(self._pump._taps)

    def __aiter__(self) -> Handoff[TapBatch]:
        return self._batches

    def __anext__(self) -> asyncio.Future[TapBatch]:
        return self._batches.next()

    async def read(self) -> TapBatch | None:
        """The next batch; None once the group is closed and drained."""
        return await self._batches.read()

    async def close(self) -> None:
        """Close every tap of the group, then end the iteration (after what is queued)."""
        await asyncio.gather(*(tap.close() for tap in list(self._pump._taps.values())))
        await self._stop()

    async def _stop(self) -> None:  # also Engine.stop(), once every tap has left the bridge
        if not self._batches.ended:
            await self._pump.stop()
            self._batches.end()

    # -- called by the pump ----------------------------------------------------------------------
    def _add(self, tap: Tap) -> Tap:
        return self._pump.add(tap)


class _GroupPump(HubPump):
    def __init__(self, loop: asyncio.AbstractEventLoop, group: TapGroup) -> None:
        super().__init__(loop)
        self._group = group

    def _take(self, rows: np.ndarray, audio: Pcm) -> None:
        ended: tuple[int, ...] = ()
        if np.count_nonzero(rows[:, 5]):  # taps that closed: end them, keep only the entries with audio
            done = rows[:, 5] != 0
            ended = tuple(rows[done, 0].tolist())
            for key in ended:
                tap = self._taps.pop(key, None)
                if tap is not None:
                    tap._end()
            rows = rows[~done]
        group = self._group
        group._batches.put(TapBatch(group.rate, group.chunk_samples, audio, rows, ended))
