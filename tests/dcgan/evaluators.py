"""A tiny digits evaluator shared by the GAN scoring tests (seconds of training)."""

from tf_models.core import config as config_lib
from tf_models.dcgan import evaluator_task


def train_digits_evaluator(root, epochs=2, run_name="digits28"):
    """Trains the `tiny` evaluator preset at 28 px under `root`/{logs,models}; returns its card."""
    config = config_lib.make_config(evaluator_task.EvaluatorConfig, evaluator_task.PRESETS, preset="tiny",
                                    image_size=28, epochs=epochs, run_name=run_name,
                                    logs_root=str(root / "logs"), models_root=str(root / "models"))
    return evaluator_task.train(config, verbose=0)[2]
