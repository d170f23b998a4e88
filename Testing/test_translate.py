"""SynthTranslate: training that learns, exact resume, safe model folders, inference."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from SynthLesionLib import MedSynthInputError  # noqa: E402
from MedSynthCommonLib.devices import Accelerator, resolve_accelerator  # noqa: E402
from SynthTranslateLib.apply import sample_masks, translate_volume  # noqa: E402
from SynthTranslateLib.config import TranslatorConfig  # noqa: E402
from SynthTranslateLib.data import BatchSampler, Normalizer  # noqa: E402
from SynthTranslateLib.model_dir import load_model, weights_path  # noqa: E402
from SynthTranslateLib.training import load_checkpoint, train_translator  # noqa: E402


def _smooth_images(n, size, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] / size
    images = []
    for _ in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        images.append(np.sin(3 * a * x + 2 * b * y + c) * 400 + 100)  # CT-like values
    return np.array(images, np.float32)


def _paired(size=32, n=48, seed=0):
    """An easily learnable paired mapping: the target is the negated source."""
    source = _smooth_images(n, size, seed)
    normalizer = Normalizer((-300, 500))
    return normalizer, normalizer.forward(source), normalizer.forward(200 - source)


def _l1(model, normalizer, source, target):
    out = translate_volume(model, normalizer.inverse(source))
    return float(np.mean(np.abs(normalizer.forward(out) - target)))


def test_pix2pix_learns_an_easy_mapping(tmp_path):
    normalizer, source, target = _paired()
    config = TranslatorConfig(model="pix2pix", image_size=32, features=8, batch_size=8, lr_generator=1e-3,
                              lr_discriminator=2e-3)
    sampler = BatchSampler("paired", 8, seed=0, source=source, target=target)
    train_translator(config, sampler, normalizer, 1, tmp_path / "before", seed=0)
    train_translator(config, BatchSampler("paired", 8, seed=0, source=source, target=target), normalizer, 300,
                     tmp_path / "after", seed=0, sample_every=150)
    test_normalizer, test_source, test_target = _paired(seed=1)
    before = _l1(load_model(tmp_path / "before"), normalizer, test_source, test_target)
    after = _l1(load_model(tmp_path / "after"), normalizer, test_source, test_target)
    assert after < 0.5 * before, (before, after)
    assert (tmp_path / "after" / "samples_000300.png").exists() and (tmp_path / "after" / "losses.csv").exists()
    card = json.loads((tmp_path / "after" / "card.json").read_text())
    assert card["iterations"] == 300 and card["config"]["model"] == "pix2pix" and card["window"] == [-300.0, 500.0]


def _tiny_setup(model):
    """(config, sampler kind, arrays, normaliser): the smallest training set each model takes."""
    size = {"pix2pix": 32, "cyclegan": 32, "spade": 64, "pix2pixhd": 128}.get(model, 16)  # discriminators' minimum sizes
    normalizer, source, target = _paired(size=size, n=16)
    if model in ("stargan", "migan"):
        config = TranslatorConfig(model=model, image_size=16, features=4, batch_size=4, domains=["a", "b", "c"],
                                  key_domain="c", n_critic=2)
        return config, "domains", {"image": source, "domain": np.arange(16) % 3}, normalizer
    if model == "cyclegan":
        config = TranslatorConfig(model=model, image_size=32, features=4, batch_size=4, domains=["a", "b"], pool_size=3)
        return config, "unpaired", {"a": source, "b": target}, normalizer
    if model == "maskgan":
        config = TranslatorConfig(model=model, image_size=16, features=4, batch_size=4, latent=8, n_critic=2)
        return config, "masks", {"mask": (source > 0).astype(np.float32)}, normalizer
    if model == "stylegan":
        config = TranslatorConfig(model=model, image_size=16, features=4, batch_size=4, domains=["a", "b", "c"],
                                  latent=8, w_dim=16, mapping_layers=2, r1_every=2, ada_kimg=0.01)  # p moves at once
        return config, "domains", {"image": source, "domain": np.arange(16) % 3}, normalizer
    if model in ("spade", "pix2pixhd"):
        config = TranslatorConfig(model=model, image_size=size, features=4, batch_size=4, labels=[0, 1])
        labels = (source > 0).astype(int)
        onehot = np.stack([(labels == v) for v in (0, 1)], 1).astype(np.float32) * 2 - 1
        return config, "paired", {"source": onehot, "target": target}, normalizer
    return TranslatorConfig(model=model, image_size=32, features=4, batch_size=4), "paired", \
        {"source": source, "target": target}, normalizer


# fp32 on the CPU, and the GPU code paths that a CPU can run: autocast to fp16 with loss
# scaling (GradScaler, gradient penalty on scaled outputs) or bf16, in channels-last memory
ACCELERATORS = {"fp32": Accelerator(), "fp16-channels-last": Accelerator("cpu", "fp16", True),
                "bf16": Accelerator("cpu", "bf16", False)}


@pytest.mark.parametrize("precision", list(ACCELERATORS))
@pytest.mark.parametrize("model", ["pix2pix", "stargan", "migan", "cyclegan", "maskgan", "spade", "stylegan",
                                   "pix2pixhd"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path, model, precision):
    config, kind, arrays, normalizer = _tiny_setup(model)
    accelerator = ACCELERATORS[precision]

    def run(out, iterations):
        return train_translator(config, BatchSampler(kind, 4, seed=3, **arrays), normalizer, iterations, out, seed=5,
                                sample_every=1000, checkpoint_every=2, accelerator=accelerator)

    first = run(tmp_path / "first", 2)
    run(tmp_path / "straight", 6)
    run(tmp_path / "interrupted", 4)
    last = run(tmp_path / "interrupted", 6)  # resumes from step 4
    a = torch.load(weights_path(tmp_path / "straight"), weights_only=True)
    b = torch.load(weights_path(tmp_path / "interrupted"), weights_only=True)
    early = torch.load(weights_path(tmp_path / "first"), weights_only=True)
    for name in a:
        for key in a[name]:
            assert torch.equal(a[name][key], b[name][key]), (name, key)
            assert a[name][key].dtype == early[name][key].dtype  # weights stay in full precision
    # training moved the weights (fp16 skips the first steps while its loss scale settles, so
    # the generators of the n_critic models may not have moved yet; all modules are compared)
    moved = [load_checkpoint(tmp_path / run)[1]["modules"] for run in ("first", "straight")]
    assert any(not torch.equal(moved[0][n][k], moved[1][n][k]) for n in moved[0] for k in moved[0][n])
    assert all(np.isfinite(v) for v in last["last_losses"].values())
    assert first["precision"] == accelerator.precision
    card = json.loads((tmp_path / "straight" / "card.json").read_text())
    assert card["trained_on"] == {**accelerator.describe(), "world_size": 1}
    # loss scaling is on (and checkpointed) under fp16 only; a disabled scaler saves {}
    scalers = load_checkpoint(tmp_path / "straight")[1]["scalers"]
    assert all(bool(s) == precision.startswith("fp16") for s in scalers.values()) and scalers


def test_mixed_precision_inference_matches_full_precision(tmp_path):
    config, kind, arrays, normalizer = _tiny_setup("pix2pix")
    train_translator(config, BatchSampler(kind, 4, seed=0, **arrays), normalizer, 3, tmp_path, seed=0)
    volume = normalizer.inverse(arrays["source"][:3])[:, :30, :27]  # odd sizes: padded, cropped
    full = translate_volume(load_model(tmp_path), volume)
    for accelerator in ACCELERATORS.values():
        mixed = translate_volume(load_model(tmp_path, accelerator), volume)
        assert mixed.shape == volume.shape and mixed.dtype == np.float32
        assert np.abs(normalizer.forward(mixed) - normalizer.forward(full)).mean() < 0.02


def test_volumes_are_translated_along_the_models_slice_axis(tmp_path):
    config, kind, arrays, normalizer = _tiny_setup("pix2pix")
    config.slice_axis = 1
    train_translator(config, BatchSampler(kind, 4, seed=0, **arrays), normalizer, 2, tmp_path, seed=0)
    model = load_model(tmp_path)
    assert model.config.slice_axis == 1
    volume = normalizer.inverse(np.random.default_rng(0).uniform(-1, 1, (20, 3, 24)).astype(np.float32))
    out = translate_volume(model, volume)
    assert out.shape == volume.shape
    for j in range(3):  # each [k, i] slice is translated on its own, as a 2-D image would be
        np.testing.assert_allclose(out[:, j, :], translate_volume(model, volume[:, j, :]), atol=1e-3)
    with pytest.raises(MedSynthInputError, match="slice_axis must be 0, 1 or 2"):
        TranslatorConfig(slice_axis=3).validate()


def test_devices_this_machine_lacks_are_refused_clearly():
    if not torch.cuda.is_available():
        with pytest.raises(MedSynthInputError, match="sees no CUDA GPU; choose device cpu"):
            resolve_accelerator("cuda")
        assert resolve_accelerator("auto") == Accelerator("cpu", "fp32", False)
    with pytest.raises(MedSynthInputError, match="Unknown device 'gpu'"):
        resolve_accelerator("gpu")
    with pytest.raises(MedSynthInputError, match="Unknown precision 'fp8'"):
        resolve_accelerator("cpu", "fp8")
    assert resolve_accelerator("cpu", "bf16", True) == Accelerator("cpu", "bf16", True)


def test_altered_weights_wrong_card_and_foreign_files_are_refused(tmp_path):
    normalizer, source, target = _paired(size=32, n=8)
    config = TranslatorConfig(model="pix2pix", image_size=32, features=4, batch_size=4)
    folder = tmp_path / "model"
    train_translator(config, BatchSampler("paired", 4, seed=0, source=source, target=target), normalizer, 2, folder)
    load_model(folder)
    weights = weights_path(folder).read_bytes()
    weights_path(folder).write_bytes(weights[:-10] + b"0123456789")
    with pytest.raises(MedSynthInputError, match="does not match its model card"):
        load_model(folder)
    weights_path(folder).write_bytes(weights)
    card = json.loads((folder / "card.json").read_text())
    card["config"]["features"] = 8  # a card describing another architecture
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(MedSynthInputError, match="not those of a pix2pix"):
        load_model(folder)
    (folder / "card.json").write_text("{}")
    with pytest.raises(MedSynthInputError, match="not a MedSynth translator card"):
        load_model(folder)
    with pytest.raises(MedSynthInputError, match="not a MedSynth model folder"):
        load_model(tmp_path)


def test_inference_takes_any_slice_size_at_the_models_scale_and_checks_domains(tmp_path):
    normalizer, source, _ = _paired(size=16, n=8)
    config = TranslatorConfig(model="stargan", image_size=16, features=4, batch_size=4, domains=["normal", "viral"], n_critic=1)
    folder = tmp_path / "star"
    train_translator(config, BatchSampler("domains", 4, seed=0, image=source, domain=np.arange(8) % 2), normalizer, 2, folder)
    model = load_model(folder)
    volume = np.random.default_rng(0).normal(100, 50, (3, 37, 45)).astype(np.float32)  # not multiples of 8
    out = translate_volume(model, volume, "viral")
    assert out.shape == volume.shape and out.dtype == np.float32
    assert out.min() >= -300 - 1e-3 and out.max() <= 500 + 1e-3  # inside the card's window
    # a large slice is seen as the model saw its training images (resized to 16 px): its
    # change is the upsampled change of the small slice, and the native detail is kept
    smooth = np.kron(source[:2], np.ones((8, 8)))
    noise = np.random.default_rng(1).normal(0, 0.05, smooth.shape)
    small = normalizer.inverse(source[:2])
    change_small = normalizer.forward(translate_volume(model, small, "viral")) - source[:2]
    change_big = normalizer.forward(translate_volume(model, normalizer.inverse(smooth), "viral")) - smooth
    block_means = change_big.reshape(2, 16, 8, 16, 8).mean(axis=(2, 4))
    assert np.abs(block_means - change_small).mean() < 0.25 * np.abs(change_small).mean()
    noisy = normalizer.forward(translate_volume(model, normalizer.inverse(smooth + noise), "viral"))
    clean = normalizer.forward(translate_volume(model, normalizer.inverse(smooth), "viral"))
    # fine texture passes through (upsampling the 16-px output instead would give about 0; what
    # is not 1 is the generator's own response to the noise left after downsampling)
    assert np.corrcoef((noisy - clean).ravel(), noise.ravel())[0, 1] > 0.8
    with pytest.raises(MedSynthInputError, match="Unknown target domain 'bacterial'"):
        translate_volume(model, volume, "bacterial")
    with pytest.raises(MedSynthInputError, match="Choose a target domain"):
        translate_volume(model, volume)


def test_spade_refuses_unknown_labels_and_maskgan_samples_masks(tmp_path):
    normalizer, source, target = _paired(size=64, n=8)
    labels = (source > 0).astype(int)
    config = TranslatorConfig(model="spade", image_size=64, features=4, batch_size=4, labels=[0, 1])
    onehot = np.stack([(labels == v) for v in (0, 1)], 1).astype(np.float32) * 2 - 1
    train_translator(config, BatchSampler("paired", 4, seed=0, source=onehot, target=target), normalizer, 2, tmp_path / "spade")
    model = load_model(tmp_path / "spade")
    assert translate_volume(model, condition=labels[:2]).shape == (2, 64, 64)
    with pytest.raises(MedSynthInputError, match=r"Label values \[2\] are not in the model's label set"):
        translate_volume(model, condition=labels[:2] * 2)
    masks = (source[:, :16, :16] > 0).astype(np.float32)
    mconfig = TranslatorConfig(model="maskgan", image_size=16, features=4, batch_size=4, latent=8)
    train_translator(mconfig, BatchSampler("masks", 4, seed=0, mask=masks), normalizer, 2, tmp_path / "masks")
    sampled = sample_masks(load_model(tmp_path / "masks"), 5, seed=1, clean=False)
    assert sampled.shape == (5, 16, 16) and set(np.unique(sampled)) <= {0, 1}
    again = sample_masks(load_model(tmp_path / "masks"), 5, seed=1, clean=False)
    assert np.array_equal(sampled, again)
    from scipy import ndimage

    cleaned = sample_masks(load_model(tmp_path / "masks"), 5, seed=1)
    assert len(cleaned) <= 5 and all(ndimage.label(m)[1] == 1 for m in cleaned)  # one blob each, empties dropped


def test_bad_training_input():
    with pytest.raises(MedSynthInputError, match="Unknown model"):
        TranslatorConfig(model="diffusion").validate()
    with pytest.raises(MedSynthInputError, match="at least 32 px"):
        TranslatorConfig(model="pix2pix", image_size=16).validate()
    with pytest.raises(MedSynthInputError, match="key domain"):
        TranslatorConfig(model="migan", domains=["a", "b"], key_domain="c").validate()
    with pytest.raises(MedSynthInputError, match="binary masks"):
        BatchSampler("masks", 2, 0, mask=np.full((2, 8, 8), 0.5))


def test_translate_commands_train_apply_and_keep_geometry(tmp_path, capsys):
    import SimpleITK as sitk

    from SynthLesionLib import make_ct_phantom
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import read_volume, write_volume

    phantom = make_ct_phantom(shape=(12, 64, 64), spacing=(3.0, 3.0, 5.0), seed=2)
    write_volume(tmp_path / "ct.nii.gz", phantom.image, phantom.geometry)
    write_volume(tmp_path / "organs.nii.gz", phantom.organs, phantom.geometry)
    assert main(["translate", "train", "--model", "pix2pix", "--image", str(tmp_path / "ct.nii.gz"),
                 "--condition", str(tmp_path / "organs.nii.gz"), "--image-size", "32", "--features", "4", "--batch-size", "4",
                 "--iterations", "3", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["translate", "apply", "--model-dir", str(tmp_path / "run"), "--condition", str(tmp_path / "organs.nii.gz"),
                 "--out", str(tmp_path / "synthetic.nii.gz")]) == 0
    out, geometry = read_volume(tmp_path / "synthetic.nii.gz")
    assert out.shape == phantom.image.shape and geometry.is_close(phantom.geometry, 1e-3)
    reader = sitk.ReadImage(str(tmp_path / "synthetic.nii.gz"))
    assert reader.GetSize() == (64, 64, 12)
    # a label map with a value the model never saw is refused
    write_volume(tmp_path / "odd.nii.gz", (phantom.organs + 9).astype(np.uint8), phantom.geometry)
    assert main(["translate", "apply", "--model-dir", str(tmp_path / "run"), "--condition", str(tmp_path / "odd.nii.gz"),
                 "--out", str(tmp_path / "x.nii.gz")]) == 2
    assert "not in the model's label set" in capsys.readouterr().err


def _write_dicom_series(folder, volume, spacing=(0.7, 0.7, 2.5), series_uid="1.2.826.0.1.3680043.2.1125.1.42"):
    """One DICOM file per slice sharing a series UID, as a scanner writes them (shuffled names)."""
    import SimpleITK as sitk

    folder.mkdir(exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(len(volume)):
        image = sitk.GetImageFromArray(volume[k].astype(np.int16))
        image.SetSpacing(spacing[:2])
        for tag, value in {"0008|0060": "CT", "0020|000d": series_uid + ".0", "0020|000e": series_uid,
                           "0020|0013": str(k + 1), "0020|0032": f"0\\0\\{k * spacing[2]}",
                           "0020|0037": "1\\0\\0\\0\\1\\0", "0008|0018": f"{series_uid}.{k + 1}",
                           "0018|0050": str(spacing[2])}.items():
            image.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-2:]}_{(k * 7) % len(volume):03d}.dcm"))
        writer.Execute(image)


def test_domain_folders_of_volumes_and_dicom_series_are_sliced(tmp_path, capsys):
    from MedSynthCommonLib.geometry import Geometry
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import read_volume, write_volume
    from SynthTranslateLib.datasets import domain_folder

    rng = np.random.default_rng(0)
    healthy = rng.normal(40, 10, (6, 40, 48)).astype(np.float32)
    healthy[0] = 0  # a constant (padding) slice is left out
    diseased = rng.normal(-20, 10, (5, 40, 48)).round().astype(np.float32)
    write_volume(tmp_path / "healthy.nii.gz", healthy, Geometry(spacing=(0.7, 0.7, 2.5)))
    _write_dicom_series(tmp_path / "diseased_dicom", diseased)
    series, _ = read_volume(tmp_path / "diseased_dicom")  # the folder reads as one volume, in slice order
    assert np.array_equal(series, diseased)
    (tmp_path / "labels.csv").write_text("path,label\nhealthy.nii.gz,healthy\ndiseased_dicom,diseased\n")
    images, domains, names, summary, _ = domain_folder(tmp_path, 16)
    assert names == ["diseased", "healthy"] and images.shape == (10, 16, 16)
    assert summary["per_domain"] == {"diseased": 5, "healthy": 5} and summary["files"] == 2
    assert images[domains == 1].mean() > 30 and images[domains == 0].mean() < -10
    assert domain_folder(tmp_path, 16, slices_per_volume=2)[3]["per_domain"] == {"diseased": 2, "healthy": 2}
    assert main(["translate", "train", "--model", "cyclegan", "--data", str(tmp_path), "--image-size", "32", "--features", "4",
                 "--batch-size", "2", "--iterations", "2", "--out", str(tmp_path.parent / f"{tmp_path.name}_run")]) == 0
    card = json.loads((tmp_path.parent / f"{tmp_path.name}_run" / "card.json").read_text())
    assert card["training_data"]["per_domain"] == {"diseased": 5, "healthy": 5}
    _write_dicom_series(tmp_path / "two", diseased[:2])  # a folder mixing two series is refused
    _write_dicom_series(tmp_path / "two", diseased[2:4], series_uid="1.2.826.0.1.3680043.2.1125.1.43")
    with pytest.raises(MedSynthInputError, match="with 2 DICOM series .*give an image file or a folder holding one"):
        read_volume(tmp_path / "two")
    with pytest.raises(MedSynthInputError, match="with no DICOM series"):
        read_volume(tmp_path.parent / f"{tmp_path.name}_run")


def test_empty_data_folder_is_refused(tmp_path, capsys):
    from MedSynthCommonLib.cli import main

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "labels.csv").write_text("path,label\n")
    assert main(["translate", "train", "--model", "stargan", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "has a header but no rows" in capsys.readouterr().err
    if not torch.cuda.is_available():  # a GPU asked for on a machine without one: refused before any data is read
        assert main(["translate", "train", "--model", "stargan", "--data", str(tmp_path / "empty"), "--device", "cuda",
                     "--out", str(tmp_path / "r")]) == 2
        assert "sees no CUDA GPU" in capsys.readouterr().err


def test_translate_volume_node_keeps_geometry_and_input(tmp_path, scene, ct_phantom):
    from MedSynthCommonLib.mrml import array_of, fill_segmentation, geometry_of, output_volume
    from SynthTranslateLib.logic import model_domains, translate_volume_node

    normalizer, source, _ = _paired(size=16, n=8)
    config = TranslatorConfig(model="stargan", image_size=16, features=4, batch_size=4, domains=["arterial", "venous"], n_critic=1)
    train_translator(config, BatchSampler("domains", 4, seed=0, image=source, domain=np.arange(8) % 2), normalizer, 2, tmp_path / "m")
    volume = output_volume(scene, ct_phantom.image, ct_phantom.geometry, "CT")
    before = array_of(volume).copy()
    out = translate_volume_node(tmp_path / "m", volume, "venous")
    assert geometry_of(out).is_close(ct_phantom.geometry, 1e-6) and array_of(out).shape == ct_phantom.image.shape
    assert np.array_equal(array_of(volume), before)
    assert model_domains(tmp_path / "m") == ["arterial", "venous"]
    with pytest.raises(MedSynthInputError, match="also the input"):
        translate_volume_node(tmp_path / "m", volume, "venous", output_volume_node=volume)

    # a label-map model takes a segmentation node as its condition
    labels = (source > 0).astype(int)
    spade = TranslatorConfig(model="spade", image_size=64, features=4, batch_size=2, labels=[0, 1, 2])
    onehot = np.stack([(np.pad(labels, ((0, 0), (0, 48), (0, 48))) == v) for v in (0, 1, 2)], 1).astype(np.float32) * 2 - 1
    train_translator(spade, BatchSampler("paired", 2, seed=0, source=onehot, target=np.zeros((8, 64, 64), np.float32)),
                     normalizer, 1, tmp_path / "s")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "organs")
    fill_segmentation(segmentation, [("liver", ct_phantom.organ_mask("liver"), (1, 0, 0)),
                                     ("spleen", ct_phantom.organ_mask("spleen"), (0, 1, 0))], ct_phantom.geometry, volume)
    synthetic = translate_volume_node(tmp_path / "s", volume, condition_segmentation=segmentation)
    assert array_of(synthetic).shape == ct_phantom.image.shape
    with pytest.raises(MedSynthInputError, match="select a segmentation"):
        translate_volume_node(tmp_path / "s", volume)


def test_cancelled_training_keeps_its_model_and_resumes(tmp_path):
    normalizer, source, target = _paired(size=32, n=8)
    config = TranslatorConfig(model="pix2pix", image_size=32, features=4, batch_size=4)
    calls = iter(range(100))
    stop_after_three = lambda: next(calls) >= 3  # noqa: E731
    with pytest.raises(InterruptedError, match="stopped at step 3"):
        train_translator(config, BatchSampler("paired", 4, 0, source=source, target=target), normalizer, 10,
                         tmp_path / "run", checkpoint_every=100, should_stop=stop_after_three)
    assert load_model(tmp_path / "run").card["iterations"] == 3
    result = train_translator(config, BatchSampler("paired", 4, 0, source=source, target=target), normalizer, 5, tmp_path / "run")
    assert result["iterations"] == 5 and load_model(tmp_path / "run").card["iterations"] == 5


def test_interrupted_writes_leave_a_resumable_or_clearly_refused_checkpoint(tmp_path):
    normalizer, source, target = _paired(size=32, n=8)
    config = TranslatorConfig(model="pix2pix", image_size=32, features=4, batch_size=4)
    folder = tmp_path / "run"

    def sampler():
        return BatchSampler("paired", 4, 0, source=source, target=target)

    train_translator(config, sampler(), normalizer, 2, folder)
    (folder / ".medsynth-partial-999999-ab12cd34-checkpoint-0123456789abcdef.pt").write_bytes(b"half a write")  # a killed write
    assert train_translator(config, sampler(), normalizer, 3, folder)["iterations"] == 3
    checkpoint = folder / json.loads((folder / "checkpoint.json").read_text())["file"]
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated by other means
    with pytest.raises(MedSynthInputError, match="does not match its SHA-256.*delete checkpoint.json"):
        train_translator(config, sampler(), normalizer, 4, folder)
    other = TranslatorConfig(model="pix2pix", image_size=32, features=8, batch_size=4)
    train_translator(config, sampler(), normalizer, 2, tmp_path / "other")
    with pytest.raises(MedSynthInputError, match="cannot be resumed"):
        train_translator(other, sampler(), normalizer, 3, tmp_path / "other")  # options changed since


def test_mask_sampling_and_translation_are_not_confused(tmp_path):
    normalizer, source, target = _paired(size=32, n=8)
    config = TranslatorConfig(model="pix2pix", image_size=32, features=4, batch_size=4)
    train_translator(config, BatchSampler("paired", 4, 0, source=source, target=target), normalizer, 1, tmp_path / "p")
    with pytest.raises(MedSynthInputError, match="Only a mask GAN samples masks"):
        sample_masks(load_model(tmp_path / "p"), 3)


def test_label_values_mean_the_same_in_the_cli_and_in_slicer(tmp_path, scene, ct_phantom, capsys):
    """A SPADE model trained from a label map with gapped values (5 = liver, 7 = spleen, like
    TotalSegmentator's) is applied in Slicer with segments mapped to the same values: by the
    names stored in the card, or by the segments' own label values."""
    from MedSynthCommonLib.cli import main
    from MedSynthCommonLib.imageio import write_volume
    from MedSynthCommonLib.mrml import fill_segmentation, output_volume
    from SynthTranslateLib.logic import segment_label_values, translate_volume_node

    labels = np.zeros(ct_phantom.image.shape, np.int16)
    labels[ct_phantom.organ_mask("liver")] = 5
    labels[ct_phantom.organ_mask("spleen")] = 7
    write_volume(tmp_path / "ct.nii.gz", ct_phantom.image, ct_phantom.geometry)
    write_volume(tmp_path / "labels.nii.gz", labels, ct_phantom.geometry)
    (tmp_path / "names.json").write_text(json.dumps({"liver": 5, "spleen": 7}))
    assert main(["translate", "train", "--model", "spade", "--image", str(tmp_path / "ct.nii.gz"), "--condition",
                 str(tmp_path / "labels.nii.gz"), "--label-names", str(tmp_path / "names.json"), "--only-labelled",
                 "--image-size", "64", "--features", "4", "--batch-size", "2", "--iterations", "1", "--device", "cpu",
                 "--out", str(tmp_path / "m")]) == 0
    card = json.loads((tmp_path / "m" / "card.json").read_text())
    assert card["config"]["labels"] == [0, 5, 7] and card["config"]["label_names"] == {"liver": 5, "spleen": 7}

    volume = output_volume(scene, ct_phantom.image, ct_phantom.geometry, "CT")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "organs")
    fill_segmentation(segmentation, [("spleen", ct_phantom.organ_mask("spleen"), (0, 1, 0)),
                                     ("liver", ct_phantom.organ_mask("liver"), (1, 0, 0))], ct_phantom.geometry, volume)
    assert segment_label_values(segmentation, card["config"]["label_names"]) == {"spleen": 7, "liver": 5}
    assert translate_volume_node(tmp_path / "m", volume, condition_segmentation=segmentation) is not None
    # without names in the card, the segments' own label values decide (order does not)
    for n, value in ((0, 7), (1, 5)):
        segmentation.GetSegmentation().GetNthSegment(n).SetLabelValue(value)
    assert segment_label_values(segmentation) == {"spleen": 7, "liver": 5}
    segmentation.GetSegmentation().GetNthSegment(0).SetName("kidney")
    with pytest.raises(MedSynthInputError, match="'kidney' is not one of the labels"):
        translate_volume_node(tmp_path / "m", volume, condition_segmentation=segmentation)
