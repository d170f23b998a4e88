"""Synthetic CT findings as a dataset for MONAI training loops: item ``n`` is synthetic scan
``n`` of ``synthetic.synthetic_findings_set`` (the same seeds, so the same scan), made on
demand in whichever DataLoader worker asks for it.

Items follow MONAI's conventions: ``image`` a channel-first ``MetaTensor`` (1, x, y, z) whose
affine maps (i, j, k) to RAS mm; ``findings`` a float tensor (F,) of 0/1 in ``finding_names``
order; with ``with_masks``, ``finding_masks`` (F, x, y, z) of each finding's lesion voxels;
``record`` a JSON string of what made the scan (lesion records, references) that collates.
Scans are used as given: for a model that reads the box around its organs (``FindingsRecipe.
organ_margin_mm``), pass scans cut with ``scans.organ_region`` (with the model's
``view_mm``).
Imported only where torch and MONAI are installed.
"""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import torch
from monai.data import MetaTensor

from .scans import HealthyScan
from .synthetic import check_organs, finding_names, findings_scan


class SynthFindingsDataset(torch.utils.data.Dataset):
    """``count`` synthetic scans with exact, located findings, made from ``scans`` in turn."""

    def __init__(self, scans: list[HealthyScan], count: int, organs: list[str], seed: int, label_set: str = "type",
                 size_classes: tuple[str, ...] = ("medium", "large"), positive_rate: float = 0.5,
                 with_masks: bool = False, transform: Callable[[dict], dict] | None = None):
        check_organs(scans, organs)
        self.scans, self.count, self.organs, self.seed = scans, int(count), list(organs), int(seed)
        self.label_set, self.size_classes, self.positive_rate = label_set, tuple(size_classes), positive_rate
        self.finding_names = finding_names(self.organs, label_set, self.size_classes)
        self.with_masks, self.transform = with_masks, transform

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, n: int) -> dict:
        if not 0 <= n < self.count:
            raise IndexError(n)
        image, row, masks, references, records = findings_scan(
            self.scans, n, self.organs, self.seed, self.finding_names, self.size_classes, self.positive_rate,
            self.label_set)
        affine = torch.as_tensor(self.scans[n % len(self.scans)].geometry.ijk_to_ras_matrix())
        item = {"image": MetaTensor(np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 1, 0)[None]),
                                    affine=affine),
                "findings": torch.as_tensor(row, dtype=torch.float32),
                "record": json.dumps({"scan": n, "seed": self.seed, "references": references, "lesions": records})}
        if self.with_masks:
            stacked = np.zeros((len(self.finding_names), *np.shape(image)[::-1]), np.uint8)
            for f, voxels in masks.items():
                stacked[f] = np.asarray(voxels).transpose(2, 1, 0)
            item["finding_masks"] = MetaTensor(stacked, affine=affine)
        return self.transform(item) if self.transform is not None else item
