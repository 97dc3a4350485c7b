"""Every command answers --help with its flags and a pasteable example."""

import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
COMMANDS = [
    ("vt-prep", "synth", "gym"), ("vt-prep", "build"), ("vt-prep", "split"),
    ("vt-prep", "import", "fitness-aqa"), ("vt-prep", "import", "qved"), ("vt-prep", "import", "llava"),
    ("vt-prep", "import", "vqa"), ("vt-prep", "export", "llava"),
    ("vt-prep", "augment"), ("vt-prep", "balance"), ("vt-prep", "subset"), ("vt-prep", "degrade"),
    ("vt-prep", "frames"), ("vt-prep", "resize"),
    ("vt-train", "sft"), ("vt-train", "tiny-model"),
    ("vt-prep", "synth", "clinic"), ("vt-train", "curriculum"), ("vt-train", "curriculum-table"), ("vt-train", "launch"),
    ("vt-infer", "generate"),
    ("vt-analyze", "metrics"), ("vt-analyze", "report"),
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_has_example(command):
    result = subprocess.run([str(BIN / command[0]), *command[1:], "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--out" in result.stdout
    assert f"{command[0]} {command[1]}" in result.stdout.replace("\n", " ")  # the example command
