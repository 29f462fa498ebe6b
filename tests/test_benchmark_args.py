"""The benchmark scripts check their options before measuring: a bad one failed minutes in, or at the
very end when the result file could not be written (``benchmarks/_machine.py``)."""

import argparse
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("_machine", Path(__file__).parents[1] / "benchmarks" / "_machine.py")
machine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(machine)


def test_counts_and_positive_integers():
    assert machine.positive_int("3") == 3 and machine.count("0") == 0 and machine.count("7") == 7
    for bad, match in [("0", ">= 1"), ("-2", ">= 1"), ("x", "not an integer"), ("1.5", "not an integer")]:
        with pytest.raises(argparse.ArgumentTypeError, match=match):
            machine.positive_int(bad)
    with pytest.raises(argparse.ArgumentTypeError, match=">= 0"):
        machine.count("-3")
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer"):
        machine.count("many")


def test_result_file_is_checked_up_front(tmp_path):
    assert machine.result_file(str(tmp_path / "r.json")) == tmp_path / "r.json"
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        machine.result_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        machine.result_file(str(tmp_path / "missing" / "r.json"))
