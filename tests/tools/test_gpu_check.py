import json
import math

from scripts import gpu_check as gpu_check_script
from tf_models.tools import gpu_check
from tests.deployment_fixtures import tiny_overrides


def test_quick_gpu_check_reports_every_precision_and_float16_health(tmp_path):
    fields = tiny_overrides(tmp_path / "data")
    settings = [f"{task}.{field}={json.dumps(value)}" for task in ("dcgan", "unet")
                for field, value in fields[task].items()]
    flags = ["--quick", "--no-isolate", "--tasks", "dcgan,unet", "--output-dir", str(tmp_path / "check")]
    assert gpu_check_script.main(flags + [item for setting in settings for item in ("--set", setting)]) == 0
    report = json.loads(next((tmp_path / "check").glob("*.json")).read_text())
    assert set(report["tasks"]) == {"dcgan", "unet"} and report["runs_on"]
    for name, entry in report["tasks"].items():
        assert set(entry["training"]) == set(gpu_check.VARIANTS)
        for figures in entry["training"].values():
            assert abs(figures["images_per_s"] * figures["median_step_s"] - entry["batch_size"]) < 1e-6
        health = entry["float16"]
        assert health["steps"] == gpu_check.MODES["quick"].float16_steps and health["finite"], name
        assert all(math.isfinite(value) for value in health["last_logs"].values())
        assert health["loss_scale"] and all(value > 0 for value in health["loss_scale"].values()), name
        assert set(entry["parity_max_abs_vs_keras"]) == set(gpu_check.PARITY_FORMATS)
    assert set(report["tasks"]["dcgan"]["float16"]["loss_scale"]) == {"generator_optimizer",
                                                                       "discriminator_optimizer"}
    table = next((tmp_path / "check").glob("*.md")).read_text()
    assert "| unet |" in table and "mixed_float16_xla img/s" in table
