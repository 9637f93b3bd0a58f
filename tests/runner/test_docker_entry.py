"""The container entry (docker_entry), run by the shells images ship as /bin/sh: it must
run exactly the step it is given, as an exec would, and exit with the step's code."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runner_svc.executors.docker.entry import END, ENTRY, MAX_SCRIPT_BYTES, final_step_input

# (name, argv prefix standing in for /bin/sh): the entry's own `/bin/sh` is the host's.
SHELLS = [
    pytest.param(["dash"], id="dash"),
    pytest.param(["bash", "--posix"], id="bash"),
    pytest.param(["busybox", "sh"], id="busybox"),
]


def _entry(
    shell: list[str], given: bytes, cwd: Path, *, let_go: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """Runs the entry with `given` on a stdin kept open, as the container's is, unless
    `let_go`."""
    if not shutil.which(shell[0]):
        pytest.skip(f"{shell[0]} is not installed")
    with subprocess.Popen(
        [*shell, *ENTRY[1:]],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "IMAGE_VAR": "image"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as entry:
        assert entry.stdin and entry.stdout and entry.stderr
        entry.stdin.write(given)
        entry.stdin.flush()
        if let_go:
            entry.stdin.close()
        try:
            code = entry.wait(timeout=10)
        except subprocess.TimeoutExpired:
            entry.kill()
            raise
        if not let_go:
            entry.stdin.close()
        return subprocess.CompletedProcess(
            entry.args, code, entry.stdout.read(), entry.stderr.read()
        )


@pytest.mark.parametrize("shell", SHELLS)
def test_the_entry_runs_the_step_with_its_variables_and_exit_code(shell, tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    cmd = (
        'echo "$GREETING|$QUOTED|$IMAGE_VAR|$(pwd)"\n'
        "printf 'back\\\\slash %s\\n' \"$0\" >&2\n"
        'cat; echo "stdin ended"\n'
        "exit 7"
    )
    given = final_step_input(
        cmd, {"GREETING": "hello world", "QUOTED": "it's\n$HOME"}, str(workdir)
    )
    assert given is not None

    done = _entry(shell, given, tmp_path)  # started elsewhere: the step moves to workdir

    assert done.returncode == 7
    assert done.stdout.decode() == f"hello world|it's\n$HOME|image|{workdir}\nstdin ended\n"
    assert done.stderr.decode() == "back\\slash /bin/sh\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_entry_exits_quietly_when_let_go_without_a_step(shell, tmp_path):
    done = _entry(shell, b"echo half a step\n", tmp_path, let_go=True)  # no END: not run
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def test_steps_the_entry_cannot_carry_go_as_execs():
    assert final_step_input("true", {"NOT-A-NAME": "x"}, "/w") is None
    assert final_step_input(f"echo a\n{END}\necho b", {}, "/w") is None
    assert final_step_input("x" * MAX_SCRIPT_BYTES, {}, "/w") is None
    assert final_step_input(f"echo '{END}'", {}, "/w") is not None  # not a line of its own
