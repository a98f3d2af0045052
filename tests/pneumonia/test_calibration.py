"""Decisions on P(PNEUMONIA): metrics, threshold policies, temperature scaling, ECE and Brier."""

import argparse

import keras
import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from tf_models.pneumonia import calibration, robustness


def test_binary_metrics_match_sklearn():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    probabilities = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.65, 0.55, 0.3])
    result = calibration.binary_metrics(labels, probabilities, threshold=0.5)
    predictions = (probabilities >= 0.5).astype(int)
    true_negative, false_positive, false_negative, true_positive = sklearn_metrics.confusion_matrix(
        labels, predictions).ravel()
    assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predictions))
    assert result["sensitivity"] == pytest.approx(sklearn_metrics.recall_score(labels, predictions))
    assert result["specificity"] == pytest.approx(true_negative / (true_negative + false_positive))
    assert result["precision"] == pytest.approx(sklearn_metrics.precision_score(labels, predictions))
    assert result["f1"] == pytest.approx(sklearn_metrics.f1_score(labels, predictions))
    assert result["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, probabilities))
    assert result["confusion_matrix"] == [[true_negative, false_positive], [false_negative, true_positive]]


def logit_middle(low, high):
    return 1 / (1 + np.exp(-(np.log(low / (1 - low)) + np.log(high / (1 - high))) / 2))


def test_threshold_policies_take_the_middle_of_the_best_interval():
    labels = np.array([0, 0, 1, 1])
    separable = np.array([0.1, 0.2, 0.8, 0.9])
    for policy in calibration.THRESHOLD_POLICIES:
        assert calibration.choose_threshold(labels, separable, policy) == pytest.approx(0.5)
    close = np.array([0.1, 0.2, 0.3, 0.9])
    assert calibration.choose_threshold(labels, close, "youden") == pytest.approx(logit_middle(0.2, 0.3))


def test_threshold_ties_between_intervals_go_to_the_lower_one():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([0.1, 0.2, 0.6, 0.5, 0.7, 0.9])
    for policy in ("youden", "accuracy"):
        threshold = calibration.choose_threshold(labels, probabilities, policy)
        assert threshold == pytest.approx(1 / 3)
        result = calibration.binary_metrics(labels, probabilities, threshold)
        assert result["accuracy"] == pytest.approx(5 / 6)


# Ten films of each class. Youden's best cut is (0.50, 0.55): sensitivity 0.9, specificity 0.9.
HAND_LABELS = np.array([1] * 10 + [0] * 10)
HAND_SCORES = np.array([0.30, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95,
                        0.05, 0.10, 0.15, 0.20, 0.25, 0.35, 0.40, 0.45, 0.50, 0.62])


@pytest.mark.parametrize("policy, interval, sensitivity, specificity", [
    ("youden", (0.50, 0.55), 0.9, 0.9),
    ("accuracy", (0.50, 0.55), 0.9, 0.9),
    ("sensitivity:0.95", (0.25, 0.30), 1.0, 0.5),
    ("sensitivity:0.9", (0.50, 0.55), 0.9, 0.9),
    ("specificity:0.95", (0.62, 0.65), 0.7, 1.0),
    ("specificity:0.85", (0.50, 0.55), 0.9, 0.9),
])
def test_each_threshold_policy_on_hand_made_scores(policy, interval, sensitivity, specificity):
    threshold = calibration.choose_threshold(HAND_LABELS, HAND_SCORES, policy)
    assert threshold == pytest.approx(logit_middle(*interval))
    scores = calibration.binary_metrics(HAND_LABELS, HAND_SCORES, threshold)
    assert scores["sensitivity"] == pytest.approx(sensitivity) and scores["specificity"] == pytest.approx(specificity)


@pytest.mark.parametrize("target", [0.8, 0.95, 0.99])
def test_target_policies_meet_the_target_with_the_best_other_rate(target):
    rng = np.random.default_rng(3)
    labels = (rng.uniform(size=300) < 0.6).astype(int)
    scores = 1 / (1 + np.exp(-(rng.normal(size=300) + 1.5 * (2 * labels - 1))))
    for name, other in (("sensitivity", "specificity"), ("specificity", "sensitivity")):
        chosen = calibration.binary_metrics(labels, scores, calibration.choose_threshold(labels, scores, f"{name}:{target}"))
        assert chosen[name] >= target
        thresholds = np.concatenate([[0.0], np.unique(scores), [1.0 + 1e-9]])[:, None]
        rates = {"sensitivity": np.mean(scores[labels == 1] >= thresholds, axis=1),
                 "specificity": np.mean(scores[labels == 0] < thresholds, axis=1)}
        feasible = rates[name] >= target
        assert rates[other][feasible].max() == pytest.approx(chosen[other])


@pytest.mark.parametrize("policy", ["sensitivity", "sensitivity:1.5", "sensitivity:high", "recall:0.9", "youden:1", ""])
def test_unknown_policies_are_refused_with_the_valid_ones(policy):
    with pytest.raises(ValueError, match="sensitivity:0.95"):
        calibration.choose_threshold(HAND_LABELS, HAND_SCORES, policy)
    with pytest.raises(argparse.ArgumentTypeError, match="specificity:T"):
        calibration.check_policy(policy)


def overconfident_toy_model(sharpness):
    """A Keras logistic model whose logit is `sharpness` times the true log-odds of its data."""
    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer=keras.initializers.Constant(sharpness),
                                                   bias_initializer="zeros")(inputs))
    return model


