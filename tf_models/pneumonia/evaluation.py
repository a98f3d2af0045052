"""`scripts/evaluate.py --task pneumonia`: threshold on validation, metrics and figures on test/.

The decision threshold on P(PNEUMONIA) is chosen on the validation split
carved from train/ (the same patients as in training, by the run's seed and
--validation-fraction), with Youden's J by default (`--threshold-policy
accuracy`: maximum accuracy). test/ is only scored, never used to choose.
"""

import json

import keras
import matplotlib
import numpy as np

from pipelines import classification
from tf_models.pneumonia import model as pneumonia
from tf_models.core import figures, runs
from tf_models.pneumonia import task as pneumonia_task

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def add_arguments(parser):
    parser.add_argument("--run", required=True, help="run name under saved_models/pneumonia/")
    parser.add_argument("--data", default="", help="Kermany folder (default: the run's --data)")
    parser.add_argument("--threshold-policy", default="", choices=("", *pneumonia.THRESHOLD_POLICIES),
                        help="youden or accuracy (default: the run's)")
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


def score_splits(model, config, args):
    """{split: (images uint8, labels, probabilities)} for validation and test."""
    batches, skipped = classification.pneumonia_split_batches(
        args.data or config["data"], ("validation", "test"), config["image_size"], args.batch_size,
        config["validation_fraction"], config["seed"],
    )
    scored = {}
    for name, dataset in batches.items():
        true_labels, probabilities = pneumonia_task.predict_probabilities(model, dataset)
        images = np.concatenate([np.asarray(batch) for batch, _ in dataset]).astype(np.uint8)
        scored[name] = (images, true_labels, probabilities)
    return scored, skipped


def evaluate(args):
    paths, config, model = load_run(args)
    policy = args.threshold_policy or config.get("threshold_policy", "youden")
    scored, skipped = score_splits(model, config, args)
    _, validation_labels, validation_probabilities = scored["validation"]
    threshold = pneumonia.choose_threshold(validation_labels, validation_probabilities, policy)
    images, labels, probabilities = scored["test"]
    report = {
        "threshold": threshold,
        "threshold_policy": policy,
        "threshold_chosen_on": "validation split carved from train/ (never test/)",
        "validation": pneumonia.binary_metrics(validation_labels, validation_probabilities, threshold),
        "test": pneumonia.binary_metrics(labels, probabilities, threshold),
        "test_at_0.5": pneumonia.binary_metrics(labels, probabilities, 0.5),
        "skipped_files": skipped,
    }
    written = [
        runs.write_json(paths.log_dir / "metrics.json", report),
        pneumonia_task.store_threshold(paths, threshold, policy, "validation split carved from train/"),
        plot_confusion_matrix(report["test"]["confusion_matrix"], paths.log_dir / "confusion_matrix.png"),
        plot_roc(labels, probabilities, report["test"], paths.log_dir / "roc_curve.png"),
        plot_predictions(images, labels, probabilities, threshold, paths.log_dir / "predictions.png"),
        plot_grad_cam(model, images, labels, probabilities, args.grad_cam_count, paths.log_dir / "grad_cam.png"),
    ]
    history = paths.log_dir / "history.csv"
    if history.is_file():
        written.append(figures.plot_history(
            figures.read_history(history), paths.log_dir / "curves.png", metrics=["loss", "accuracy", "auc"]
        ))
    print_table(report)
    return written


def print_table(report):
    print(f"threshold {report['threshold']:.4f} ({report['threshold_policy']}, chosen on validation)")
    names = ("accuracy", "sensitivity", "specificity", "precision", "f1", "roc_auc")
    print(f"{'split':<12}" + "".join(f"{name:>12}" for name in names))
    for split in ("validation", "test", "test_at_0.5"):
        print(f"{split:<12}" + "".join(f"{report[split][name]:>12.4f}" for name in names))


def plot_confusion_matrix(matrix, path):
    import seaborn

    figure, axis = plt.subplots(figsize=(4.2, 3.6))
    seaborn.heatmap(np.asarray(matrix), annot=True, fmt="d", cmap="Blues", cbar=False, ax=axis,
                    xticklabels=classification.PNEUMONIA_CLASSES, yticklabels=classification.PNEUMONIA_CLASSES)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("test/ confusion matrix")
    return figures.save_figure(figure, path)


def plot_roc(labels, probabilities, metrics, path):
    from sklearn import metrics as sklearn_metrics

    false_positive_rate, true_positive_rate, _ = sklearn_metrics.roc_curve(labels, probabilities)
    figure, axis = plt.subplots(figsize=(4.2, 4.0))
    axis.plot(false_positive_rate, true_positive_rate, label=f"AUC {metrics['roc_auc']:.3f}")
    axis.plot([0, 1], [0, 1], linestyle="--", color="gray")
    axis.scatter([1 - metrics["specificity"]], [metrics["sensitivity"]], color="red", zorder=3,
                 label=f"threshold {metrics['threshold']:.3f}")
    axis.set_xlabel("1 - specificity")
    axis.set_ylabel("sensitivity")
    axis.set_title("test/ ROC")
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


def plot_grad_cam(model, images, labels, probabilities, count, path):
    chosen = np.random.default_rng(1).permutation(len(images))[: max(1, count)]
    heatmaps = pneumonia.grad_cam(model, images[chosen].astype(np.float32))
    gray = images[chosen, ..., 0].astype(np.float32) / 255.0
    overlays = 0.6 * np.repeat(gray[..., None], 3, axis=-1) + 0.4 * plt.get_cmap("jet")(heatmaps)[..., :3]
    rows = [[gray[i], overlays[i]] for i in range(len(chosen))]
    titles = [f"{classification.PNEUMONIA_CLASSES[labels[i]]}, p={probabilities[i]:.2f}" for i in chosen]
    return figures.plot_image_rows(rows, ["test X-ray", "Grad-CAM"], path, row_titles=titles)
