"""What defines a translator: architecture, domains, normalisation, losses, optimisers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from MedSynthCommonLib.options import check_known_options
from MedSynthCommonLib.errors import MedSynthInputError

MODELS = ("pix2pix", "spade", "cyclegan", "stargan", "migan", "maskgan")


@dataclass
class TranslatorConfig:
    """Options of a translator; saved in its model card, so inference uses the same values.

    Intensities: clipped to ``window`` (image units, e.g. HU; None = 1st-99th percentile of
    the training data, then fixed) and mapped to [-1, 1].
    """

    model: str = "pix2pix"
    image_size: int = 64
    domains: list[str] = field(default_factory=list)  # stargan/migan: domain names; cyclegan: [A, B]
    key_domain: str | None = None  # migan: the under-represented disease class
    labels: list[int] = field(default_factory=list)  # spade: label values of the condition maps
    window: tuple[float, float] | None = None
    features: int = 32
    batch_size: int = 16
    lr_generator: float = 2e-4
    lr_discriminator: float = 4e-4
    betas: tuple[float, float] = (0.5, 0.999)
    spectral_norm: bool = False
    lambda_l1: float = 100.0
    lambda_cycle: float = 10.0
    lambda_identity: float = 5.0
    pool_size: int = 50
    lambda_gp: float = 10.0
    lambda_cls: float = 1.0
    lambda_rec: float = 10.0
    n_critic: int = 5
    lambda_attention: float = 0.1  # migan: keeps the attention mask sparse
    lambda_key: float = 2.0  # migan: extra weight of the key domain's classification loss
    lambda_feature_matching: float = 10.0  # spade
    latent: int = 64  # maskgan
    spatial_dims: int = 2  # maskgan: 2-D slices or 3-D patches
    slice_axis: int = 0  # volumes are cut into 2-D slices along this array axis ([k, j, i]), in training and inference

    def validate(self) -> "TranslatorConfig":
        if self.model not in MODELS:
            raise MedSynthInputError(f"Unknown model {self.model!r}; choose one of {', '.join(MODELS)}.")
        if self.slice_axis not in (0, 1, 2):
            raise MedSynthInputError(f"slice_axis must be 0, 1 or 2 (an axis of a [k, j, i] volume), got {self.slice_axis}.")
        if self.image_size % 8:
            raise MedSynthInputError(f"image_size must be a multiple of 8, got {self.image_size}.")
        minimum = {"pix2pix": 32, "cyclegan": 32, "spade": 64}.get(self.model, 16)
        if self.image_size < minimum:
            raise MedSynthInputError(
                f"{self.model}'s discriminator needs images of at least {minimum} px; image_size is {self.image_size}.")
        if self.model in ("stargan", "migan") and len(self.domains) < 2:
            raise MedSynthInputError(f"{self.model} needs at least two domains; got {self.domains}.")
        if self.model == "migan" and self.key_domain not in self.domains:
            raise MedSynthInputError(f"MI-GAN's key domain {self.key_domain!r} must be one of the domains {self.domains}.")
        if self.model == "cyclegan" and len(self.domains) != 2:
            raise MedSynthInputError(f"CycleGAN translates between exactly two domains; got {self.domains}.")
        if self.model == "spade" and len(self.labels) < 2:
            raise MedSynthInputError("SPADE needs the list of label values of its condition maps (at least two).")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TranslatorConfig":
        check_known_options(cls, data, "model card options")
        values = dict(data)
        for key in ("window", "betas"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)
