"""Comparing greedy runs of one prompt made in different batches (shared by the local-LM tests).

A row's matrix products do not depend on its neighbours, but attention over a batch's padding
columns rounds differently from attention alone, so two runs of one prompt agree up to rounding:
each step's logits within a few units of the dtype's last place, and their tokens part only where
the reference was a near tie.
"""

from __future__ import annotations

from typing import Any


def record_step_logits(monkeypatch: Any) -> dict[tuple[int, ...], list[Any]]:
    """Patch the decode engine so that every logits row it picks a token from is recorded, per prompt
    (its token ids), in the returned dict; clear the dict between runs."""
    from textgrad_like.lm.decoding import DecodeEngine

    seen: dict[tuple[int, ...], list[Any]] = {}
    pick = DecodeEngine._pick

    def recording_pick(self: Any, row: Any, logits: Any, torch_module: Any) -> int:
        seen.setdefault(tuple(row.prompt_ids), []).append(logits.detach().clone())
        return pick(self, row, logits, torch_module)

    monkeypatch.setattr(DecodeEngine, "_pick", recording_pick)
    return seen


def assert_same_up_to_rounding(reference: list[Any], other: list[Any], dtype: Any) -> None:
    """Two greedy runs of one prompt: each step's logits agree within 4 units of ``dtype``'s last
    place times the logit scale, and where the chosen tokens part, ``reference`` was a near tie."""
    import torch

    assert reference and other
    scale = max(float(step.abs().max()) for step in reference)
    tolerance = 4 * torch.finfo(dtype).eps * scale
    for ref, got in zip(reference, other, strict=False):
        assert float((ref - got).abs().max()) <= tolerance
        if int(ref.argmax()) != int(got.argmax()):
            top = torch.topk(ref.flatten(), 2).values
            assert float(top[0] - top[1]) <= 2 * tolerance  # a tie within rounding, not a different answer
            return
    assert len(reference) == len(other)  # no token parted, so both runs stopped at the same step
