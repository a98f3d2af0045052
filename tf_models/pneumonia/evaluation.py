"""`scripts/evaluate.py --task pneumonia`: temperature and threshold on validation, metrics and figures on test/.

The temperature (temperature scaling: P(PNEUMONIA) = sigmoid(logit / T), T
minimising the validation NLL) and the decision threshold on that calibrated
probability are chosen on the validation split carved from train/ (the same
patients as in training, by the run's seed and --validation-fraction), with
`--threshold-policy` (default: the run's; youden, accuracy, sensitivity:T,
specificity:T), and stored in saved_models/pneumonia/<run>/threshold.json.
test/ is only scored, never used to choose. Writes logs/pneumonia/<run>/evaluation/.

With `--data DIR` naming another folder (DIR/test/{NORMAL,PNEUMONIA} or flat
DIR/{NORMAL,PNEUMONIA}), every image of it is scored at the run's stored
temperature and threshold into logs/pneumonia/<run>/evaluation-<DIR's name>/;
no file of the run changes. `--tta` averages each logit with that of the
left-right mirrored film and writes to evaluation[-<name>]-tta/ without storing anything.

`film_changes` in metrics.json (and the last printed table) scores the
validation films again after known changes (blur, sharpening, gamma, zoom:
`robustness.FILM_CHANGES`): which of them moves NORMAL films towards
pneumonia, measured without test/.
"""

import argparse
import json

import keras
import matplotlib
import numpy as np

from pipelines import classification
from tf_models.core import figures, runs
from tf_models.pneumonia import calibration, inference, robustness
from tf_models.pneumonia import task as pneumonia_task

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRIC_NAMES = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="run name under saved_models/pneumonia/")
    parser.add_argument("--data", default="",
                        help="another labelled folder to score at the run's stored decision (default: the run's --data)")
    parser.add_argument("--threshold-policy", default=None, type=calibration.check_policy,
                        help="youden, accuracy, sensitivity:T or specificity:T, e.g. sensitivity:0.95 (default: the run's)")
    parser.add_argument("--temperature-scaling", default=None, action=argparse.BooleanOptionalAction,
                        help="fit a temperature on validation (default: the run's --temperature-scaling)")
    parser.add_argument("--tta", action="store_true", help="average with the left-right mirrored film (reported only)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--grad-cam-count", type=int, default=6, help="test images with Grad-CAM overlays")
    parser.add_argument("--logs-root", default="logs")
    parser.add_argument("--models-root", default="saved_models")


def load_run(args):
    """(paths, stored config dict, Keras model) of `--run`."""
    paths = runs.RunPaths("pneumonia", args.run, args.logs_root, args.models_root)
    if not paths.config_file.is_file() or not paths.keras_file.is_file():
        raise ValueError(
            f"Run {args.run!r}: expected {paths.config_file} and {paths.keras_file}; "
            "train it first with scripts/train_pneumonia.py --run-name " + args.run
        )
    config = json.loads(paths.config_file.read_text())
    model = keras.saving.load_model(paths.keras_file, compile=False)
    return paths, config, model


def score_dataset(model, dataset, tta=False):
    """(images uint8, labels, logits) of a batched (image, label) dataset."""
    labels, logits = inference.dataset_logits(model, dataset, tta)
    images = np.concatenate([np.asarray(batch) for batch, _ in dataset]).astype(np.uint8)
    return images, labels, logits


def score_splits(model, config, args):
    """{split: (images uint8, labels, logits)} for validation and test of the run's own data."""
    batches, skipped = classification.pneumonia_split_batches(
        config["data"], ("validation", "test"), config["image_size"], args.batch_size,
        config["validation_fraction"], config["seed"],
    )
    return {name: score_dataset(model, dataset, args.tta) for name, dataset in batches.items()}, skipped


def calibration_report(labels, logits, temperature):
    return {
        "uncalibrated": calibration.calibration_scores(labels, calibration.calibrated_probabilities(logits)),
        "calibrated": calibration.calibration_scores(labels, calibration.calibrated_probabilities(logits, temperature)),
    }


