# Two entry points for a fresh machine (Python 3.10+ and the package registries):
#   make demo   the lesion pipeline on a built-in CT phantom, no data needed
#   make test   the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
# the CPU build of torch that lies on this project's machines; any torch >= 2.2 works, e.g.
#   make TORCH="torch --extra-index-url https://download.pytorch.org/whl/cpu" test
TORCH  ?= torch==2.13.0

.PHONY: demo test bench bench-real panels package clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) -e ".[test,deep]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/medsynth demo --out demo_output

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/medsynth bench lesion

bench-real: $(STAMP)
	$(BIN)/medsynth bench lesion --image ../shared/data/abdomen_ct/case01_ct3mm_image.nii.gz \
	    --organ-mask ../shared/data/abdomen_ct/case01_ct3mm_liver.nii.gz

panels: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python Testing/panels.py

package:
	../shared/tools/slicer-packaging/package_check.sh ../shared/tools/slicer-packaging/slicer-src . /tmp/medsynth-package

clean:
	rm -rf demo_output bench_output .pytest_cache
