"""The registry: a task registered once is found by every command that lists tasks."""

import importlib.util

import keras
import numpy as np
import pytest
import tensorflow as tf
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT
from tf_models import registry
from tf_models.core import export, runner, runs
from tf_models.tools import bench, fault_suite

TOY = registry.TaskSpec(
    name="toy",
    module="tests.test_registry",
    task_class="ToyTask",
    config_class="ToyConfig",
    model_modules=(),
    evaluations={"toy": "tests.test_registry"},
    train_script="scripts/train_toy.py",
    tiny=registry.TinyData("digits"),
    bench_data="toy_data",
    app=registry.AppPage("Toy", "tests.test_registry:toy_page", "python scripts/train_toy.py"),
)
PRESETS = {"tiny": {}}
EVALUATED = []


class ToyConfig:
    pass


class ToyTask(runner.Task):
    """Doubles its input; enough of a task for the export path."""

    name = "toy"

    def serving_endpoints(self, model, paths):
        def double(values):
            return {"doubled": model(values)}

        return {"serving_default": (double, [tf.TensorSpec([None, 3], tf.float32, name="values")])}

    def deployment_examples(self, model, config, split, count):
        values = np.arange(count * 3, dtype=np.float32).reshape(count, 3)
        return {"values": values}, 2.0 * values

    def deployment_score(self, outputs, targets):
        return {"max_error": float(np.abs(outputs["doubled"] - targets).max())}


def add_arguments(parser):
    parser.add_argument("--run", required=True)


def evaluate(args):
    EVALUATED.append(args.run)
    return []


def toy_page():
    import streamlit as st

    st.header("Toy page")


@pytest.fixture
def toy_registered():
    registry.register(TOY)
    yield TOY
    registry.unregister(TOY.name)


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_builtin_task_loads_and_has_a_tiny_preset():
    assert registry.names() == ("dcgan", "pix2pix", "unet", "pneumonia")
    for spec in registry.specs():
        task, config_class, presets = spec.load()
        assert task.name == spec.name and "tiny" in presets
        assert set(presets["tiny"]) <= {field for field in config_class.__dataclass_fields__}
        assert (REPO_ROOT / spec.train_script).is_file()
        assert spec.app is None or registry.resolve(spec.app.render).__name__ in ("generate", "enhance", "segment",
                                                                                   "classify")


def test_unknown_task_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="choose one of dcgan, pix2pix, unet, pneumonia"):
        registry.get("toy")
    with pytest.raises(ValueError, match="TASK/RUN"):
        registry.parse_run("toy/run")


def test_a_task_registered_once_is_found_by_evaluate(toy_registered):
    evaluate_script = load_script("evaluate")
    assert evaluate_script.main(["--task", "toy", "--run", "first"]) == 0
    assert EVALUATED[-1] == "first"


def test_a_task_registered_once_is_found_by_bench_and_the_fault_suite(toy_registered):
    assert bench.task_overrides("quick")["toy"] == {"data": str(bench.SHARED / "toy_data"), "preset": "tiny"}
    trainers = fault_suite.default_trainers({name: f"data/{name}" for name in registry.names()})
    assert trainers["toy"].script == "scripts/train_toy.py"
    assert trainers["toy"].flags[:4] == ["--data", "data/toy", "--preset", "tiny"]
    assert registry.prepare_tiny_data(registry.get("toy"), "unused", "unused") == "digits"


def test_a_task_registered_once_is_exported_by_the_one_export_path(toy_registered, tmp_path):
    task, _, _ = registry.lookup(registry.parse_run("toy/doubler")[0])
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Rescaling(2.0)(inputs))
    paths = runs.RunPaths("toy", "doubler", tmp_path / "logs", tmp_path / "models").make_dirs()
    written = runner.export_run(task, model, None, paths, formats=("savedmodel",), examples=4)
    assert paths.keras_file in written and (paths.serving_dir / "1" / "saved_model.pb").is_file()
    report = runs.json.loads((paths.model_dir / "export_formats.json").read_text())
    assert report["task"] == "toy" and report["keras_score"]["max_error"] == 0.0
    served = export.run_saved_model(paths.serving_dir / "1", {"values": np.ones((2, 3), np.float32)})
    np.testing.assert_allclose(served["doubled"], 2.0)


def test_a_task_registered_once_has_an_app_page(toy_registered):
    app = AppTest.from_file(str(REPO_ROOT / "scripts" / "app.py"), default_timeout=60)
    app.query_params["page"] = "Toy"
    app.run()
    assert not app.exception
    assert "Toy" in app.sidebar.radio[0].options
    assert app.header[0].value == "Toy page"
