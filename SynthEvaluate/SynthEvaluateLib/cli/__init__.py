"""``medsynth evaluate ...`` and ``medsynth bench evaluate|segment-study``: options, reading the
user's files, and the protocols run from them (``commands`` registers them all).

May import: every part of SynthEvaluateLib and the floors below; nothing imports it but the CLI.
"""
