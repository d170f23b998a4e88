"""SPADE validation on stroke semantic maps (not a test; run through ``validation --only spade``).

Data (``../shared/data``): the MNI152 2009a T1 template on the stroke-lesion grid, its grey-
and white-matter probability maps (``brain_templates``, resampled onto that grid), and real
stroke lesion masks (``stroke_lesions_mni``).  There is no real MR of those lesions, so the
lesioned targets are made by SynthLesion: each case inserts one T1-hypointense lesion
(preset mr-brain, no mass effect so the tissue map stays valid) whose shape is a real stroke
mask, into the brain.  Semantic map per voxel: 0 outside the head, 1 other tissue/CSF,
2 grey matter, 3 white matter, 4 lesion (from SynthLesion's exact label).

SPADE learns axial slices (64 px) of the training cases; the held-out cases (other lesions,
other shapes) are judged: PSNR/SSIM against the target inside the head, lesion contrast
(lesion mean minus the mean of a 3-px ring around it, in T1 units) generated vs target, and
label control: the same map with the lesion label replaced by the tissue underneath must
change the output inside the lesion far more than outside.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

LABELS = [0, 1, 2, 3, 4]  # outside, other/CSF, grey matter, white matter, lesion
LESION = 4


def _tissue_map(data_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """(T1 template, tissue labels 0-3, brain mask, geometry) on the stroke-lesion grid."""
    import SimpleITK as sitk

    from MedSynthCommonLib.imageio import geometry_from_sitk, read_image

    stroke, templates = Path(data_root) / "stroke_lesions_mni", Path(data_root) / "brain_templates"
    reference = read_image(stroke / "template_mni152_2009a_T1_on_lesion_grid.nii.gz")
    t1 = sitk.GetArrayFromImage(reference).astype(np.float32)

    def on_grid(name):  # resampled in physical space: the two grids differ in origin and direction
        image = sitk.Cast(read_image(templates / name), sitk.sitkFloat32)
        return sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), sitk.sitkLinear, 0.0)) / 255.0

    grey, white = on_grid("nilearn_mni_icbm152_gm_09a.nii.gz"), on_grid("nilearn_mni_icbm152_wm_09a.nii.gz")
    tissue = np.where(t1 > 5, 1, 0).astype(np.uint8)
    tissue[(grey >= 0.3) & (grey >= white)] = 2
    tissue[(white >= 0.3) & (white > grey)] = 3
    atlas = sitk.GetArrayFromImage(read_image(stroke / "ArterialAtlas136.nii.gz"))
    return t1, tissue, atlas > 0, geometry_from_sitk(reference)


def _lesion_shapes(data_root: Path, count: int) -> list:
    """Real stroke masks of 5-60 ml as SynthLesion shape templates."""
    from MedSynthCommonLib.imageio import read_volume
    from SynthLesionLib.shape import ShapeTemplate

    stroke = Path(data_root) / "stroke_lesions_mni"
    with (stroke / "lesion_volumes.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if 5000 <= int(r["lesion_voxels_1mm3"]) <= 60000][:count]
    shapes = []
    for row in rows:
        mask, geometry = read_volume(stroke / row["file"])
        shapes.append(ShapeTemplate.from_mask(mask, geometry.spacing_kji, name=Path(row["file"]).name))
    return shapes


def stroke_pairs(data_root: Path, cases: int, size: int, seed: int = 0) -> list[dict]:
    """One dict per case: axial ``maps`` (n, size, size) int and ``images`` (n, size, size)
    T1, the lesion's slices plus as many lesion-free brain slices, and the case record."""
    from SynthLesionLib import LesionConfig, synthesize_lesions

    from SynthTranslateLib.datasets import slices

    t1, tissue, brain, geometry = _tissue_map(data_root)
    shapes = _lesion_shapes(data_root, cases)
    config = LesionConfig(preset="mr-brain", size_class="medium", lesion_type="hypo", mass_effect=0.0)
    _, tissue_maps = slices(t1, size, tissue)  # one anatomy: the lesion-free maps are the same for every case
    rng = np.random.default_rng(seed)
    out = []
    for case in range(cases):
        result = synthesize_lesions(t1, brain, geometry, config, seed=seed * 1000 + case,
                                    shape_templates=[shapes[case % len(shapes)]])
        labels = tissue.copy()
        labels[result.lesion_labels > 0] = LESION
        images, maps = slices(result.image, size, labels)
        with_lesion = np.flatnonzero((maps == LESION).any(axis=(1, 2)))
        others = np.flatnonzero(~(maps == LESION).any(axis=(1, 2)) & ((maps >= 2).mean(axis=(1, 2)) > 0.1))
        chosen = np.concatenate([with_lesion, rng.choice(others, min(len(with_lesion), len(others)), replace=False)])
        out.append({"maps": maps[chosen], "tissue_maps": tissue_maps[chosen], "images": images[chosen],
                    "lesion_slices": len(with_lesion),
                    "record": result.records[0]})
    return out