def toy_data(count, seed):
    rng = np.random.default_rng(seed)
    log_odds = rng.normal(0.0, 1.5, size=(count, 1)).astype(np.float32)
    labels = (rng.uniform(size=count) < 1 / (1 + np.exp(-log_odds[:, 0]))).astype(int)
    return log_odds, labels


def test_temperature_scaling_lowers_the_nll_of_an_overconfident_model_and_keeps_its_ranking():
    model = overconfident_toy_model(4.0)
    features, labels = toy_data(4000, seed=0)
    logits = np.asarray(model(features))[:, 0]
    temperature = calibration.fit_temperature(labels, logits)
    assert 3.4 < temperature < 4.6
    before = calibration.negative_log_likelihood(labels, logits)
    after = calibration.negative_log_likelihood(labels, logits, temperature)
    assert after < before - 0.1
    for nearby in (0.8 * temperature, 1.25 * temperature):
        assert after < calibration.negative_log_likelihood(labels, logits, nearby)
    raw, scaled = calibration.sigmoid(logits), calibration.calibrated_probabilities(logits, temperature)
    assert sklearn_metrics.roc_auc_score(labels, scaled) == sklearn_metrics.roc_auc_score(labels, raw)
    np.testing.assert_array_equal(np.argsort(scaled, kind="stable"), np.argsort(logits, kind="stable"))
    assert calibration.expected_calibration_error(labels, scaled) < calibration.expected_calibration_error(labels, raw)


def test_an_underconfident_model_gets_a_temperature_below_one():
    features, labels = toy_data(4000, seed=1)
    logits = np.asarray(overconfident_toy_model(0.4)(features))[:, 0]
    assert 0.3 < calibration.fit_temperature(labels, logits) < 0.5
    with pytest.raises(ValueError, match="both classes"):
        calibration.fit_temperature(np.ones(5), np.arange(5.0))


def test_ece_of_perfectly_calibrated_predictions_is_about_zero():
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(size=200_000)
    labels = (rng.uniform(size=probabilities.size) < probabilities).astype(int)
    assert calibration.expected_calibration_error(labels, probabilities) < 0.005
    overconfident = calibration.sigmoid(4 * calibration.logit(probabilities))
    assert calibration.expected_calibration_error(labels, overconfident) > 0.05


def test_ece_brier_and_reliability_on_hand_made_predictions():
    probabilities = np.full(10, 0.8)
    assert calibration.expected_calibration_error([1] * 8 + [0] * 2, probabilities) == pytest.approx(0.0)
    assert calibration.expected_calibration_error([1] * 5 + [0] * 5, probabilities) == pytest.approx(0.3)
    assert calibration.brier_score([1, 0], [0.8, 0.4]) == pytest.approx((0.04 + 0.16) / 2)
    mean_probability, observed, counts = calibration.reliability_curve([0, 1, 1, 0], [0.05, 0.06, 0.9, 0.92], bins=10)
    np.testing.assert_allclose(mean_probability, [0.055, 0.91])
    np.testing.assert_allclose(observed, [0.5, 0.5])
    np.testing.assert_array_equal(counts, [2, 2])


