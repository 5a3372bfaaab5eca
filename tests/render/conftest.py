"""The report's tests share one synthetic run (plant.report_frame: a planted roofline) and the calibration
fitted on it."""

import pytest

from llmecon.calibration.fit import fit_calibration


@pytest.fixture(scope="module")
def frame(plant):
    return plant.report_frame()


@pytest.fixture(scope="module")
def calib(frame):
    return fit_calibration(frame)