def _lesion_contrast(image: np.ndarray, lesion: np.ndarray) -> float:
    ring = ndimage.binary_dilation(lesion, iterations=3) & ~lesion
    return float(image[lesion].mean() - image[ring].mean())


def judge(model, cases: list[dict]) -> dict:
    """Held-out cases through the model: fidelity, lesion contrast and label control."""
    from SynthEvaluateLib.metrics.image import image_metrics

    from SynthTranslateLib.apply import translate_volume

    psnr, ssim, contrast_generated, contrast_target, inside, outside = [], [], [], [], [], []
    for case in cases:
        generated = translate_volume(model, condition=case["maps"])
        lesion = case["maps"] == LESION
        healthy = translate_volume(model, condition=case["tissue_maps"])  # the same map, lesion label removed
        for k in range(len(generated)):
            head = case["maps"][k] > 0
            metrics = image_metrics(generated[k], case["images"][k], mask=head, data_range=255.0)
            psnr.append(metrics["psnr_db"])
            ssim.append(metrics["ssim"])
            if lesion[k].sum() >= 4:
                contrast_generated.append(_lesion_contrast(generated[k], lesion[k]))
                contrast_target.append(_lesion_contrast(case["images"][k], lesion[k]))
                change = np.abs(generated[k] - healthy[k])
                inside.append(change[lesion[k]].mean())
                outside.append(change[head & ~ndimage.binary_dilation(lesion[k], iterations=3)].mean())

    def summary(values):
        return {"median": round(float(np.median(values)), 3),
                "quartiles": np.percentile(values, [25, 75]).round(3).tolist()}

    return {"slices": len(psnr), "lesion_slices": len(inside), "psnr_db_in_head": summary(psnr),
            "ssim_in_head": summary(ssim), "lesion_contrast_generated": summary(contrast_generated),
            "lesion_contrast_target": summary(contrast_target),
            "label_control_change_in_lesion": summary(inside), "label_control_change_elsewhere": summary(outside)}


def validate_spade(data_root: Path, out: Path, minutes: float, cases: int = 24, held_out: int = 4,
                   size: int = 64) -> dict:
    from MedSynthCommonLib.imageio import write_png

    from SynthTranslateLib.apply import translate_volume
    from SynthTranslateLib.config import TranslatorConfig
    from SynthTranslateLib.data import BatchSampler, Normalizer, one_hot_labels
    from SynthTranslateLib.model_dir import load_model
    from SynthTranslateLib.training import train_translator

    started = time.perf_counter()
    pairs = stroke_pairs(data_root, cases, size)
    train, test = pairs[:-held_out], pairs[-held_out:]
    maps = np.concatenate([c["maps"] for c in train])
    images = np.concatenate([c["images"] for c in train])
    prepared_s = time.perf_counter() - started
    normalizer = Normalizer((0.0, 255.0))
    config = TranslatorConfig(model="spade", image_size=size, labels=LABELS, features=32, batch_size=16)
    sampler = BatchSampler("paired", 16, 0, source=one_hot_labels(maps, LABELS), target=normalizer.forward(images))
    report = {"cases": cases, "held_out_cases": held_out, "training_slices": len(maps),
              "lesion_diameters_mm": [round(c["record"].equivalent_diameter_mm, 1) for c in pairs],
              "data_preparation_s": round(prepared_s, 1)}
    for name, budget in (("before", None), ("after", minutes * 60)):
        deadline = None if budget is None else time.perf_counter() + budget
        try:
            train_translator(config, sampler, normalizer, 1 if budget is None else 100_000, out / f"spade_{name}", seed=0,
                             training_data={"training_slices": len(maps), "cases": cases - held_out},
                             sample_every=250, checkpoint_every=250,
                             should_stop=None if deadline is None else (lambda: time.perf_counter() > deadline))
        except InterruptedError:
            pass
        model = load_model(out / f"spade_{name}")
        report[name] = {"iterations": model.card["iterations"], **judge(model, test)}
    # picture: label map | generated | target, for the held-out lesion slices
    rows = []
    for case in test:
        k = int(np.argmax((case["maps"] == LESION).sum(axis=(1, 2))))
        generated = translate_volume(model, condition=case["maps"][k])
        rows.append(np.concatenate([case["maps"][k] * (255.0 / LESION), generated, case["images"][k]], axis=1))
    grid = np.clip(np.concatenate(rows, axis=0), 0, 255).astype(np.uint8)
    write_png(out / "spade_stroke_heldout.png", np.repeat(grid[..., None], 3, axis=2))
    report["picture"] = str(out / "spade_stroke_heldout.png")
    return report
