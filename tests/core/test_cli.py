"""Scripts' shared entry: a user error is one `error:` line and status 2; --debug shows the traceback."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT
from tf_models.core import cli, devices

SCRIPTS = sorted(path for path in (REPO_ROOT / "scripts").glob("*.py") if path.name != "app.py")


def failing_main(argv):
    raise ValueError(f"{argv[0]}: folder not found.\nGive a folder with image/ and label/.")


def test_a_value_error_is_one_error_line_and_status_2(capsys):
    assert cli.run(failing_main, ["/missing"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: /missing: folder not found. Give a folder with image/ and label/.\n"
    assert captured.out == ""


def test_debug_flag_or_variable_lets_the_error_through(monkeypatch):
    seen = []

    def main(argv):
        seen.append(argv)
        raise ValueError("bad value")

    with pytest.raises(ValueError, match="bad value"):
        cli.run(main, ["--data", "x", "--debug"])
    assert seen[-1] == ["--data", "x"]
    monkeypatch.setenv(cli.DEBUG_VARIABLE, "1")
    with pytest.raises(ValueError, match="bad value"):
        cli.run(main, ["--data", "x"])


def test_other_errors_and_exit_statuses_are_kept():
    def buggy_main(argv):
        raise KeyError("not a user error")

    with pytest.raises(KeyError):
        cli.run(buggy_main, [])
    assert cli.run(lambda argv: 0, []) == 0
    assert cli.run(lambda argv: 3, []) == 3


def test_debug_after_a_double_dash_belongs_to_the_script():
    assert cli.split_debug_flag(["--debug", "a", "--", "--debug"]) == (["a", "--", "--debug"], True)
    assert cli.split_debug_flag(["a", "b"]) == (["a", "b"], False)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_script_runs_its_main_through_the_wrapper(script):
    text = script.read_text()
    assert "sys.exit(cli.run(main))" in text
    assert not re.search(r"sys\.exit\(main\(", text)


def run_script(*arguments, **environment):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT), **environment)
    return subprocess.run([sys.executable, *map(str, arguments)], cwd=REPO_ROOT, env=environment,
                          capture_output=True, text=True, timeout=300)


def tensorflow_error_lines(text):
    """TensorFlow's C++ error-level log lines (`E0000 ...`)."""
    return [line for line in text.splitlines() if re.match(r"^E\d{4} ", line)]


@pytest.mark.slow
def test_a_training_script_given_a_missing_folder(tmp_path):
    missing = tmp_path / "missing"
    arguments = (REPO_ROOT / "scripts" / "train_unet.py", "--data", missing, "--run-name", "cli",
                 "--logs-root", tmp_path / "logs", "--models-root", tmp_path / "models")
    plain = run_script(*arguments)
    assert plain.returncode == 2
    error_lines = [line for line in plain.stderr.splitlines() if line.startswith("error:")]
    assert error_lines == [f"error: {missing}: folder not found."]
    assert "Traceback" not in plain.stderr
    if not devices.has_gpu_device_nodes():
        assert tensorflow_error_lines(plain.stderr) == []

    debugged = run_script(*arguments, "--debug")
    assert debugged.returncode == 1
    assert "Traceback (most recent call last)" in debugged.stderr
    assert f"ValueError: {missing}: folder not found." in debugged.stderr
    assert not any(line.startswith("error:") for line in debugged.stderr.splitlines())
