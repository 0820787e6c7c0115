"""Ground truth: docs/ALERTS.md replayed over what a run did, and the check against the API."""

from simulators.truth.check import CheckResult, check_report
from simulators.truth.expect import Expected, Tolerance
from simulators.truth.predict import Prediction, predict
from simulators.truth.report import read_report, write_report
from simulators.truth.rules import Rules

__all__ = [
    "CheckResult",
    "Expected",
    "Prediction",
    "Rules",
    "Tolerance",
    "check_report",
    "predict",
    "read_report",
    "write_report",
]
