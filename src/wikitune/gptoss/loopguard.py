"""Stop a generation that has fallen into a cycle ("Actually… Wait, let's recall…" forever).

    guard = LoopGuard(prompt_length=input_ids.shape[1], batch_size=len(prompts), stop_token_ids=[return_id])
    model.generate(..., stopping_criteria=StoppingCriteriaList([guard.criterion()]))
    guard.stopped_at   # per sequence: new-token count when the guard stopped it, or None

A sequence is looping when its newest tokens are periodic: for some period p in
[min_period, max_period], the last `span >= max(min_span, p * min_repeats)` tokens satisfy
x[t] == x[t - p]. The check is incremental and vectorised over the batch and the periods: per
sequence and period, the length of the current run of matches is kept, so a step costs a few
numpy operations on a (batch, max_period) array, whatever the span. `min_span` keeps ordinary
repetition ("ーーー", a short refrain) from counting as a loop.

Streams may leave and join a detector (`select`, `concat`), each with its own length: the HF
backend's decoding loop drops a finished sequence from its batch and starts the next prompt in
its place, and the detector follows its rows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class CycleDetector:
    """Incremental detector of a repeating n-gram cycle at the end of each of `batch_size` token streams.

    Args:
        batch_size (int): streams advanced together, one token each per `push`.
        min_period, max_period (int): cycle lengths looked for, in tokens.
        min_repeats (int): times the cycle must occur (counting the first).
        min_span (int): tokens the repetition must cover at least.
    """

    def __init__(self, batch_size: int = 1, *, min_period: int = 1, max_period: int = 200, min_repeats: int = 3,
                 min_span: int = 48) -> None:
        if not 1 <= min_period <= max_period:
            raise ValueError("need 1 <= min_period <= max_period")
        if min_repeats < 2:
            raise ValueError("min_repeats must be 2 or more")
        self.min_period, self.max_period = min_period, max_period
        self.min_repeats, self.min_span = min_repeats, min_span
        self.history = np.full((batch_size, max_period), -1, dtype=np.int64)  # history[:, p-1] = token p steps back
        self.runs = np.zeros((batch_size, max_period), dtype=np.int64)
        self.lengths = np.zeros(batch_size, dtype=np.int64)  # tokens pushed per stream
        self.periods = np.arange(1, max_period + 1)
        self.length = 0  # pushes so far: the length of every stream that was there from the start
        # a run of r matches at period p means the last r + p tokens are p-periodic
        self.needed = np.maximum(self.periods * (min_repeats - 1), min_span - self.periods)
        self.needed[: min_period - 1] = np.iinfo(np.int64).max

    def push(self, tokens: Sequence[int]) -> list[int | None]:
        """Add one token per stream; per stream, the period of the cycle it now ends in, or None."""
        new = np.asarray(tokens, dtype=np.int64).reshape(-1, 1)
        # periods reaching before a stream's first token cannot match
        match = (self.history == new) & (self.periods[None, :] <= self.lengths[:, None])
        self.runs = np.where(match, self.runs + 1, 0)
        self.history = np.concatenate([new, self.history[:, :-1]], axis=1)
        self.lengths += 1
        self.length += 1
        hit = self.runs >= self.needed
        out: list[int | None] = []
        for row in hit:
            where = np.flatnonzero(row)
            out.append(int(self.periods[where[0]]) if where.size else None)
        return out

    def select(self, rows: Sequence[int]) -> None:
        """Keep only the streams at positions `rows`, in that order (the others have finished)."""
        index = np.asarray(rows, dtype=np.int64)
        self.history, self.runs, self.lengths = self.history[index], self.runs[index], self.lengths[index]

    def concat(self, other: "CycleDetector") -> None:
        """Append `other`'s streams after this one's (same options), each keeping its own history."""
        self.history = np.concatenate([self.history, other.history])
        self.runs = np.concatenate([self.runs, other.runs])
        self.lengths = np.concatenate([self.lengths, other.lengths])


def find_cycle(tokens: Sequence[int], **kwargs: Any) -> tuple[int, int] | None:
    """(position, period) where one stream first becomes a detected cycle, or None."""
    detector = CycleDetector(1, **kwargs)
    for i, token in enumerate(tokens):
        (period,) = detector.push([int(token)])
        if period is not None:
            return i + 1, period
    return None


class LoopGuard:
    """Per-sequence cycle detection for a batch, usable as a transformers stopping criterion.

    Args:
        prompt_length (int): length of the (left-padded) prompts in input_ids; generated tokens follow.
        batch_size (int): number of sequences.
        stop_token_ids: tokens that end a sequence normally (EOS, <|return|>): the padding that
            follows them is not a loop.
        **detector: CycleDetector options (min_period, max_period, min_repeats, min_span).
    """

    def __init__(self, prompt_length: int, batch_size: int, *, stop_token_ids: Sequence[int] = (), **detector: Any) -> None:
        self.prompt_length = prompt_length
        self.stop_token_ids = set(int(t) for t in stop_token_ids)
        self.detector = CycleDetector(batch_size, **detector)
        self.finished = [False] * batch_size
        self.stopped_at: list[int | None] = [None] * batch_size
        self.periods: list[int | None] = [None] * batch_size

    def update(self, sequences: Any) -> list[bool]:
        """Feed full sequences (prompt + generated so far, all rows the same length); which are stopped."""
        start = self.prompt_length + self.detector.length
        return self.push_new([list(row[start:]) for row in sequences])

    def push_new(self, rows: Sequence[Sequence[int]]) -> list[bool]:
        """Feed only the tokens generated since the last call, one row per sequence; which are stopped."""
        steps = min((len(r) for r in rows), default=0)
        for t in range(steps):
            column = [int(r[t]) for r in rows]
            periods = self.detector.push(column)
            for b, token in enumerate(column):
                if self.finished[b] or self.stopped_at[b] is not None:
                    continue
                if token in self.stop_token_ids:
                    self.finished[b] = True
                elif periods[b] is not None:
                    self.stopped_at[b] = self.detector.length
                    self.periods[b] = periods[b]
        return [s is not None for s in self.stopped_at]

    def criterion(self) -> Any:
        """A `transformers.StoppingCriteria` that stops each looping sequence (its later tokens become padding)."""
        import torch
        from transformers import StoppingCriteria

        guard = self

        class _LoopStopping(StoppingCriteria):
            def __call__(self, input_ids: "torch.LongTensor", scores: Any, **kwargs: Any) -> "torch.BoolTensor":
                # only the new columns leave the tensor: converting the whole sequence each step costs O(length)
                done = guard.push_new(input_ids[:, guard.prompt_length + guard.detector.length :].tolist())
                return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

        return _LoopStopping()
