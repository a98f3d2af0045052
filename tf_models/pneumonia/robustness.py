"""How a pneumonia model's output moves when validation films change in known ways.

A film from another scanner or clinic differs from the training films in
sharpness, tone curve and framing. Applying each change to the validation
films (uint8, at the model's input size) and scoring them again shows which
of these the model has learned as a class cue: a change that raises
P(PNEUMONIA) of NORMAL films moves them across the threshold. Only
validation films are changed, so the measurement can guide augmentation
choices without looking at test/.
"""

import cv2
import numpy as np
import tensorflow as tf

from tf_models.pneumonia import calibration, inference


def blur(films, sigma):
    return np.stack([cv2.GaussianBlur(film, (0, 0), sigma) for film in films])


def gamma(films, value):
    return 255.0 * (films / 255.0) ** value


def zoom(films, factor):
    """Zoom about the centre: factor > 1 crops and enlarges (tighter framing), < 1 shrinks onto black."""
    size = films.shape[1]
    changed = []
    for film in films:
        if factor >= 1.0:
            margin = int(round(size * (1.0 - 1.0 / factor) / 2))
            changed.append(cv2.resize(film[margin:size - margin, margin:size - margin], (size, size),
                                      interpolation=cv2.INTER_LINEAR))
        else:
            inner = int(round(size * factor))
            small = cv2.resize(film, (inner, inner), interpolation=cv2.INTER_AREA)
            canvas = np.zeros((size, size), np.float32)
            start = (size - inner) // 2
            canvas[start:start + inner, start:start + inner] = small
            changed.append(canvas)
    return np.stack(changed)


def sharpen(films, amount=0.7, sigma=1.0):
    """Unsharp masking: film + amount * (film - blurred film)."""
    return films + amount * (films - blur(films, sigma))


FILM_CHANGES = {
    "none": lambda films: films,
    "blur sigma 0.5 px": lambda films: blur(films, 0.5),
    "blur sigma 1 px": lambda films: blur(films, 1.0),
    "sharpen (unsharp mask 0.7)": sharpen,
    "gamma 0.8 (lighter background)": lambda films: gamma(films, 0.8),
    "gamma 1.25 (darker background)": lambda films: gamma(films, 1.25),
    "zoom in 15 % (tighter framing)": lambda films: zoom(films, 1.15),
    "zoom out 15 % (wider framing)": lambda films: zoom(films, 1 / 1.15),
}


def change_films(images, name):
    """`images` (uint8 [N, S, S, 1]) changed by FILM_CHANGES[name], as float32 grey levels in [0, 255]."""
    if name not in FILM_CHANGES:
        raise ValueError(f"Unknown film change {name!r}; choose one of {', '.join(FILM_CHANGES)}.")
    films = np.asarray(images, np.float32)[..., 0]
    return np.clip(FILM_CHANGES[name](films), 0.0, 255.0).astype(np.float32)[..., None]


def film_change_report(model, images, labels, decision, batch_size=64):
    """{change: mean calibrated P per class, sensitivity, specificity and ROC AUC at the stored decision}."""
    report = {}
    for name in FILM_CHANGES:
        films = tf.data.Dataset.from_tensor_slices((change_films(images, name), labels)).batch(batch_size)
        _, logits = inference.dataset_logits(model, films)
        probabilities = calibration.calibrated_probabilities(logits, decision["temperature"])
        metrics = calibration.binary_metrics(labels, probabilities, decision["threshold"])
        report[name] = {
            "mean_p_normal": float(probabilities[labels == 0].mean()),
            "mean_p_pneumonia": float(probabilities[labels == 1].mean()),
            **{key: metrics[key] for key in ("sensitivity", "specificity", "roc_auc")},
        }
    return report
