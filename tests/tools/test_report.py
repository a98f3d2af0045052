"""`make report`: results.md from the runs' own files, with the command behind every row."""

from tf_models.core import provenance, runs
from tf_models.tools import report


def write_run(logs_root, task, run, metrics, folder="evaluation"):
    run_dir = logs_root / task / run
    provenance.record(run_dir, f"python scripts/train_{task}.py --run-name {run}")
    runs.write_json(run_dir / "training_time.json", {"seconds": 600.0, "steps": 1234})
    runs.write_json(run_dir / folder / "metrics.json", metrics)
    provenance.record(run_dir / folder, f"python scripts/evaluate.py --task {task} --run {run}")
    return run_dir


def test_provenance_records_the_command_commit_and_machine(tmp_path):
    provenance.record(tmp_path, "python scripts/train_unet.py --data x")
    provenance.record(tmp_path, "python scripts/train_unet.py --data x --epochs 3")
    entries = provenance.read(tmp_path)
    assert [entry["command"] for entry in entries][-1].endswith("--epochs 3") and len(entries) == 2
    assert entries[0]["machine"]["cores"] >= 1 and entries[0]["machine"]["cpu"]
    assert "UTC" in entries[0]["date"] and isinstance(entries[0]["commit"], str)


def test_results_show_each_runs_scores_with_the_commands_that_made_them(tmp_path):
    logs = tmp_path / "logs"
    write_run(logs, "unet", "carvana", {"training_resolution": {"dice": 0.9871, "image_size": "96x144"},
                                        "original_resolution": {"dice": 0.9812, "iou": 0.9633}})
    write_run(logs, "pneumonia", "xray", {"test": {"accuracy": 0.915, "roc_auc": 0.965}, "threshold": 0.9},
              folder="evaluation-other")
    written = report.write(logs, tmp_path / "docs")
    text = (tmp_path / "docs" / "results.md").read_text()
    assert written == [tmp_path / "docs" / "results.md", tmp_path / "docs" / "results.json"]
    assert "original_resolution.dice 0.9812" in text and "| 10.0 | 1,234 |" in text
    assert "`python scripts/evaluate.py --task unet --run carvana`" in text
    assert "`python scripts/train_unet.py --run-name carvana`" in text
    assert "evaluation-other" in text and "test.roc_auc 0.965" in text
    assert text.index("## unet") < text.index("## pneumonia")


def test_a_run_with_nothing_recorded_is_left_out(tmp_path):
    runs.write_json(tmp_path / "logs" / "dcgan" / "scratch" / "config.json", {"data": "digits"})
    assert "No trained run was found." in report.results_markdown(tmp_path / "logs")[0]


def test_the_newest_bench_replaces_only_the_generated_section(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benchmarks.md").write_text(f"# Benchmarks\n\nHow to read.\n\n{report.BENCH_START}\nthe earlier section\n"
                                        f"{report.BENCH_END}\n\nAfter.\n")
    bench = tmp_path / "logs" / "bench"
    bench.mkdir(parents=True)
    (bench / "2026-01-01.md").write_text("| task | images/s |\n|---|---|\n| unet | 1 |\n")
    (bench / "2026-02-01.md").write_text("| task | images/s |\n|---|---|\n| unet | 2 |\n")
    report.write(tmp_path / "logs", docs)
    text = (docs / "benchmarks.md").read_text()
    assert "| unet | 2 |" in text and "the earlier section" not in text and "| unet | 1 |" not in text
    assert text.startswith("# Benchmarks\n\nHow to read.") and text.rstrip().endswith("After.")
    assert "2026-02-01.md" in text


def test_results_include_the_dcgan_races_and_comparisons_that_recorded_their_command(tmp_path):
    logs = tmp_path / "logs"
    race = logs / "experiments" / "race-18min"
    runs.atomic_write_text(race / "race.md", "| recipe | minutes to IS 50 % of real |\n|---|---|\n| project | 1.0 |\n")
    provenance.record(race, "python scripts/race.py --minutes 18 --name race-18min")
    runs.atomic_write_text(race / "comparison.md", "| run | IS proxy |\n|---|---|\n| a | 9.9 |\n")
    text, _ = report.results_markdown(logs)
    assert "### race-18min: race.md [1]" in text and "| project | 1.0 |" in text
    assert "`python scripts/race.py --minutes 18 --name race-18min`" in text
    assert "comparison.md" not in text and "9.9" not in text


def test_rows_of_runs_made_on_another_machine_are_kept_and_a_run_found_again_replaces_its_row(tmp_path):
    docs, first, second = tmp_path / "docs", tmp_path / "first", tmp_path / "second"
    write_run(first / "logs", "unet", "carvana", {"original_resolution": {"dice": 0.9812, "iou": 0.9633}})
    race = first / "logs" / "experiments" / "race-18min"
    runs.atomic_write_text(race / "race.md", "| recipe | minutes to IS 50 % of real |\n|---|---|\n| project | 1.0 |\n")
    provenance.record(race, "python scripts/race.py --minutes 18 --name race-18min")
    report.write(first / "logs", docs)
    write_run(second / "logs", "unet", "carvana", {"original_resolution": {"dice": 0.9901, "iou": 0.9805}})
    write_run(second / "logs", "pneumonia", "xray", {"test": {"accuracy": 0.931, "roc_auc": 0.971}})
    report.write(second / "logs", docs)
    text = (docs / "results.md").read_text()
    assert "original_resolution.dice 0.9901" in text and "0.9812" not in text
    assert "test.roc_auc 0.971" in text and "| project | 1.0 |" in text
    assert "`python scripts/race.py --minutes 18 --name race-18min`" in text
    assert "`python scripts/train_unet.py --run-name carvana`" in text
    report.write(tmp_path / "empty-logs", docs)
    rows = text[text.index("## unet"):]
    assert (docs / "results.md").read_text().endswith(rows)
