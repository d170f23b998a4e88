"""``medsynth bench segment-study``: the segmenter recipe's training speed against a plain MONAI
loop over the same cached cases, measured in the same run.

Cases: CT phantoms of 512x512x100 at 0.8 x 0.8 x 2.5 mm with SynthLesion lesions in the liver
(the size of the real scans users bring).  The baseline is the loop a MONAI user writes by
hand: the same UNet, loss, optimiser, batch and ``RandCropByPosNegLabeld`` on the same prepared
cases (cut to the liver, indexed once), without anything of the recipe's own; the recipe is
``train_segmenter``.  Prints iterations per second of both and their ratio (and of the recipe
with bf16 autocast, to see whether this CPU gains from it, and with its batches made ahead in a
background thread), the time to prepare
a case, and (``--study``) the wall time of a 3-arm x 2-seed study on 5 such CTs.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np


def _cases(count: int, seed: int = 0):
    from SynthLesionLib import LesionConfig, make_ct_phantom, synthesize_lesions

    cases = []
    for n in range(count):
        phantom = make_ct_phantom(shape=(100, 512, 512), spacing=(0.8, 0.8, 2.5), seed=seed + n)
        liver = phantom.organ_mask("liver")
        result = synthesize_lesions(phantom.image, liver, phantom.geometry,
                                    LesionConfig(size_class="mix", count=3, lesion_type="hypo"), 100 + n)
        cases.append((phantom, liver, result))
    return cases


def _plain_monai_loop(prepared: list[dict], recipe, iterations: int, seed: int) -> float:
    """Iterations per second of the hand-written MONAI loop on the same prepared cases."""
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet
    from monai.transforms import RandCropByPosNegLabeld

    torch.manual_seed(seed)
    model = UNet(2, 1, 2, recipe.channels, (2,) * (len(recipe.channels) - 1), num_res_units=recipe.num_res_units)
    optimiser = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    crop = RandCropByPosNegLabeld(("image", "label"), "label", (1, *recipe.patch_size), pos=0.5, neg=0.5,
                                  num_samples=1, fg_indices_key="fg", bg_indices_key="bg")
    crop.set_random_state(seed)
    rng = np.random.default_rng(seed)
    started = None
    for iteration in range(iterations + 5):
        if iteration == 5:  # the first steps allocate
            started = time.perf_counter()
        patches = [crop(prepared[c])[0] for c in rng.integers(len(prepared), size=recipe.batch_size)]
        x = torch.stack([torch.as_tensor(np.asarray(p["image"]))[:, 0] for p in patches])
        y = torch.stack([torch.as_tensor(np.asarray(p["label"]))[:, 0] for p in patches]).long()
        loss = loss_function(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return iterations / (time.perf_counter() - started)


def bench_segment_study(iterations: int = 60, study: bool = False) -> dict:
    from ..recipes.segmenter import SegmenterRecipe, prepare_case, train_segmenter

    made = _cases(5)
    recipe = SegmenterRecipe(iterations=iterations + 5)
    started = time.perf_counter()
    prepared = [prepare_case(r.image, r.lesion_labels > 0, liver, recipe, p.geometry.spacing_kji)
                for p, liver, r in made]
    prepare_s = (time.perf_counter() - started) / len(made)
    baseline = _plain_monai_loop(prepared, recipe, iterations, seed=0)
    def recipe_speed(precision: str, prefetch: int = 0) -> float:
        model = train_segmenter([r.image for _, _, r in made], [r.lesion_labels > 0 for _, _, r in made],
                                dataclasses.replace(recipe, precision=precision, prefetch_batches=prefetch), seed=0,
                                organs=[liver for _, liver, _ in made], spacings=[p.geometry.spacing_kji for p, _, _ in made])
        history = model.history  # logged every 10 iterations: time the steady part
        return (history[-1]["iteration"] - history[0]["iteration"]) / (history[-1]["seconds"] - history[0]["seconds"])

    ours, bf16, ahead = recipe_speed("fp32"), recipe_speed("bf16"), recipe_speed("fp32", prefetch=2)
    result = {"cases": "5 CT phantoms 512x512x100 at 0.8x0.8x2.5 mm, 3 lesions each, liver",
              "recipe": {"patch": list(recipe.patch_size), "batch": recipe.batch_size, "channels": list(recipe.channels)},
              "prepare_case_s": round(prepare_s, 3),
              "iterations_per_s": {"plain MONAI loop": round(baseline, 2), "recipe": round(ours, 2),
                                   "recipe, bf16 autocast": round(bf16, 2),
                                   "recipe, batches made 2 ahead in a thread": round(ahead, 2)},
              "recipe_to_plain_ratio": round(ours / baseline, 3), "bf16_to_fp32_ratio": round(bf16 / ours, 3),
              "made_ahead_to_in_loop_ratio": round(ahead / ours, 3)}
    if study:
        from ..studies.segment_study import AnnotatedCase, HealthyCase, segment_study

        real = [AnnotatedCase(r.image, r.lesion_labels > 0, p.geometry, r.organ_mask > 0) for p, _, r in made[:2]]
        test = [AnnotatedCase(r.image, r.lesion_labels > 0, p.geometry, r.organ_mask > 0) for p, _, r in made[2:]]
        healthy = [HealthyCase(p.image, liver, p.geometry) for p, liver, _ in made[:2]]
        started = time.perf_counter()
        segment_study(real, healthy, test, SegmenterRecipe(), seeds=(0, 1), arms=("real", "on-the-fly",
                                                                                  "real + on-the-fly"))
        result["study_3_arms_2_seeds_default_iterations_s"] = round(time.perf_counter() - started, 1)
    return result