def policy_report(scored, decision):
    """Each threshold policy chosen on validation, with its validation and test scores."""
    _, validation_labels, validation_logits = scored["validation"]
    temperature = decision["temperature"]
    validation_probabilities = calibration.calibrated_probabilities(validation_logits, temperature)
    report = {}
    for policy in dict.fromkeys((*calibration.THRESHOLD_POLICIES, decision["policy"])):
        threshold = calibration.choose_threshold(validation_labels, validation_probabilities, policy)
        report[policy] = {"threshold": threshold}
        for split, (_, labels, logits) in scored.items():
            scores = calibration.binary_metrics(labels, calibration.calibrated_probabilities(logits, temperature),
                                                threshold)
            report[policy][split] = {name: scores[name] for name in ("accuracy", "sensitivity", "specificity")}
    return report


def split_report(scored, decision):
    """Metrics at the decision's threshold (with the ECE and Brier score of the probability shown) and at 0.5,
    and calibration before/after, per split."""
    threshold, temperature = decision["threshold"], decision["temperature"]
    report = {"threshold": threshold, "temperature": temperature, "calibration": {}}
    for split, (_, labels, logits) in scored.items():
        probabilities = calibration.calibrated_probabilities(logits, temperature)
        report["calibration"][split] = calibration_report(labels, logits, temperature)
        shown = report["calibration"][split]["calibrated"]
        report[split] = {**calibration.binary_metrics(labels, probabilities, threshold),
                         "ece": shown["ece"], "brier": shown["brier"]}
        report[f"{split}_at_0.5"] = calibration.binary_metrics(labels, probabilities, 0.5)
    return report


def evaluate(args):
    paths, config, model = load_run(args)
    if runs.is_external_data(args.data, config["data"]):
        return evaluate_external(args, paths, config, model)
    policy = args.threshold_policy or config.get("threshold_policy", "youden")
    calibrate = config.get("temperature_scaling", True) if args.temperature_scaling is None else args.temperature_scaling
    scored, skipped = score_splits(model, config, args)
    validation_images, validation_labels, validation_logits = scored["validation"]
    decision = calibration.fit_decision(validation_labels, validation_logits, policy, calibrate)
    report = {"decision": decision, "tta": args.tta, **split_report(scored, decision),
              "policies": policy_report(scored, decision), "skipped_files": skipped,
              "film_changes": robustness.film_change_report(model, validation_images, validation_labels, decision,
                                                            args.batch_size)}
    output_dir = runs.evaluation_dir(paths.log_dir, suffix="tta" if args.tta else "")
    written = [runs.write_json(output_dir / "metrics.json", report)]
    written += write_figures(model, scored, decision, output_dir, args.grad_cam_count, "test")
    history = paths.log_dir / "history.csv"
    if history.is_file():
        written.append(figures.plot_history(
            figures.read_history(history), output_dir / "curves.png", metrics=["loss", "accuracy", "auc"]
        ))
    print_table(report, ("validation", "test", "test_at_0.5"))
    if not args.tta:
        written.append(store_decision(paths, decision))
    return written


def store_decision(paths, decision):
    """Writes threshold.json; says when the exported files were made with another decision."""
    previous = pneumonia_task.load_threshold(paths.model_dir)
    written = pneumonia_task.store_decision(paths, decision)
    changed = any(not np.isclose(previous[key], decision[key]) for key in ("threshold", "temperature"))
    if changed and paths.serving_dir.is_dir():
        print(f"\nThe temperature or threshold changed: refresh the exports with "
              f"python scripts/export.py --run pneumonia/{paths.run_name}")
    return written


