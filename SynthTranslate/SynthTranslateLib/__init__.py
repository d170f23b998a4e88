"""SynthTranslateLib: GAN image-to-image translators (pix2pix, SPADE, CycleGAN, StarGAN,
MI-GAN, lesion-mask GAN).  Not implemented yet: this package is empty on purpose, and the
module's panel says so."""
