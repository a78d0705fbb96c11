"""Every entry point that runs eager torch starts with glibc's allocator settings, and no other does (issue 17).

The settings only work when they are in the environment before Python starts (inference/allocator.py), so the
end-to-end checks watch each interpreter start through a ``sitecustomize`` that writes down its environment.
No model runs here: the commands are asked for ``--help``, or their decision is called with a made-up argv.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import manage
from inference import __main__ as inference_cli
from inference.allocator import ALLOCATOR_SETTINGS

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTING = "MALLOC_TRIM_THRESHOLD_"
PROBE = f"""
import os
with open(os.environ["ALLOCATOR_PROBE_LOG"], "a") as log:
    log.write(os.environ.get("{SETTING}", "unset") + "\\n")
"""


def interpreter_starts(command: list[str], tmp_path: Path) -> list[str]:
    """The allocator setting each Python process started by ``command`` saw, in order (a re-exec starts again)."""
    (tmp_path / "sitecustomize.py").write_text(PROBE)
    log = tmp_path / "starts.log"
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ALLOCATOR_SETTINGS and name != "PHONECHECK_NO_REEXEC"
    }
    environment.update(
        ALLOCATOR_PROBE_LOG=str(log),
        PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), environment.get("PYTHONPATH")])),
    )
    subprocess.run(command, cwd=REPO_ROOT, env=environment, check=True, capture_output=True, timeout=120)
    return log.read_text().split()


def test_a_re_executed_process_keeps_what_it_printed_before() -> None:
    code = (
        "import os; from inference.allocator import ensure_allocator_settings; "
        f"print(os.environ.get({SETTING!r}, 'unset')); ensure_allocator_settings()"
    )
    # Buffered, as stdout to a pipe is unless PYTHONUNBUFFERED says otherwise: execve drops unflushed buffers.
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ALLOCATOR_SETTINGS and name != "PYTHONUNBUFFERED"
    }
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["unset", ALLOCATOR_SETTINGS[SETTING]]


def test_manage_py_retrain_starts_with_the_settings(tmp_path: Path) -> None:
    starts = interpreter_starts([sys.executable, "manage.py", "retrain", "--help"], tmp_path)
    assert starts == ["unset", ALLOCATOR_SETTINGS[SETTING]]


@pytest.mark.parametrize(
    ("argv", "eager"),
    [
        (["manage.py", "retrain", "--dry-run"], True),
        (["manage.py", "evaluate", "--json"], True),
        (["manage.py", "migrate"], False),
        (["manage.py", "runserver"], False),
        (["manage.py", "sync_models"], False),
        (["manage.py"], False),
    ],
)
def test_manage_py_sets_them_only_for_the_commands_that_run_eager_torch(argv: list[str], eager: bool) -> None:
    assert manage.runs_eager_torch(argv) is eager


@pytest.mark.parametrize(
    ("arguments", "onnxruntime_installed", "eager"),
    [
        (["--engine", "torch", "a.jpg"], True, True),
        (["--engine", "onnxruntime", "a.jpg"], True, False),
        (["a.jpg"], True, False),  # the shipped model's manifest asks for ONNX Runtime
        (["a.jpg"], False, True),
        (["--model", "no-such-version", "--engine", "torch", "a.jpg"], True, False),  # main reports it instead
    ],
)
def test_python_m_inference_sets_them_when_it_will_classify_on_torch(
    arguments: list[str], onnxruntime_installed: bool, eager: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("inference.__main__.onnxruntime_available", lambda: onnxruntime_installed)
    assert inference_cli.runs_eager_torch(inference_cli.build_parser().parse_args(arguments)) is eager


def test_python_m_inference_re_executes_before_loading_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def re_exec() -> None:
        calls.append("re-exec")
        raise SystemExit(0)  # what execve amounts to here: nothing after it runs in this process

    monkeypatch.setattr("inference.allocator.ensure_allocator_settings", re_exec)
    monkeypatch.setattr("inference.loader.load", lambda *args, **kwargs: pytest.fail("loaded before re-exec"))
    monkeypatch.setattr(sys, "argv", ["python -m inference", "--engine", "torch", "a.jpg"])
    monkeypatch.delitem(sys.modules, "inference.__main__", raising=False)  # run it afresh, as ``python -m`` does
    with pytest.raises(SystemExit):
        runpy.run_module("inference", run_name="__main__", alter_sys=False)
    assert calls == ["re-exec"]
