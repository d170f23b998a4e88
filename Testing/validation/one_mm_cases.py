"""The 1 mm cases the speed validations share: the real CT of ``abdomen_ct`` (case01, 3 mm)
resampled to 1 mm isotropic (linear; the liver nearest-neighbour), or the 1 mm CT phantom of
``medsynth bench lesion``.  Each returns (image int16 [k, j, i], liver bool, Geometry).
Research helper: it reads the shared data by name, so it does not ship with the extension."""

from __future__ import annotations

from pathlib import Path


def one_mm_case(data: Path):
    import SimpleITK as sitk

    from MedSynthCommonLib.imageio import geometry_from_sitk

    folder = Path(data) / "abdomen_ct"
    image, liver = (sitk.ReadImage(str(folder / f"case01_ct3mm_{part}.nii.gz")) for part in ("image", "liver"))
    size = [int(round(n * s)) for n, s in zip(image.GetSize(), image.GetSpacing())]
    resampled = [sitk.Resample(volume, size, sitk.Transform(), interpolator, volume.GetOrigin(), (1.0, 1.0, 1.0),
                               volume.GetDirection(), 0, volume.GetPixelID())
                 for volume, interpolator in ((image, sitk.sitkLinear), (liver, sitk.sitkNearestNeighbor))]
    return sitk.GetArrayFromImage(resampled[0]), sitk.GetArrayFromImage(resampled[1]) != 0, \
        geometry_from_sitk(resampled[0])


def phantom_case():
    from SynthLesionLib import make_ct_phantom
    from SynthLesionLib.benchmark import GRIDS

    shape, spacing = GRIDS["isotropic_1mm"]
    phantom = make_ct_phantom(shape=shape, spacing=spacing, seed=0)
    return phantom.image, phantom.organ_mask("liver"), phantom.geometry
