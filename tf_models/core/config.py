"""Run configs as dataclasses; command-line flags and presets derived from them.

A task's config is a dataclass extending `TrainConfig`. Every field becomes a
flag (`image_size` -> `--image-size`); a preset is a dict of field overrides,
applied before the flags a user gives, so `--preset baseline --epochs 3`
means "the baseline, but 3 epochs".
"""

import argparse
import dataclasses
import typing

from tf_models.core import precision, runs, strategy


def option(default, help):  # noqa: A002 - mirrors argparse's keyword
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass
class TrainConfig:
    """The flags every trainer shares (see DESIGN.md, command-line conventions)."""

    data: str = option("digits", "'digits', 'tfds:NAME' or a local folder")
    run_name: str = option("", "run folder name; running again with the same name resumes")
    preset: str = option("", "a named set of defaults for this task")
    epochs: int = option(10, "total number of epochs")
    steps_per_epoch: int = option(0, "batches per epoch; 0 means one pass over the data")
    batch_size: int = option(128, "global batch size (all replicas together)")
    image_size: int = option(28, "side of the square training images")
    learning_rate: float = option(2e-4, "learning rate")
    cosine_decay: bool = option(False, "lower the learning rates to 0 along a half cosine (Loshchilov & Hutter, "
                                       "2017) over the time budget (over the epochs without one)")
    seed: int = option(0, "seed of weights, noise and data order")
    precision: str = option("float32", "float32, mixed_float16 or mixed_bfloat16")
    strategy: str = option("default", "default, mirrored, multiworker or tpu")
    tpu: str = option("", "TPU address or name, with --strategy tpu")
    jit_compile: bool = option(False, "compile the train step with XLA")
    save_every_steps: int = option(500, "also checkpoint every N steps (0: epoch ends only)")
    time_budget_minutes: float = option(0.0, "stop when the run's training time, over all its invocations, "
                                             "reaches this many minutes (0: no limit)")
    fresh: bool = option(False, "delete an existing run of this name instead of resuming it")
    init_from: str = option("", "start from the weights of another run of this task (its model.keras), e.g. one "
                                "trained at a smaller --image-size (progressive resizing); the optimizer, "
                                "schedule and time budget start afresh")
    export: bool = option(True, "write model.keras, a SavedModel and TFLite at the end")
    tfds_data_dir: str = option("", "TensorFlow Datasets data_dir for tfds:NAME sources")
    logs_root: str = option("logs", "root of the log folders")
    models_root: str = option("saved_models", "root of the model folders")


def _flag_type(field_type):
    if isinstance(field_type, str):
        field_type = {"int": int, "float": float, "str": str, "bool": bool}[field_type]
    return field_type


def build_parser(config_class, description, epilog="", presets=None):
    parser = argparse.ArgumentParser(
        description=description, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        help_text = f"{field.metadata.get('help', '')} (default: {field.default!r})"
        if field.name == "preset" and presets:
            help_text = f"one of {', '.join(presets)}; fields a flag sets win over the preset"
        kind = _flag_type(hints[field.name])
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=help_text)
    return parser


def parse_config(config_class, argv=None, description="", epilog="", presets=None):
    """Parses flags into `config_class`: defaults, then the preset, then the flags."""
    presets = presets or {}
    parser = build_parser(config_class, description, epilog, presets)
    given = vars(parser.parse_args(argv))
    return make_config(config_class, presets, **given)


def make_config(config_class, presets=None, **overrides):
    """Builds and validates a config from a preset name (in overrides) and fields."""
    presets = presets or {}
    preset = overrides.get("preset", "")
    if preset and preset not in presets:
        raise ValueError(f"Unknown preset {preset!r}; choose one of {', '.join(presets) or 'none'}.")
    values = {**presets.get(preset, {}), **overrides}
    config = config_class(**values)
    validate(config)
    return config


def validate(config):
    """Checks the shared fields; a task whose `image_size` is not a number (U-Net's
    "HEIGHTxWIDTH") validates that field itself, in its config's `__post_init__`."""
    positive = ("epochs", "batch_size")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}.")
    for name in ("steps_per_epoch", "save_every_steps", "image_size", "time_budget_minutes"):
        value = getattr(config, name)
        if isinstance(value, (int, float)) and value < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more, got {value}.")
    if config.precision not in precision.POLICIES:
        raise ValueError(f"Unknown --precision {config.precision!r}; choose one of {', '.join(precision.POLICIES)}.")
    if config.strategy not in strategy.STRATEGIES:
        raise ValueError(f"Unknown --strategy {config.strategy!r}; choose one of {', '.join(strategy.STRATEGIES)}.")
    if config.run_name:
        runs.validate_run_name(config.run_name)
    if config.learning_rate <= 0:
        raise ValueError(f"--learning-rate must be positive, got {config.learning_rate}.")