def evaluate_external(args, paths, config, model):
    """Every image of `args.data` at the run's stored decision, into evaluation-<name>/; the run is not changed."""
    decision = pneumonia_task.load_threshold(paths.model_dir)
    if not (paths.model_dir / pneumonia_task.THRESHOLD_FILE).is_file():
        print(f"{paths.model_dir / pneumonia_task.THRESHOLD_FILE}: none stored; scoring at threshold 0.5, "
              f"uncalibrated. Run scripts/evaluate.py --task pneumonia --run {args.run} first to choose them.")
    dataset, count, skipped = classification.pneumonia_test_folder(args.data, config["image_size"], args.batch_size)
    scored = {"external": score_dataset(model, dataset, args.tta)}
    report = {"data": str(args.data), "examples": count, "decision": decision, "tta": args.tta,
              **split_report(scored, decision), "skipped_files": skipped}
    output_dir = runs.evaluation_dir(paths.log_dir, args.data, "tta" if args.tta else "")
    written = [runs.write_json(output_dir / "metrics.json", report)]
    written += write_figures(model, scored, decision, output_dir, args.grad_cam_count, "external")
    print_table(report, ("external", "external_at_0.5"))
    return written


def write_figures(model, scored, decision, output_dir, grad_cam_count, split):
    images, labels, logits = scored[split]
    probabilities = calibration.calibrated_probabilities(logits, decision["temperature"])
    report = calibration.binary_metrics(labels, probabilities, decision["threshold"])
    return [
        plot_confusion_matrix(report["confusion_matrix"], output_dir / "confusion_matrix.png", split),
        plot_roc(labels, probabilities, report, output_dir / "roc_curve.png", split),
        plot_reliability(scored, decision["temperature"], output_dir / "reliability.png"),
        plot_predictions(images, labels, probabilities, decision["threshold"], output_dir / "predictions.png"),
        plot_grad_cam(model, images, labels, probabilities, decision["threshold"], grad_cam_count,
                      output_dir / "grad_cam.png"),
    ]


def print_table(report, splits):
    decision = report["decision"]
    print(f"threshold {decision['threshold']:.4f} ({decision['policy']}, chosen on {decision['chosen_on']}), "
          f"temperature {decision['temperature']:.4f}{' (uncalibrated)' if not decision['calibrated'] else ''}"
          f"{', flip TTA' if report['tta'] else ''}")
    print(f"{'split':<16}" + "".join(f"{name:>12}" for name in METRIC_NAMES))
    for split in splits:
        print(f"{split:<16}" + "".join(f"{report[split][name]:>12.4f}" for name in METRIC_NAMES))
    print(f"\n{'calibration':<16}{'ECE before':>12}{'ECE after':>12}{'Brier before':>14}{'Brier after':>12}")
    for split, scores in report["calibration"].items():
        before, after = scores["uncalibrated"], scores["calibrated"]
        print(f"{split:<16}{before['ece']:>12.4f}{after['ece']:>12.4f}{before['brier']:>14.4f}{after['brier']:>12.4f}")
    if "policies" in report:
        print(f"\n{'policy (on val.)':<20}{'threshold':>10}{'test sens.':>12}{'test spec.':>12}{'test acc.':>12}")
        for policy, scores in report["policies"].items():
            test = scores["test"]
            print(f"{policy:<20}{scores['threshold']:>10.4f}{test['sensitivity']:>12.4f}"
                  f"{test['specificity']:>12.4f}{test['accuracy']:>12.4f}")
    if "film_changes" in report:
        print(f"\n{'validation films changed':<32}{'P NORMAL':>10}{'P PNEUM.':>10}{'sens.':>8}{'spec.':>8}{'AUC':>8}")
        for change, scores in report["film_changes"].items():
            print(f"{change:<32}{scores['mean_p_normal']:>10.3f}{scores['mean_p_pneumonia']:>10.3f}"
                  f"{scores['sensitivity']:>8.3f}{scores['specificity']:>8.3f}{scores['roc_auc']:>8.3f}")


