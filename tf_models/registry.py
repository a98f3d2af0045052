"""Every task, registered once.

A task is one `TaskSpec`: where its Task, config and presets live, the
modules that register its Keras classes, its `evaluate.py` entry points, its
training script, the real data its `tiny` preset trains on, and its app page.
Everything that lists tasks reads this registry: `evaluate.py --task`,
`export.py --run`, the bench, the fault suite, the app's pages and its demo
runs. Adding a task is one folder under `tf_models/` and one `register` call.

Names are strings ("module:attribute") resolved on use, so that reading the
registry imports no model and no TensorFlow.
"""

import dataclasses
import importlib
import pathlib
import shutil


@dataclasses.dataclass(frozen=True)
class AppPage:
    """A task's page in the Streamlit app.

    Args:
        name: the page's name in the sidebar (and in `?page=NAME`).
        render: "module:function" that draws the page (called with no argument).
        train_command: the command the page shows while no run is trained.
        artifacts: the run files the page loads, first found wins; "serving/"
            stands for the newest SavedModel under `serving/<N>/`.
        samples: a folder under the shared datasets whose images the page offers.
    """

    name: str
    render: str
    train_command: str
    artifacts: tuple = ("model.keras",)
    samples: str = ""


@dataclasses.dataclass(frozen=True)
class TinyData:
    """The real data a task's `tiny` preset trains on in the app demo and the fault suite.

    Args:
        source: a `--data` value that needs no copy (e.g. "digits"), or a folder
            under the shared datasets.
        subset: `((sub-folder, files kept), ...)` copied from `source` (same
            layout), so that a tiny run starts in seconds; empty: `source` is
            used as it is.
        flags: training flags the tiny run needs beyond `--preset tiny`.
    """

    source: str
    subset: tuple = ()
    flags: tuple = ()


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task.

    Args:
        name: the folder name under `logs/` and `saved_models/`, and the `--task` name.
        module: the module holding the Task class, the config class and `PRESETS`.
        task_class, config_class: their names in `module`.
        model_modules: modules whose import registers the task's serialisable
            Keras classes (needed to load its `.keras` files in safe mode).
        evaluations: `{evaluate.py --task name: module}`; each module has
            `add_arguments(parser)` and `evaluate(args) -> written paths`.
        train_script: the training script, relative to the repository.
        tiny: the data of the `tiny` preset.
        bench_data: the shared dataset folder the bench trains on.
        bench_overrides: config fields the full bench sets beyond the defaults.
        report_metrics: dotted keys of its `metrics.json` files that `make report` shows first.
        app: the app page, or None.
    """

    name: str
    module: str
    task_class: str
    config_class: str
    model_modules: tuple
    evaluations: dict
    train_script: str
    tiny: TinyData
    bench_data: str
    bench_overrides: dict = dataclasses.field(default_factory=dict)
    report_metrics: tuple = ()
    app: AppPage = None

    def load(self):
        """(task object, config class, presets)."""
        module = importlib.import_module(self.module)
        return getattr(module, self.task_class)(), getattr(module, self.config_class), module.PRESETS


_SPECS = {}


def register(spec):
    """Adds `spec`; a second spec of the same name replaces the first."""
    _SPECS[spec.name] = spec
    return spec


def unregister(name):
    _SPECS.pop(name, None)


def names():
    return tuple(_SPECS)


def get(name):
    if name not in _SPECS:
        raise ValueError(f"Unknown task {name!r}; choose one of {', '.join(_SPECS)}.")
    return _SPECS[name]


def specs():
    return tuple(_SPECS.values())


def lookup(name):
    """(task object, config class, presets) of the task called `name`."""
    return get(name).load()


def evaluations():
    """{evaluate.py --task name: module name} over every task."""
    return {key: module for spec in _SPECS.values() for key, module in spec.evaluations.items()}


def import_models():
    """Imports every task's model modules, so that `.keras` files of any task load in safe mode."""
    for spec in _SPECS.values():
        for module in spec.model_modules:
            importlib.import_module(module)


def resolve(reference):
    """The object a "module:attribute" string names."""
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


def prepare_tiny_data(spec, datasets_root, target):
    """The `--data` value of `spec`'s tiny runs: its source, or a copy of its subset under `target`.

    The copy keeps the source's layout and the first files of each listed
    sub-folder (in name order); a copy already there is reused.
    """
    if not spec.tiny.subset:
        return spec.tiny.source
    source, destination = pathlib.Path(datasets_root) / spec.tiny.source, pathlib.Path(target) / spec.tiny.source
    if not source.is_dir():
        raise ValueError(f"{source}: real data folder not found (give the shared datasets folder).")
    for folder, count in spec.tiny.subset:
        copied = destination / folder
        if copied.is_dir():
            continue
        files = sorted(path for path in (source / folder).iterdir()
                       if path.is_file() and path.suffix not in (".txt", ".csv"))
        copied.mkdir(parents=True)
        for path in files[:count]:
            shutil.copyfile(path, copied / path.name)
    return str(destination)


