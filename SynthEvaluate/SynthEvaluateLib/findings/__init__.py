"""What is there, where, and what to say, with one findings model (``recipes.findings_model``)
for both: multi-label findings on 2-D images, located in image regions (``multilabel_2d``), and
structured 3-D CT findings, located in anatomy: the scans and the box a model reads
(``scans``), scans with exact synthetic findings (``synthetic``), the study that trains and
judges a model (``findings_study``, with ``findings_dataset`` and ``ct_findings_cases``),
thresholds chosen on the user's real scans (``calibration``), scans unlike the training scans
(``familiarity``), a scan's called findings and those its image bears out (``calls``,
``density``), locations in anatomy (``anatomy``), rule-based report sentences
(``report_rules``) and the reading queue (``triage``).

May import: ``metrics``, ``recipes``, SynthLesionLib, MedSynthCommonLib.
"""
