"""Map a row pass over the persisted partition blocks and reduce the sums.

One *round* is: every block runs the same function with the same small
payload (on the worker that holds it) and the results are added in
partition order -- on the workers in groups when there are many
partitions, so the client receives at most ``GATHER_MAX`` q- and p-sized
partial sums: its memory per round never depends on the rows.

Example
-------
>>> from interlace.distributed.rounds import Rounds
>>> Rounds.__name__
'Rounds'
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from interlace.distributed import blocks as B


def _nbytes(obj: Any) -> int:
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 8


class Rounds:
    """The persisted blocks of one fit and a counter of map/reduce rounds."""

    GATHER_MAX = 16
    SCATTER_BYTES = 64_000
    FAN_IN = 8

    def __init__(self, client: Any, blocks: list[Any]) -> None:
        self.client = client
        self.blocks = blocks
        self.count = 0
        self.by_kind: dict[str, int] = {}

    def run(self, fn: Callable, payload: dict) -> dict:
        """Run ``fn(block, payload)`` on every block and return the summed dict."""
        if _nbytes(payload) > self.SCATTER_BYTES:
            # one copy on the cluster, not one per task inside the graph; in a
            # list, so its key is fresh (a dict's keys would become task keys)
            [payload] = self.client.scatter([payload], hash=False)
        # positional, not a keyword: map turns large keywords into a task
        # named after the keyword, which collides between rounds
        futs = self.client.map(fn, self.blocks, [payload] * len(self.blocks), pure=False)
        # Many partitions: add groups of FAN_IN on the workers first, so the
        # client never holds more than GATHER_MAX partial sums (memory does
        # not grow with the number of partitions); few: gather them directly
        # (one hop less per round). Order is kept: the sum is deterministic.
        while len(futs) > self.GATHER_MAX:
            futs = [self.client.submit(B.sum_parts, futs[i:i + self.FAN_IN], pure=False)
                    for i in range(0, len(futs), self.FAN_IN)]
        out = B.sum_parts(self.client.gather(futs))
        del futs
        self.count += 1
        name = fn.__name__
        self.by_kind[name] = self.by_kind.get(name, 0) + 1
        return out

    def replace_blocks(self, fn: Callable, *args: Any) -> list[Any]:
        """Replace every block by ``fn(block, *args)``, computed on its
        worker; returns each new block's ``block_stat(..., "sat")``."""
        n = len(self.blocks)
        new = self.client.map(fn, self.blocks, *[[a] * n for a in args], pure=False)  # positional (see run)
        sat = self.client.gather(self.client.map(B.block_stat, new, ["sat"] * n, pure=False))
        self.blocks = new
        self.count += 1
        self.by_kind[fn.__name__] = self.by_kind.get(fn.__name__, 0) + 1
        return sat

    def release(self) -> None:
        """Drop the persisted blocks from the cluster."""
        self.blocks = []