def parse_run(text):
    """'unet/carvana96' -> ('unet', 'carvana96')."""
    task, _, run = str(text).partition("/")
    if not run or task not in _SPECS:
        raise ValueError(f"--run must be TASK/RUN with TASK one of {', '.join(_SPECS)}, got {text!r}.")
    return task, run


register(TaskSpec(
    name="dcgan",
    module="tf_models.dcgan.task",
    task_class="DCGANTask",
    config_class="DCGANConfig",
    model_modules=("tf_models.dcgan.model", "tf_models.dcgan.tutorial"),
    evaluations={"gan": "tf_models.dcgan.evaluation", "gan-reference": "tf_models.dcgan.reference"},
    train_script="scripts/train_dcgan.py",
    tiny=TinyData("digits"),
    bench_data="mnist",
    report_metrics=("generated.inception_score", "real.inception_score", "generated.fcd", "real.fcd",
                    "generated.kid", "generated.distinct_fraction", "class_accuracy.overall"),
    app=AppPage("Generate", "tf_models.app.pages:generate",
                "python scripts/train_dcgan.py --preset demo --run-name demo"),
))
register(TaskSpec(
    name="pix2pix",
    module="tf_models.pix2pix.task",
    task_class="Pix2PixTask",
    config_class="Pix2PixConfig",
    model_modules=("tf_models.pix2pix.model",),
    evaluations={"pix2pix": "tf_models.pix2pix.evaluation"},
    train_script="scripts/train_pix2pix.py",
    tiny=TinyData("mammography", subset=(("", 16),)),
    bench_data="mammography",
    # The paper's generator (64 filters, depth 8) is too slow for a full bench on a CPU: the `cpu` preset's widths.
    bench_overrides=dict(generator_filters=32, generator_depth=6, discriminator_filters=32),
    report_metrics=("input_breast_psnr", "model_breast_psnr", "model_breast_ssim", "model_whole_psnr",
                    "bm3d_breast_psnr", "bm3d_breast_ssim", "nlmeans_breast_psnr", "bicubic_breast_psnr",
                    "lanczos_breast_psnr"),
    app=AppPage("Enhance", "tf_models.app.pages:enhance",
                "python scripts/train_pix2pix.py --data ../shared/datasets/mammography --degrade noise:0.05 "
                "--preset cpu_unet --time-budget-minutes 30 --run-name mias-noise-unet",
                artifacts=("serving/",), samples="mammography"),
))
register(TaskSpec(
    name="unet",
    module="tf_models.unet.task",
    task_class="UNetTask",
    config_class="UNetConfig",
    model_modules=("tf_models.unet.model",),
    evaluations={"unet": "tf_models.unet.evaluation"},
    train_script="scripts/train_unet.py",
    tiny=TinyData("carvana_hr", subset=(("train", 32), ("train_masks", 32))),
    bench_data="carvana_hr",
    report_metrics=("training_resolution.dice", "original_resolution.dice", "original_resolution.iou"),
    app=AppPage("Segment", "tf_models.app.pages:segment",
                "python scripts/train_unet.py --data ../shared/datasets/carvana_hr --preset carvana "
                "--run-name carvana",
                artifacts=("best.keras", "model.keras"), samples="carvana_hr/train"),
))
register(TaskSpec(
    name="pneumonia",
    module="tf_models.pneumonia.task",
    task_class="PneumoniaTask",
    config_class="PneumoniaConfig",
    model_modules=("tf_models.pneumonia.model",),
    evaluations={"pneumonia": "tf_models.pneumonia.evaluation"},
    train_script="scripts/train_pneumonia.py",
    tiny=TinyData("chest_xray", subset=tuple((f"{split}/{label}", 24) for split in ("train", "test")
                                             for label in ("NORMAL", "PNEUMONIA"))),
    bench_data="chest_xray",
    report_metrics=("test.accuracy", "test.sensitivity", "test.specificity", "test.roc_auc", "test.ece",
                    "threshold"),
    app=AppPage("Classify", "tf_models.app.pages:classify",
                "python scripts/train_pneumonia.py --data ../shared/datasets/chest_xray --preset default "
                "--run-name xray",
                samples="chest_xray/test/PNEUMONIA"),
))
