import json

import pytest

from scripts import bench as bench_script
from tf_models.core import formats as formats_lib
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
    described = report["machine"]
    assert described["cores"] >= 1 and described["cpu_model"] and isinstance(described["features"], list)
    assert {"intra_op_threads", "inter_op_threads"} <= set(described["threads"])
    for name in ("matmul_float32", "conv3x3_float32"):
        peak = described["peak"][name]
        assert peak["flops_per_s"] == pytest.approx(peak["flops"] / peak["best_s"]) and peak["flops"] > 1e9
    for name, entry in report["tasks"].items():
        counts = entry["flops"]
        assert counts["training_per_image"] >= 3 * counts["inference_per_image"] > 0, name
        assert counts["uncounted_layers"] == [], name
        for key, share in entry["utilisation"]["training"].items():
            achieved = counts["training_per_image"] * entry["training"][key]["images_per_s"]
            assert share["flops_per_s"] == pytest.approx(achieved)
            assert share["of_conv_peak"] == pytest.approx(achieved / described["peak"]["conv3x3_float32"]["flops_per_s"])
        assert set(entry["utilisation"]["inference"]) == set(entry["inference"])
        for key in ("no_xla", "xla", "mixed_bfloat16"):
            figures = entry["training"][key]
            assert abs(figures["images_per_s"] * figures["median_step_s"] - entry["batch_size"]) < 1e-6, name
        assert entry["pipeline"]["images_per_s"] > 0 and entry["pipeline"]["ratio_to_training"] > 0
        assert set(entry["inference"]) == {"keras", *formats_lib.FORMATS}
        for figures in entry["inference"].values():
            assert figures["images_per_s"] > 0 and figures["batch1_latency_ms"] > 0
        assert set(entry["file_size_bytes"]) == {"keras", *formats_lib.FORMATS}
        assert min(entry["file_size_bytes"].values()) > 0 and entry["peak_resident_mb"] > 0
        fastest = entry["export"]["fastest_within_tolerance"]
        assert fastest["format"] in formats_lib.FORMATS, name
        assert entry["export"]["formats"]["tflite-int8"]["ops"].get("QUANTIZE", 0) >= 1, name
        assert not {"SHAPE", "PACK"} & set(entry["export"]["formats"]["tflite-int8-batch1"]["ops"]), name
    tutorial = report["tutorial_dcgan"]
    assert tutorial["ratio_to_reference"]["reference"] == 1.0
    assert set(tutorial["steps"]) == {"reference", "project", "project_xla", "project_mixed_bfloat16"}
    table = next((tmp_path / "bench").glob("*.md")).read_text()
    assert "| unet | tflite-int8 |" in table and "ratio to the tutorial's step" in table
    assert "of conv peak" in table and "| unet | tflite-int8-batch1 |" in table and "fastest within" in table