def plot_reliability(scored, temperature, path):
    """Reliability diagram per split: share of PNEUMONIA against mean P(PNEUMONIA) per bin, before and after."""
    figure, axes = plt.subplots(1, len(scored), figsize=(4.2 * len(scored), 4.0), squeeze=False)
    for axis, (split, (_, labels, logits)) in zip(axes[0], scored.items()):
        axis.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect")
        for name, value in (("uncalibrated", 1.0), (f"T = {temperature:.2f}", temperature)):
            probabilities = calibration.calibrated_probabilities(logits, value)
            mean_probability, observed, _ = calibration.reliability_curve(labels, probabilities)
            ece = calibration.expected_calibration_error(labels, probabilities)
            axis.plot(mean_probability, observed, marker="o", label=f"{name}: ECE {ece:.3f}")
        axis.set_xlabel("mean P(pneumonia) in bin")
        axis.set_ylabel("share with pneumonia")
        axis.set_title(f"{split}: reliability")
        axis.legend(loc="upper left", fontsize=8)
    return figures.save_figure(figure, path)


def plot_confusion_matrix(matrix, path, split="test"):
    import seaborn

    figure, axis = plt.subplots(figsize=(4.2, 3.6))
    seaborn.heatmap(np.asarray(matrix), annot=True, fmt="d", cmap="Blues", cbar=False, ax=axis,
                    xticklabels=classification.PNEUMONIA_CLASSES, yticklabels=classification.PNEUMONIA_CLASSES)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"{split} confusion matrix")
    return figures.save_figure(figure, path)


def plot_roc(labels, probabilities, metrics, path, split="test"):
    from sklearn import metrics as sklearn_metrics

    false_positive_rate, true_positive_rate, _ = sklearn_metrics.roc_curve(labels, probabilities)
    figure, axis = plt.subplots(figsize=(4.2, 4.0))
    axis.plot(false_positive_rate, true_positive_rate, label=f"AUC {metrics['roc_auc']:.3f}")
    axis.plot([0, 1], [0, 1], linestyle="--", color="gray")
    axis.scatter([1 - metrics["specificity"]], [metrics["sensitivity"]], color="red", zorder=3,
                 label=f"threshold {metrics['threshold']:.3f}")
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title(f"{split} ROC")
    axis.legend(loc="lower right")
    return figures.save_figure(figure, path)


def plot_predictions(images, labels, probabilities, threshold, path, per_row=6):
    """Row 1: correct predictions; row 2: wrong ones (empty cells when there are fewer)."""
    predictions = (probabilities >= threshold).astype(int)
    groups = {"correct": np.flatnonzero(predictions == labels), "wrong": np.flatnonzero(predictions != labels)}
    figure, axes = plt.subplots(2, per_row, figsize=(2.2 * per_row, 5.0), squeeze=False)
    for row, (title, indices) in enumerate(groups.items()):
        chosen = np.random.default_rng(0).permutation(indices)[:per_row]
        for column, axis in enumerate(axes[row]):
            axis.axis("off")
            if column < len(chosen):
                index = chosen[column]
                axis.imshow(images[index, ..., 0], cmap="gray", vmin=0, vmax=255)
                axis.set_title(f"{title}: {classification.PNEUMONIA_CLASSES[labels[index]]}\n"
                               f"p={probabilities[index]:.2f}", fontsize=8)
    return figures.save_figure(figure, path)


def plot_grad_cam(model, images, labels, probabilities, threshold, count, path):
    """Films with their Grad-CAM overlay, titled with the true class, the calibrated P and the label it gives."""
    chosen = np.random.default_rng(1).permutation(len(images))[: max(1, count)]
    heatmaps = inference.grad_cam(model, images[chosen].astype(np.float32))
    gray = images[chosen, ..., 0].astype(np.float32) / 255.0
    overlays = 0.6 * np.repeat(gray[..., None], 3, axis=-1) + 0.4 * plt.get_cmap("jet")(heatmaps)[..., :3]
    rows = [[gray[i], overlays[i]] for i in range(len(chosen))]
    titles = [f"{classification.PNEUMONIA_CLASSES[labels[i]]}: p={probabilities[i]:.2f}, "
              f"{classification.PNEUMONIA_CLASSES[int(probabilities[i] >= threshold)]}" for i in chosen]
    return figures.plot_image_rows(rows, ["X-ray", "Grad-CAM"], path, row_titles=titles)
