"""2,000 derandomised runs of the command-line fuzzer (``Testing/cli_fuzz.py``) over every
command: each ends with exit 0, 1 or 2 and a plain message; none with an internal error (exit
3), a traceback, a changed input or a partial file left behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).parent))

from cli_fuzz import Fixtures, base_calls, fuzz  # noqa: E402


def test_every_command_refuses_hostile_calls_plainly(tmp_path):
    fixtures = Fixtures(tmp_path).make()
    outcome = fuzz(tmp_path, runs=2000, seed=0, limit_s=0.3, fixtures=fixtures)
    assert outcome.runs == 2000
    assert not outcome.failures, json.dumps(outcome.failures[:5], indent=1)
    assert set(outcome.seconds_by_command) == {" ".join(words) for words in base_calls(fixtures.files, tmp_path)}
    assert outcome.codes.get("0", 0) > 200 and outcome.codes.get("2", 0) > 1000  # valid calls ran, hostile ones refused
