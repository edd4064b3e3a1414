"""Progress: a live tqdm bar on a terminal, plain periodic lines otherwise, nothing with --quiet."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from conftest import run_cli

TRAIN = ["train", "--backend", "numpy", "--n-samples", "100", "--epochs", "400"]


def test_plain_lines_when_not_a_terminal():
    proc = run_cli(*TRAIN, check=0)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("epoch")]
    assert len(lines) == 21  # epochs 0, 20, ..., 400: about 20 lines per run
    assert lines[-1].startswith("epoch 400/400  loss ") and " acc " in lines[-1] and " left " in lines[-1]
    assert "\r" not in proc.stderr


def test_quiet_silences_progress():
    proc = run_cli(*TRAIN, "--quiet", check=0)
    assert proc.stderr == ""
    assert "accuracy" in proc.stdout  # the results still go to stdout


def test_live_bar_on_a_terminal():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    proc = subprocess.Popen([sys.executable, "-m", "xpnet", *TRAIN], stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    out, _ = proc.communicate(timeout=120)
    os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "training:" in text and "400/400" in text and ("epoch/s" in text or "s/epoch" in text)
    assert "\r" in text and "loss=" in text and "acc=" in text  # redrawn in place, with the metrics
    assert "epoch 400/400" not in text  # no plain lines on a terminal
    assert b"accuracy" in out


def test_held_out_loss_beside_accuracy():
    proc = run_cli(*TRAIN, "--validation-fraction", "0.2", check=0)
    last = [line for line in proc.stderr.splitlines() if line.startswith("epoch")][-1].split()
    names = last[2::2][:4]
    assert names == ["loss", "acc", "val_loss", "val_acc"], last
    assert 0 < float(last[last.index("val_loss") + 1]) < 1 and 0 <= float(last[last.index("val_acc") + 1]) <= 1
