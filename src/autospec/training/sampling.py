"""Matched group sampling (``recording.group_sampling: matched``).

With a mean-reduced loss every group's gradient G_g carries 1/N, so its singular values grow with
the group's size N_g; comparing groups of different sizes then measures size. Matched sampling
records, at each recorded step, each group's gradient over an equal-size random subset of its
samples in the recorded batch: m = the smallest group's count there (the smallest group's
training count in full-batch training). The samples left out are recorded under one extra group
id, :attr:`MatchedSampler.hidden_group` (= the number of group names), whose rows are not written: the
whole-batch spectra (group −1) and the training itself are unchanged.

The subsets depend only on ``sampling_seed``, the recorder step and the batch: at step s every
dataset row r gets the priority ``default_rng([sampling_seed, s]).permutation(n_rows)[r]`` and
each group keeps its m members of lowest priority. In full-batch training the batch is the same
for every training seed, so every seed records the same subsets; with mini-batches the recorded
batch (and so the subsets) differ between training seeds, but the subsets of two batches share
the rule (the same priorities) and every group still contributes m samples.
"""

from __future__ import annotations

import numpy as np
import torch


class MatchedSampler:
    """Draws the equal-size subsets; ``group_ids`` are the groups that have training samples."""

    def __init__(self, group_ids: list[int], n_group_names: int, n_rows: int, seed: int) -> None:
        self.group_ids = sorted(int(g) for g in group_ids)
        self.hidden_group = max(n_group_names, max(self.group_ids, default=-1) + 1)
        self.n_rows = n_rows
        self.seed = seed

    def draw(self, step: int, groups: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the batch's recorded group ids, the drawn dataset rows (K, m), one row per group id).

        ``groups``/``rows``: the batch's group ids and dataset rows.
        """
        priority = torch.from_numpy(np.random.default_rng([self.seed, step]).permutation(self.n_rows))
        g_cpu, r_cpu = groups.cpu(), rows.cpu()
        members = [torch.nonzero(g_cpu == g).flatten() for g in self.group_ids]
        m = min(len(idx) for idx in members) if members else 0
        recorded = torch.full_like(g_cpu, self.hidden_group)
        drawn = torch.empty((len(members), m), dtype=torch.int64)
        for k, (g, idx) in enumerate(zip(self.group_ids, members)):
            keep = idx[torch.argsort(priority[r_cpu[idx]])[:m]]
            recorded[keep] = g
            drawn[k] = torch.sort(r_cpu[keep]).values
        return recorded.to(groups.device), drawn
