"""sktime's own conformance suite for both estimators (tiny random-weights encoders from
``get_test_params``). No check is skipped."""

import pytest
from sktime.utils.estimator_checks import check_estimator

from tivit.sktime import TiViTClassifier, TiViTTransformer


@pytest.mark.slow
@pytest.mark.parametrize("estimator", [TiViTClassifier, TiViTTransformer], ids=lambda e: e.__name__)
def test_sktime_check_estimator(estimator):
    results = check_estimator(estimator, raise_exceptions=True)
    failed = {name: outcome for name, outcome in results.items() if outcome != "PASSED"}
    assert not failed, failed
    assert len(results) > 200
