"""Decisions on P(PNEUMONIA): temperature scaling, calibration scores, threshold policies, metrics.

A classifier trained with class weights and early stopping on ROC AUC ranks
films well but its sigmoid crowds near 0 and 1, so "0.98" is not a 98 % chance.
Temperature scaling (Guo et al., 2017) divides the logit by one number T > 0
fitted on validation to minimise the negative log-likelihood: the ranking
(ROC AUC) and every decision at a matching threshold are unchanged, only the
probabilities move. Expected calibration error and the Brier score measure
how well the probabilities match the observed frequencies.

Example:

    temperature = fit_temperature(validation_labels, validation_logits)
    probabilities = calibrated_probabilities(test_logits, temperature)
    threshold = choose_threshold(validation_labels,
                                 calibrated_probabilities(validation_logits, temperature), "sensitivity:0.95")
    expected_calibration_error(test_labels, probabilities)
"""

import argparse

import numpy as np

THRESHOLD_POLICIES = ("youden", "accuracy", "sensitivity:0.95", "specificity:0.95")
TARGET_POLICIES = ("sensitivity", "specificity")
CALIBRATION_BINS = 15
VALIDATION_SOURCE = "validation split carved from train/"


def parse_policy(policy):
    """'youden' -> ('youden', None); 'sensitivity:0.95' -> ('sensitivity', 0.95); ValueError otherwise."""
    name, _, target = str(policy).partition(":")
    if name in ("youden", "accuracy") and not target:
        return name, None
    if name in TARGET_POLICIES and target:
        try:
            value = float(target)
        except ValueError:
            value = float("nan")
        if 0.0 < value <= 1.0:
            return name, value
    raise ValueError(
        f"Unknown threshold policy {policy!r}; choose youden, accuracy, sensitivity:T or specificity:T "
        "with a target T in (0, 1], e.g. sensitivity:0.95."
    )


def check_policy(policy):
    """`policy` itself when `parse_policy` accepts it: an argparse `type` that names the valid policies."""
    try:
        parse_policy(policy)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return policy


def choose_threshold(labels, probabilities, policy="youden"):
    """The decision threshold on P(PNEUMONIA) chosen by `policy` on these (validation) arrays.

    `youden`: the largest Youden's J = sensitivity + specificity - 1;
    `accuracy`: the largest accuracy; `sensitivity:T`: of the thresholds whose
    sensitivity is at least T, the one with the best specificity (the usual
    screening choice); `specificity:T`: of those whose specificity is at least
    T, the one with the best sensitivity. Every threshold between two
    neighbouring validation probabilities gives the same decisions, so the
    best score holds on an interval; the threshold returned is the middle of
    the best interval in logit space, the one farthest from the validation
    examples on either side. A threshold at the interval's edge would sit on a
    validation example and turn any shift of the data into errors of one class
    only. Ties between intervals go to the lowest.
    """
    name, target = parse_policy(policy)
    labels, probabilities = np.asarray(labels).ravel(), np.asarray(probabilities, np.float64).ravel()
    if len(np.unique(labels)) < 2:
        raise ValueError("Choosing a threshold needs both classes in the validation labels.")
    edges = np.concatenate([[0.0], np.unique(probabilities), [1.0]])
    candidates = (edges[:-1] + edges[1:]) / 2
    decisions = probabilities[None, :] >= candidates[:, None]
    sensitivity = decisions[:, labels == 1].mean(axis=1)
    specificity = 1.0 - decisions[:, labels == 0].mean(axis=1)
    best = _best_candidates(name, target, labels, decisions, sensitivity, specificity)
    run_end = best[0]
    while run_end + 1 in best:
        run_end += 1
    low_logit, high_logit = logit(edges[best[0]]), logit(edges[run_end + 1])
    return float(sigmoid((low_logit + high_logit) / 2))


def _best_candidates(name, target, labels, decisions, sensitivity, specificity):
    """Indices of the candidate thresholds with the policy's best score."""
    if name == "youden":
        return _argmax_all(sensitivity + specificity)
    if name == "accuracy":
        return _argmax_all(np.mean(decisions == (labels == 1)[None, :], axis=1))
    constrained, free = (sensitivity, specificity) if name == "sensitivity" else (specificity, sensitivity)
    feasible = constrained >= target - 1e-12
    if not feasible.any():
        raise ValueError(f"No threshold reaches {name} {target} on the validation split (its probabilities "
                         "saturate at 1); choose a lower target or another --threshold-policy.")
    score = np.where(feasible, free + 1e-6 * constrained, -np.inf)
    return _argmax_all(score)


def _argmax_all(scores):
    return np.flatnonzero(np.isclose(scores, scores.max(), rtol=0.0, atol=1e-9))


def logit(probabilities, epsilon=1e-7):
    probabilities = np.clip(np.asarray(probabilities, np.float64), epsilon, 1 - epsilon)
    return np.log(probabilities / (1 - probabilities))


def sigmoid(logits):
    return 0.5 * (1.0 + np.tanh(np.asarray(logits, np.float64) / 2.0))


def calibrated_probabilities(logits, temperature=1.0):
    """sigmoid(logit / temperature), float64 [N]."""
    if not temperature > 0:
        raise ValueError(f"A temperature must be positive, got {temperature}.")
    return sigmoid(np.asarray(logits, np.float64).ravel() / temperature)


def negative_log_likelihood(labels, logits, temperature=1.0):
    """Mean binary cross-entropy of sigmoid(logit / temperature), computed stably on the logits."""
    labels = np.asarray(labels, np.float64).ravel()
    scaled = np.asarray(logits, np.float64).ravel() / temperature
    return float(np.mean(np.logaddexp(0.0, scaled) - labels * scaled))


