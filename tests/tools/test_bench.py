import json

from scripts import bench as bench_script
from tf_models.core import export
from tf_models import registry
from tests.deployment_fixtures import tiny_overrides


def test_quick_bench_reports_every_figure_of_every_task(tmp_path):
    settings = []
    for task, fields in tiny_overrides(tmp_path / "data").items():
        settings += [f"{task}.{field}={json.dumps(value)}" for field, value in fields.items()]
    flags = ["--quick", "--no-isolate", "--warmup", "1", "--steps", "2", "--output-dir", str(tmp_path / "bench")]
    assert bench_script.main(flags + [item for setting in settings for item in ("--set", setting)]) == 0
    report = json.loads(next((tmp_path / "bench").glob("*.json")).read_text())
    assert set(report["tasks"]) == set(registry.names()) and report["duration_s"] > 0
    for name, entry in report["tasks"].items():
        for key in ("no_xla", "xla"):
            figures = entry["training"][key]
            assert abs(figures["images_per_s"] * figures["median_step_s"] - entry["batch_size"]) < 1e-6, name
        assert entry["pipeline"]["images_per_s"] > 0 and entry["pipeline"]["ratio_to_training"] > 0
        assert set(entry["inference"]) == {"keras", *export.FORMATS}
        for figures in entry["inference"].values():
            assert figures["images_per_s"] > 0 and figures["batch1_latency_ms"] > 0
        assert set(entry["file_size_bytes"]) == {"keras", *export.FORMATS}
        assert min(entry["file_size_bytes"].values()) > 0 and entry["peak_resident_mb"] > 0
    tutorial = report["tutorial_dcgan"]
    assert tutorial["ratio_to_reference"]["reference"] == 1.0
    assert set(tutorial["steps"]) == {"reference", "project", "project_xla", "project_mixed_bfloat16"}
    table = next((tmp_path / "bench").glob("*.md")).read_text()
    assert "| unet | tflite-int8 |" in table and "ratio to the tutorial's step" in table
