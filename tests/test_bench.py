import json
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_bench_reports_images_per_second_with_and_without_xla(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / "bench.py"), "--task", "dcgan", "--warmup", "1", "--steps", "2",
         "--output-dir", str(tmp_path), "--data", "digits", "--batch-size", "16", "--generator-filters", "8",
         "--discriminator-filters", "8", "--latent-dim", "16"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(next(tmp_path.glob("dcgan-*.json")).read_text())
    for key in ("no_xla", "xla"):
        assert report[key]["images_per_s"] > 0
        assert abs(report[key]["images_per_s"] * report[key]["median_step_s"] - 16) < 1e-6