def fit_temperature(labels, logits, lowest=1e-2, highest=1e2):
    """The temperature T in [lowest, highest] minimising the NLL of sigmoid(logit / T) on these arrays.

    The NLL is convex in the inverse temperature 1 / T, so its derivative is
    monotone and bisection on log(1 / T) finds the minimum. Fitted on the
    validation split only: the test split must stay unseen by every choice.
    """
    labels = np.asarray(labels, np.float64).ravel()
    logits = np.asarray(logits, np.float64).ravel()
    if len(labels) != len(logits) or not len(labels):
        raise ValueError(f"Temperature scaling needs as many labels as logits, got {len(labels)} and {len(logits)}.")
    if len(np.unique(labels)) < 2:
        raise ValueError("Temperature scaling needs both classes in the validation labels.")

    def slope(log_inverse):
        inverse = np.exp(log_inverse)
        return np.mean((sigmoid(inverse * logits) - labels) * logits)

    low, high = np.log(1.0 / highest), np.log(1.0 / lowest)
    if slope(low) >= 0:
        return float(highest)
    if slope(high) <= 0:
        return float(lowest)
    for _ in range(80):
        middle = (low + high) / 2
        low, high = (middle, high) if slope(middle) < 0 else (low, middle)
    return float(np.exp(-(low + high) / 2))


def fit_decision(labels, logits, policy="youden", calibrate=True, source=VALIDATION_SOURCE):
    """The run's decision record from validation logits: temperature (1 without `calibrate`), then threshold.

    The threshold is chosen on the calibrated probabilities, so it applies to
    the probability a user is shown; decisions are those of the matching
    threshold on the raw probability, since dividing by T keeps the order.
    """
    temperature = fit_temperature(labels, logits) if calibrate else 1.0
    probabilities = calibrated_probabilities(logits, temperature)
    return {
        "threshold": choose_threshold(labels, probabilities, policy),
        "policy": policy,
        "chosen_on": source,
        "temperature": temperature,
        "calibrated": bool(calibrate),
        "validation_prevalence": float(np.mean(np.asarray(labels).ravel() == 1)),
    }


def brier_score(labels, probabilities):
    """Mean squared difference between P(PNEUMONIA) and the 0/1 label (0 is perfect)."""
    labels = np.asarray(labels, np.float64).ravel()
    return float(np.mean((np.asarray(probabilities, np.float64).ravel() - labels) ** 2))


def reliability_curve(labels, probabilities, bins=CALIBRATION_BINS):
    """Per equal-width bin of P(PNEUMONIA): (mean probability, share of PNEUMONIA, count); empty bins dropped."""
    labels = np.asarray(labels, np.float64).ravel()
    probabilities = np.asarray(probabilities, np.float64).ravel()
    index = np.clip((probabilities * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    kept = counts > 0
    mean_probability = np.bincount(index, probabilities, bins)[kept] / counts[kept]
    observed = np.bincount(index, labels, bins)[kept] / counts[kept]
    return mean_probability, observed, counts[kept]


def expected_calibration_error(labels, probabilities, bins=CALIBRATION_BINS):
    """Count-weighted mean gap |share of PNEUMONIA - mean P(PNEUMONIA)| over equal-width bins (0 is perfect)."""
    mean_probability, observed, counts = reliability_curve(labels, probabilities, bins)
    return float(np.sum(counts * np.abs(observed - mean_probability)) / np.sum(counts))


def calibration_scores(labels, probabilities, bins=CALIBRATION_BINS):
    """{"ece", "brier", "nll"} of probabilities against labels."""
    return {
        "ece": expected_calibration_error(labels, probabilities, bins),
        "brier": brier_score(labels, probabilities),
        "nll": negative_log_likelihood(labels, logit(probabilities, 1e-12)),
    }


def binary_metrics(labels, probabilities, threshold=0.5):
    """Accuracy, sensitivity, specificity, precision, F1, ROC AUC and the confusion matrix.

    A prediction is positive (PNEUMONIA) when its probability is at least
    `threshold`. The confusion matrix is [[TN, FP], [FN, TP]].
    """
    from sklearn import metrics as sklearn_metrics

    labels = np.asarray(labels).ravel().astype(int)
    probabilities = np.asarray(probabilities, np.float64).ravel()
    predictions = (probabilities >= threshold).astype(int)
    matrix = sklearn_metrics.confusion_matrix(labels, predictions, labels=[0, 1])
    (true_negative, false_positive), (false_negative, true_positive) = matrix
    return {
        "threshold": float(threshold),
        "accuracy": float(sklearn_metrics.accuracy_score(labels, predictions)),
        "sensitivity": float(true_positive / max(true_positive + false_negative, 1)),
        "specificity": float(true_negative / max(true_negative + false_positive, 1)),
        "precision": float(sklearn_metrics.precision_score(labels, predictions, zero_division=0)),
        "f1": float(sklearn_metrics.f1_score(labels, predictions, zero_division=0)),
        "roc_auc": float(sklearn_metrics.roc_auc_score(labels, probabilities)) if len(set(labels)) > 1 else float("nan"),
        "confusion_matrix": matrix.tolist(),
        "count": int(len(labels)),
    }


def explain_probability(probability, calibrated, prevalence=None):
    """One sentence saying what a shown P(PNEUMONIA) means."""
    if not calibrated:
        return ("Uncalibrated model output: it ranks films but is not a frequency; "
                "scripts/evaluate.py --task pneumonia fits a temperature that makes it one.")
    context = f" at their {100 * prevalence:.0f} % pneumonia prevalence" if prevalence is not None else ""
    return (f"Calibrated on the run's validation films{context}: of films scored about {probability:.2f}, "
            f"about {round(100 * probability)} in 100 had pneumonia.")
