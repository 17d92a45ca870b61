"""The load check CI runs: bench/load.py against the real server and CLI, on loopback.

The full run (50 concurrent clients, then 200 requests with clients leaving at random) takes
90-150 s on 2 (shared) cores, so CI runs it whole; LOAD_TEST=quick shrinks it (20 clients,
40 requests) for a faster local loop. The figures land in bench/results/load.json.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

LOAD_SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "load.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("bench_load", LOAD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
def test_load_answers_everything_correctly_and_leaves_no_orphans():
    load = _load_module()
    quick = os.environ.get("LOAD_TEST", "full").lower() == "quick"
    results = load.run(quick=quick)
    failed = [f"{check['check']}: {check['detail']}" for check in results["checks"] if not check["passed"]]
    assert results["passed"], "load test failed:\n" + "\n".join(failed) + "\n\n" + results["table"]
