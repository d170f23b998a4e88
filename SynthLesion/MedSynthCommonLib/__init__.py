"""MedSynthCommonLib: the ground floor of MedSynth, the plumbing every module uses.

Layers import one way: SynthEvaluateLib -> SynthTranslateLib -> SynthLesionLib ->
MedSynthCommonLib.  Nothing here imports a module above it.

May import: the standard library and third-party packages (numpy, SimpleITK, VTK, tqdm,
threadpoolctl; torch, dask and slicer only inside the functions that need them); nothing of
SynthLesionLib, SynthTranslateLib or SynthEvaluateLib.

- ``errors``: the exceptions shown to users (``MedSynthInputError``, ``MedSynthOutputError``);
- ``geometry``, ``imageio``, ``integrity``: image grids in RAS, reading/writing images, damaged files refused;
- ``storage``: outputs whole or absent, paths that never collide or escape, folder locks;
- ``finished_work``: the finished parts of a long job, kept so that a killed run resumes;
- ``tables``: CSV case lists and label tables;
- ``mrml``: MRML nodes <-> arrays (Qt-free);
- ``devices``: torch device and precision choice;
- ``background``, ``processes``, ``progress``: long jobs (background processes, workers, progress bars);
- ``dependencies``: packages installed on demand with consent;
- ``options``: option records read back from JSON;
- ``cli``: the ``medsynth`` command, assembled from the modules' registered subcommands;
- ``widgets``: the lifecycle the three Slicer module widgets share (used only inside Slicer).
"""

#: bumped whenever what a seed makes changes, however little (``docs/changes.md``): a record, a
#: build-db manifest, and ``--from-record`` check it
__version__ = "0.3.0"
