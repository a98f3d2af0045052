"""Tiny trained runs shared by the app tests, trained once per pytest session."""

from tests.conftest import shared_dataset
from tf_models.app import demo as app_demo


def tiny_models_root(tmp_path_factory):
    """saved_models folder with a tiny run of each task (reused by every app test module of the session)."""
    datasets_root = shared_dataset("mammography").parent
    for name in ("carvana_hr", "chest_xray"):
        shared_dataset(name)
    return app_demo.train_tiny_runs(tmp_path_factory.getbasetemp() / "app_tiny_runs", datasets_root)