def test_fit_decision_keeps_the_decisions_of_the_raw_threshold():
    features, labels = toy_data(600, seed=2)
    logits = np.asarray(overconfident_toy_model(5.0)(features))[:, 0]
    for policy in calibration.THRESHOLD_POLICIES:
        decision = calibration.fit_decision(labels, logits, policy)
        assert decision["calibrated"] and decision["temperature"] > 3 and decision["policy"] == policy
        calibrated = calibration.calibrated_probabilities(logits, decision["temperature"]) >= decision["threshold"]
        raw = calibration.sigmoid(logits) >= calibration.choose_threshold(labels, calibration.sigmoid(logits), policy)
        np.testing.assert_array_equal(calibrated, raw)
    uncalibrated = calibration.fit_decision(labels, logits, calibrate=False)
    assert uncalibrated["temperature"] == 1.0 and not uncalibrated["calibrated"]
    assert "pneumonia" in calibration.explain_probability(0.7, True, 0.74) and "74 %" in calibration.explain_probability(0.7, True, 0.74)
    assert "Uncalibrated" in calibration.explain_probability(0.7, False)


def test_a_target_no_validation_threshold_reaches_is_explained():
    labels, saturated = np.array([0, 0, 1, 1]), np.array([0.2, 1.0, 0.9, 1.0])
    with pytest.raises(ValueError, match="No threshold reaches specificity"):
        calibration.choose_threshold(labels, saturated, "specificity:0.95")
    assert calibration.choose_threshold(labels, saturated, "sensitivity:0.95") == pytest.approx(logit_middle(0.2, 0.9))


def mean_grey_model():
    """A 'model' whose logit is (mean grey level - 100) / 10: brighter films read as pneumonia."""
    inputs = keras.Input((32, 32, 1))
    logits = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inputs))
    model = keras.Model(inputs, logits)
    model.layers[-1].set_weights([np.array([[0.1]], np.float32), np.array([-10.0], np.float32)])
    return model


def test_film_changes_do_what_they_say_and_move_a_grey_level_model():
    films = np.zeros((4, 32, 32, 1), np.uint8)
    films[:, 8:24, 8:24] = 200
    films[:, 15:17, 15:17] = 100
    zoomed_in = robustness.change_films(films, "zoom in 15 % (tighter framing)")
    zoomed_out = robustness.change_films(films, "zoom out 15 % (wider framing)")
    assert (zoomed_in > 100).sum() > (films > 100).sum() > (zoomed_out > 100).sum()
    np.testing.assert_array_equal(robustness.change_films(films, "none"), films.astype(np.float32))
    lighter = robustness.change_films(films, "gamma 0.8 (lighter background)")
    np.testing.assert_allclose(lighter[0, 16, 16, 0], 255 * (100 / 255) ** 0.8, rtol=1e-5)
    blurred = robustness.change_films(films, "blur sigma 1 px")
    assert blurred[0, 8, 16, 0] < 200 and abs(blurred.mean() - films.mean()) < 1.0
    with pytest.raises(ValueError, match="zoom in"):
        robustness.change_films(films, "rotate")

    labels = np.array([0, 0, 1, 1])
    decision = {"temperature": 1.0, "threshold": 0.5}
    report = robustness.film_change_report(mean_grey_model(), films, labels, decision, batch_size=3)
    assert set(report) == set(robustness.FILM_CHANGES)
    assert report["gamma 0.8 (lighter background)"]["mean_p_normal"] > report["none"]["mean_p_normal"]
    assert report["zoom out 15 % (wider framing)"]["mean_p_normal"] < report["none"]["mean_p_normal"]
    assert abs(report["blur sigma 1 px"]["mean_p_normal"] - report["none"]["mean_p_normal"]) < 0.01
