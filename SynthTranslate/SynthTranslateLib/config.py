"""What defines a translator: architecture, domains, normalisation, losses, optimisers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from MedSynthCommonLib.options import check_known_options
from MedSynthCommonLib.errors import MedSynthInputError



@dataclass(frozen=True)
class ModelKind:
    """What a kind of translator needs and gives; the one place the CLI, the GUI and the
    engine learn it from (no string lists elsewhere).

    Attributes:
        name: id used in cards, the CLI and the GUI's item data.
        label: readable name for the GUI.
        trains_from: "folder" (images with a label CSV, or NIfTI masks) or "volume" (a volume
            and its label map, from files or scene nodes).
        input: what inference takes: "image", "label map", or "latent" (samples, no input).
        target_domain: inference needs a target domain (multi-domain models).
        min_domains: domains needed in training (0 = none).
        exact_domains: exactly ``min_domains`` domains (CycleGAN's A and B).
        key_domain: training names a key (under-represented) domain.
        features, batch_size: the defaults of ``--features`` and ``--batch-size`` for this model
            (fastgan: measured on 2 CPU cores, the settings that learn in an hour).
    """

    name: str
    label: str
    trains_from: str
    input: str
    target_domain: bool = False
    min_domains: int = 0
    exact_domains: bool = False
    key_domain: bool = False
    features: int = 32
    batch_size: int = 16

    @property
    def new_images(self) -> bool:
        """Samples new images of a chosen class (stylegan, fastgan): ``translate sample``."""
        return self.input == "latent" and self.target_domain


MODEL_KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("pix2pix", "pix2pix: label map or image -> image", "volume", "image"),
    ModelKind("spade", "SPADE: label map -> image", "volume", "label map"),
    ModelKind("pix2pixhd", "pix2pixHD: label map -> high-resolution image, coarse to fine", "volume", "label map"),
    ModelKind("cyclegan", "CycleGAN: two unpaired domains", "folder", "image", target_domain=True, min_domains=2,
              exact_domains=True),
    ModelKind("stargan", "StarGAN: many domains, one generator", "folder", "image", target_domain=True, min_domains=2),
    ModelKind("migan", "MI-GAN: StarGAN + key-domain migration and attention", "folder", "image", target_domain=True,
              min_domains=2, key_domain=True),
    ModelKind("maskgan", "Mask GAN: samples lesion masks", "folder", "latent"),
    ModelKind("stylegan", "StyleGAN2-ADA-style: new images of a chosen class (for a GPU)", "folder", "latent",
              target_domain=True, min_domains=1),
    ModelKind("fastgan", "FastGAN-style: new images of a chosen class, learns on a CPU", "folder", "latent",
              target_domain=True, min_domains=1, features=16, batch_size=32),
)}
MODELS = tuple(MODEL_KINDS)

#: the smallest image_size each model's discriminator takes (others: 16)
MINIMUM_IMAGE_SIZE = {"pix2pix": 32, "cyclegan": 32, "spade": 64, "pix2pixhd": 128}


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
    labels: list[int] = field(default_factory=list)  # spade/pix2pix: label values of the condition maps
    label_names: dict[str, int] = field(default_factory=dict)  # segment name -> label value, when known
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
    latent: int = 64  # maskgan, stylegan: length of z
    attributes: list[str] = field(default_factory=list)  # stylegan: numeric conditions (CSV columns, e.g. age)
    attribute_stats: list[list[float]] = field(default_factory=list)  # stylegan: [mean, std] of each, in training
    w_dim: int = 128  # stylegan: length of the style vector w
    mapping_layers: int = 4  # stylegan: layers of the mapping network (StyleGAN2: 8)
    stylegan_lr: float = 0.002  # stylegan: Adam learning rate of both networks (betas 0, 0.99)
    lambda_r1: float = 1.0  # stylegan: R1 weight gamma (ADA: ~0.1-10, more for larger images)
    r1_every: int = 4  # stylegan: lazy R1, every N steps
    ema_kimg: float = 5.0  # stylegan: half-life of the EMA generator, thousands of images
    ema_rampup: float = 0.05  # stylegan: ... at most this share of the images seen so far
    ada_target: float = 0.6  # stylegan: ADA's target share of reals scored positive
    ada_kimg: float = 100.0  # stylegan: thousands of images for ADA's p to move from 0 to 1
    lambda_mode_seeking: float = 1.0  # fastgan: weight of the mode-seeking (diversity) term
    spatial_dims: int = 2  # maskgan: 2-D slices or 3-D patches
    slice_axis: int = 0  # volumes are cut into 2-D slices along this array axis ([k, j, i]), in training and inference

    @property
    def kind(self) -> ModelKind:
        return MODEL_KINDS[self.model]

    @property
    def conditioned(self) -> bool:
        """Inference takes a label map: SPADE always, pix2pix when trained on label values."""
        return self.kind.input == "label map" or (self.model == "pix2pix" and bool(self.labels))

    def validate(self) -> "TranslatorConfig":
        if self.model not in MODELS:
            raise MedSynthInputError(f"Unknown model {self.model!r}; choose one of {', '.join(MODELS)}.")
        if self.slice_axis not in (0, 1, 2):
            raise MedSynthInputError(f"slice_axis must be 0, 1 or 2 (an axis of a [k, j, i] volume), got {self.slice_axis}.")
        if self.image_size % 8:
            raise MedSynthInputError(f"image_size must be a multiple of 8, got {self.image_size}.")
        minimum = MINIMUM_IMAGE_SIZE.get(self.model, 16)
        if self.image_size < minimum:
            raise MedSynthInputError(
                f"{self.model}'s discriminator needs images of at least {minimum} px; image_size is {self.image_size}.")
        if self.kind.min_domains and len(self.domains) < self.kind.min_domains and not self.kind.exact_domains:
            raise MedSynthInputError(f"{self.model} needs at least {self.kind.min_domains} domain(s) (classes); "
                                     f"got {self.domains}.")
        if self.attributes and (not self.kind.new_images or len(self.attribute_stats) != len(self.attributes)):
            raise MedSynthInputError("Numeric attributes (--condition-column) condition stylegan and fastgan models only, "
                                     "each with its training mean and standard deviation.")
        if self.kind.new_images and (self.image_size & (self.image_size - 1)):
            raise MedSynthInputError(f"{self.model} needs a power-of-two image_size (16, 32, 64, 128 ...); got "
                                     f"{self.image_size}.")
        if self.model == "migan" and self.key_domain not in self.domains:
            raise MedSynthInputError(f"MI-GAN's key domain {self.key_domain!r} must be one of the domains {self.domains}.")
        if self.kind.exact_domains and len(self.domains) != self.kind.min_domains:
            raise MedSynthInputError(f"CycleGAN translates between exactly two domains; got {self.domains}.")
        if self.kind.input == "label map" and len(self.labels) < 2:
            raise MedSynthInputError(f"{self.model} needs the list of label values of its condition maps (at least two).")
        if self.model == "pix2pixhd" and self.image_size % 16:
            raise MedSynthInputError(f"pix2pixhd needs an image_size divisible by 16; got {self.image_size}.")
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
