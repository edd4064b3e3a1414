"""Every command docs/benchmarks.md shows runs, on the tiny grid, and does what the page says.

The commands are read from the page's ``sh`` blocks (``pip install`` lines are not run), in
the page's order, in one temporary folder (so a saved run is there for the commands that
compare it). Each is made small without losing any of its flags: ``pytest bench`` runs
``--bench-grid=tiny``; ``xpnet bench`` gets small ``--n-samples``, ``--hidden``, ``--repeat``
and ``--budget`` values. Commands that save or compare runs keep their order; the other
processes run two at a time, while the ``xpnet`` commands without an environment of their own
run in this process (``xpnet.cli.main``, the machine's ceilings measured on small arrays: the
page's commands would otherwise cost minutes of interpreter starts and 2048^3 products).
Nothing here looks at a timing: only exit statuses and what the output holds.
"""

import contextlib
import importlib.util
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from xpnet import cli
from xpnet.bench import timing
from xpnet.engine.kernels import numba_support

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "benchmarks.md"
PROGRAMS = {"xpnet": [sys.executable, "-m", "xpnet"], "pytest": [sys.executable, "-m", "pytest"],
            "pytest-benchmark": [sys.executable, "-c", "from pytest_benchmark.cli import main; main()"]}
TINY_N, TINY_H = ["64", "300"], ["4", "8"]  # a list of sizes keeps one or two of its values
TIMEOUT = 300


