"""Ground truth: docs/ALERTS.md replayed over what a run did, and the check against the API."""

from telecare.simulators.truth.check import CheckResult, check_report
from telecare.simulators.truth.expect import Expected, Tolerance
from telecare.simulators.truth.predict import Prediction, predict
from telecare.simulators.truth.report import read_report, write_report
from telecare.simulators.truth.thresholds import Rules

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
