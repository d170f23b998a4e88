"""Sample data for the Sample Data module: a small real CT with its liver segmentation.

The files are the TotalSegmentator example case (Apache-2.0), a 3 mm abdominal CT and its liver
mask (an AI prediction, not a manual one), published as release assets of the MedSynth
repository; Slicer downloads them once and checks each against its SHA-256.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

RELEASE = "https://github.com/medsynth/MedSynth/releases/download/sample-data-v1"


@dataclass(frozen=True)
class SampleFile:
    file_name: str
    sha256: str
    node_name: str
    load_type: str  # Slicer file type: "VolumeFile", "SegmentationFile"

    @property
    def uri(self) -> str:
        return f"{RELEASE}/{self.file_name}"

    @property
    def checksum(self) -> str:
        """In the form the Sample Data module expects."""
        return f"SHA256:{self.sha256}"


SAMPLES: dict[str, tuple[SampleFile, ...]] = {
    "MedSynthAbdomenCT": (
        SampleFile("MedSynthAbdomenCT.nii.gz", "7811475c3e61c4310c51b56998b365ef5d561919388ecb89839f3cf119389e8c",
                   "MedSynthAbdomenCT", "VolumeFile"),
        SampleFile("MedSynthAbdomenCT_liver.nii.gz", "ecdf1159ee9713a58a25232664743d800a95d4cf794afa319ada213080ecd75c",
                   "MedSynthAbdomenCT liver", "SegmentationFile"),
    ),
}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(path: str | Path, sample: SampleFile) -> bool:
    """Whether a local file is the sample file (by content)."""
    return Path(path).is_file() and file_sha256(path) == sample.sha256


def register(sample_data_logic, thumbnail: str | None = None, category: str = "MedSynth") -> None:
    """Register every sample with Slicer's ``SampleData.SampleDataLogic`` (passed in)."""
    for name, files in SAMPLES.items():
        sample_data_logic.registerCustomSampleDataSource(
            category=category, sampleName=name, thumbnailFileName=thumbnail,
            uris=[f.uri for f in files], fileNames=[f.file_name for f in files],
            nodeNames=[f.node_name for f in files], checksums=[f.checksum for f in files],
            loadFileType=[f.load_type for f in files])