def doc_commands(text: str) -> list[str]:
    """The commands of the ``sh`` blocks of ``text``, continuation lines joined, comments kept."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith(("#", "pip ")):
                commands.append(line.strip())
    return commands


COMMANDS = doc_commands(DOC.read_text())


def parse(command: str):
    """``(env changes, argv tokens, stdout file)`` of one documented command line."""
    tokens = shlex.split(command, comments=True)
    env: dict = {}
    if tokens[0] == "env":
        tokens.pop(0)
        while tokens[0] == "-u" or "=" in tokens[0]:
            if tokens[0] == "-u":
                env[tokens[1]] = None
                del tokens[:2]
            else:
                name, value = tokens.pop(0).split("=", 1)
                env[name] = value
    while "=" in tokens[0] and not tokens[0].startswith("-"):
        name, value = tokens.pop(0).split("=", 1)
        env[name] = value
    stdout = None
    if ">" in tokens:
        at = tokens.index(">")
        stdout, tokens = tokens[at + 1], tokens[:at]
    return env, tokens, stdout


def _set(tokens: list, flag: str, value: str) -> list:
    """``tokens`` with ``flag`` set to ``value`` (replaced in place, or added at the end)."""
    out, i = [], 0
    found = False
    while i < len(tokens):
        if tokens[i] == flag:
            out += [flag, value]
            i += 2
            found = True
        elif tokens[i].startswith(flag + "="):
            out.append(f"{flag}={value}")
            i += 1
            found = True
        else:
            out.append(tokens[i])
            i += 1
    return out if found else out + [flag, value]


def _smaller(tokens: list, flag: str, tiny: list, default_count: int) -> list:
    if flag in tokens:
        count = len(tokens[tokens.index(flag) + 1].split(","))
    else:
        count = default_count
    return _set(tokens, flag, ",".join(tiny[:min(count, len(tiny))]))


def tiny(tokens: list) -> list:
    """The documented command made small, every flag it gives kept."""
    program, args = tokens[0], tokens[1:]
    if program == "pytest":
        args = [str(ROOT / "bench") if a == "bench" else a for a in args if not a.startswith("--bench-grid")]
        return PROGRAMS[program] + args + ["--bench-grid=tiny", "-p", "no:cacheprovider"]
    if program == "xpnet" and args[:1] == ["bench"] and args[1:2] != ["compare"]:
        sweep = "--sweep" in args
        args = _smaller(args, "--n-samples", TINY_N, 1 if sweep else 2)
        args = _smaller(args, "--hidden", TINY_H, 1 if sweep else 2)
        args = _set(args, "--repeat", "1")
        if sweep:
            kind = args[args.index("--sweep") + 1]
            args = _set(args, "--n-samples" if kind == "hidden" else "--hidden", "300" if kind == "hidden" else "8")
            args = _set(args, "--budget", "3M")  # a few sizes: rows up to about 1e4, hidden up to about 256
    return PROGRAMS[program] + args


def prepare(command: str) -> tuple:
    """``(argv, env, stdout file)`` the documented command runs as, made small."""
    env_changes, tokens, stdout = parse(command)
    assert tokens[0] in PROGRAMS, f"docs/benchmarks.md shows a command this test cannot run: {command}"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}  # measured with OpenBLAS's own choice
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return tiny(tokens), env, stdout


def run(command: str, cwd: Path) -> dict:
    argv, env, stdout = prepare(command)
    out = open(cwd / stdout, "w") if stdout else subprocess.PIPE  # noqa: SIM115 (closed below)
    try:
        proc = subprocess.run(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE, text=True, timeout=TIMEOUT)
    finally:
        if stdout:
            out.close()
    text = (cwd / stdout).read_text() if stdout else proc.stdout
    return {"command": command, "argv": argv, "returncode": proc.returncode, "out": text, "err": proc.stderr,
            "cwd": str(cwd)}


SMALL_CEILINGS = {"matmul_size": 128, "copy_elements": 2**16, "activation_elements": 2**16}


def in_process(command: str) -> bool:
    """An ``xpnet`` command with no environment of its own runs through ``cli.main`` here."""
    env_changes, tokens, _ = parse(command)
    return tokens[0] == "xpnet" and not env_changes


def run_here(command: str, cwd: Path) -> dict:
    """``run`` in this process: ``xpnet.cli.main`` in ``cwd``, its two streams captured."""
    _, tokens, stdout = parse(command)
    argv = tiny(tokens)[len(PROGRAMS["xpnet"]):]
    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timing, "default_ceiling_sizes", lambda backend: dict(SMALL_CEILINGS))
        os.chdir(cwd)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = cli.main(argv)
        finally:
            os.chdir(before)
    if stdout:
        (cwd / stdout).write_text(out.getvalue())
    return {"command": command, "argv": argv, "returncode": code, "out": out.getvalue(), "err": err.getvalue(),
            "cwd": str(cwd)}


def _same(command: str) -> tuple:
    """What makes two documented commands the same run: the small argv, the environment settings
    the command makes itself (not the process's, which a library may change meanwhile) and the
    output file."""
    env_changes, _, stdout = parse(command)
    return tuple(prepare(command)[0]), tuple(sorted(env_changes.items(), key=str)), stdout


ORDERED = ("--benchmark-save", "--benchmark-compare", "bench compare", "pytest-benchmark compare")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every documented command's result, by command text (each distinct one runs once)."""
    cwd = tmp_path_factory.mktemp("doc-commands")
    first = {}  # commands that run the same once made small (an `env -u` of an unset variable...) run once
    for command in COMMANDS:
        first.setdefault(_same(command), command)
    distinct = list(first.values())
    ordered = [c for c in distinct if any(word in c for word in ORDERED)]
    here = [c for c in distinct if c not in ordered and in_process(c)]
    free = [c for c in distinct if c not in ordered and c not in here]
    with ThreadPoolExecutor(max_workers=2) as pool:
        chain = pool.submit(lambda: [run(c, cwd) for c in ordered])
        rest = pool.map(lambda c: run(c, cwd), free)
        mine = [run_here(c, cwd) for c in here]
        rest = list(rest)
    by_command = {r["command"]: r for r in chain.result() + rest + mine}
    return {c: by_command[first[_same(c)]] for c in COMMANDS}


def test_the_page_shows_the_commands_this_test_knows():
    assert len(COMMANDS) >= 20
    for command in COMMANDS:
        env, tokens, _ = parse(command)
        assert tokens[0] in PROGRAMS, command
    shown = " ".join(COMMANDS)
    for needed in ("--benchmark-group-by=param:hidden,param:n_samples", "xpnet bench compare", "--sweep rows",
                   "--sweep hidden", "--source file", "pytest-benchmark compare", "--group-by=param:"):
        assert needed in shown, needed


def result(results: dict, text: str) -> dict:
    """The result of the documented command ``text`` (as shown, without its comment)."""
    (found,) = [r for command, r in results.items() if re.sub(r"\s{2,}#.*$", "", command) == text]
    return found


@pytest.mark.parametrize("command", list(dict.fromkeys(COMMANDS)))
def test_every_documented_command_runs(results, command):
    r = results[command]
    both = r["out"] + r["err"]
    if "--benchmark-compare-fail" in command and r["returncode"] == 1:  # a toy case >10% slower: as documented
        assert both.rstrip().endswith("PerformanceRegression: Performance has regressed."), both[-3000:]
        return
    assert "Traceback" not in both and "KeyError" not in both, both[-3000:]
    missing = missing_library(command)
    if missing:  # no GPU here, or an optional library not installed: one clear line naming it
        assert r["returncode"] == 2 and r["err"].startswith("xpnet: error:") and missing in r["err"], both[-2000:]
        assert r["err"].count("\n") == 1
        return
    assert r["returncode"] == 0, (r["argv"], both[-3000:])


LIBRARIES = {"cupy": "CuPy", "torch": "PyTorch", "jax": "jax"}  # a backend's module: how the error names it


def missing_library(command: str) -> str | None:
    """How xpnet's error names the library of a backend an ``xpnet`` command asks for that
    cannot run here (CuPy without a GPU; torch or jax not installed), or None."""
    _, tokens, _ = parse(command)
    if tokens[0] != "xpnet" or "--backend" not in tokens:
        return None
    names = tokens[tokens.index("--backend") + 1].split(",")
    for module in (name.split(":")[0].split(".")[0] for name in names):
        if module == "cupy" or (module in LIBRARIES and importlib.util.find_spec(module) is None):
            return LIBRARIES[module]
    return None


def test_the_documented_group_by_and_compare_commands_group_by_the_parameters(results):
    grouped = result(results, "pytest bench --backend numpy --backend torch "
                             "--benchmark-group-by=param:hidden,param:n_samples")
    assert "benchmark 'hidden=4 n_samples=32'" in grouped["out"] and "test_tiny_problem_overhead" in grouped["out"]
    (compare,) = [r for c, r in results.items() if c.startswith("pytest-benchmark compare")]
    assert "benchmark 'backend=numpy dtype=float32 hidden=4 n_samples=32'" in compare["out"] + compare["err"]


def test_xpnet_bench_compare_shows_samples_per_second_the_ratio_and_the_noise(results):
    r = result(results, "xpnet bench compare before after")
    lines = r["out"].splitlines()
    assert lines[0].startswith("A: ") and "before" in lines[0] and lines[1].startswith("B: ")
    assert lines[2].split() == ["benchmark", "A", "samples/s", "noise", "B", "samples/s", "noise", "B/A", "verdict"]
    rows = [line for line in lines[3:] if line.startswith("test_training_epoch[")]
    assert len(rows) >= 8
    for row in rows:
        fields = row.split()
        assert float(fields[1]) > 0 and fields[2].startswith("±") and float(fields[3]) > 0
        assert fields[5].endswith("x") and row.endswith(("faster", "slower", "within noise"))


def test_the_targets_table_reads_as_information(results):
    out = result(results, 'pytest bench -k "targets or tiny"')["out"]
    assert "speed targets (issues 5, 14 and 22)" in out and out.count("BLAS: ") == 1
    table = out[out.index("speed targets"):]
    assert " NO " not in table and "judged targets" not in table
    assert "(--bench-grid=tiny" in table or "measured but not judged" in table
    for name in ("trains from the CLI: peak RssAnon", "epoch from the page cache / in memory",
                 "x faster than jax.jit (OpenBLAS's own kernels)"):
        assert name in table, name


def test_skips_are_listed_once_per_reason(results):
    out = result(results, "pytest bench -k training_epoch --backend numpy --backend cupy "
                          "--benchmark-group-by=param:hidden,param:n_samples")["out"]
    if "cupy unavailable here" not in out:  # a machine with a GPU: nothing skipped, nothing listed
        assert "xpnet: skipped, once per reason" not in out
        return
    section = out[out.index("xpnet: skipped, once per reason"):].splitlines()[1:]
    reasons = [line for line in section if re.match(r"^\s+\d+ x ", line)]
    (cupy,) = [line for line in reasons if "cupy unavailable here" in line]
    assert cupy.split()[:2] == ["16", "x"]  # every CuPy case, one line


def test_the_sweep_commands_draw_their_curves(results, tmp_path):
    for command in COMMANDS:
        if "--sweep" in command and "--plot" in command:
            r = results[command]
            assert "plot written to" in r["out"] and "BLAS: " in r["out"].splitlines()[0]


PARAMS = {"backend", "dtype", "hidden", "n_samples", "input_dim", "classes", "kernels", "peer"}


def test_a_saved_run_holds_every_parameter_and_the_units(results, tmp_path_factory):
    """The documented save (tiny grid, one thread): what pytest-benchmark wrote."""
    (command,) = [c for c in COMMANDS if "--benchmark-save=before" in c]
    assert results[command]["returncode"] == 0
    (path,) = (Path(results[command]["cwd"]) / ".benchmarks").rglob("*_before.json")
    data = json.loads(path.read_text())
    machine = data["machine_info"]["xpnet"]
    assert machine["bench_threads"] == 1 and all(pool["num_threads"] == 1 for pool in machine["blas"])
    assert machine["numpy_blas"]["threads"] == 1 and machine["bench_grid"] == "tiny"
    epochs = data["benchmarks"]
    jit = 16 if numba_support.available() else 0  # each NumPy case again with the numba kernels
    assert len(epochs) == 16 + jit
    assert all(set(b["params"]) == PARAMS and b["params"]["peer"] == "none" for b in epochs)
    ran = {choice: {b["extra_info"]["kernels"] for b in epochs if b["params"]["kernels"] == choice}
           for choice in ("numpy", "jit")}
    assert ran["numpy"] == {"plain", "numpy-gram", "generic"}
    assert ran["jit"] == ({"plain", "numba-fused", "numba-layers"} if jit else set())
    for b in epochs:
        info = b["extra_info"]
        assert info["samples_per_second"] > 0 and info["percent_of_matmul_peak"] > 0 and info["spread"] >= 1
        assert info["samples_per_second"] == pytest.approx(b["params"]["n_samples"] / b["stats"]["median"])
        assert info["seconds_per_epoch"] == pytest.approx(b["stats"]["median"])
        assert info["samples_per_round"] == b["params"]["n_samples"] and info["rounds"] == b["stats"]["rounds"]


TARGETS = ("[14] tutorial shape N=2000 H=64: epoch / tanh floor",
           "[14] tutorial shape N=2000 H=64: x faster than jax.jit",
           "[14] tutorial shape N=2000 H=64: x faster than PyTorch eager",
           "[5] tutorial shape N=2000 H=64: x faster than the tutorial (float64)",
           "[5] tutorial shape N=2000 H=64: x faster than PyTorch eager",
           "[14] tutorial shape N=4000 H=32: epoch / tanh floor",
           "[14] tutorial shape N=4000 H=32: x faster than jax.jit",
           "[14] tutorial shape N=4000 H=32: x faster than PyTorch eager",
           "[5, 14] matrix-heavy 784->64->10, N=300: % of the matmul peak",
           "[14] matrix-heavy 784->64->10, N=300: x faster than jax.jit",
           "[22] matrix-heavy 784->64->10, N=300: x faster than jax.jit (OpenBLAS's own kernels)",
           "[5] memory: N=20000 H=256 trains, peak RSS (MiB)",
           "[22] a 0.00264 GB .npy (20000 rows x 32 + label) trains from the CLI: peak RssAnon (MiB)",
           "[22] 32->16->2, N=20000: epoch from the page cache / in memory",
           "tiny xor-4x3: time per iteration / the tutorial loop's",
           "tiny moons-200-h3: time per iteration / the tutorial loop's")


def test_the_targets_table_lists_every_target_measured_and_not_judged_on_the_tiny_grid(results):
    """Only the table's structure: its numbers are timings of a possibly busy machine."""
    lines = result(results, 'pytest bench -k "targets or tiny"')["out"].splitlines()
    start = next(i for i, line in enumerate(lines) if "xpnet: speed targets" in line)
    table = [line for line in lines[start + 1:] if line.strip()]
    assert table[0].startswith("BLAS: ")
    assert table[1].split()[:4] == ["target", "measured", "goal", "status"]
    rows = table[2:2 + len(TARGETS)]
    assert [next((t for t in TARGETS if row.startswith(t + " ")), row) for row in rows] == list(TARGETS)
    for target, row in zip(TARGETS, rows):
        fields = row[len(target):].split()
        if fields[:2] == ["not", "measured"]:  # a peer missing: the reason is the detail
            assert "not run" in row, row
            continue
        measured = float(fields[0])
        assert math.isfinite(measured) and measured > 0, row
        assert fields[1] in ("<=", ">=") and fields[4] == "-", row  # the goal, and not judged on the tiny grid
