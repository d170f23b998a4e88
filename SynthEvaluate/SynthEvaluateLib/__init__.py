"""SynthEvaluateLib: image metrics, GAN-train/GAN-test, augmentation studies and reader
studies.  Not implemented yet: this package is empty on purpose, and the module's panel says so."""
