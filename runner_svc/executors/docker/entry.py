"""pid 1 of every build container: it idles, and it runs the run's last step.

The entry waits in `read` until the runner writes the last step to the container's stdin
(ending with the END line), then runs it as its child with stdin from /dev/null, and
exits with the step's exit code. So the last step costs no exec, and the container stops
by itself instead of being killed before its removal: ~50 ms of the engine's CPU per run,
a fifth of what a one-step run costs it. Earlier steps are execs, as before.

The entry is never the step itself: a stop's `kill -TERM -1` (every process but pid 1)
reaches the step and spares the entry, which then reports how the step ended. Everything
it uses (`read`, `[`, `exit`) is built into every /bin/sh.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

# Ends the step's text. A step containing this very line goes as an exec instead.
END = "--bob-end-of-step-7f3a91c2--"

ENTRY = [
    "/bin/sh",
    "-c",
    "s=\n"
    "while IFS= read -r l; do\n"
    f'  if [ "$l" = "{END}" ]; then /bin/sh -c "$s" </dev/null; exit $?; fi\n'
    '  s="$s$l\n'
    '"\n'
    "done\n"
    "exit 0\n",  # stdin closed without a step: the container was let go
]

# The step's text is one argument of `sh -c`, which Linux caps at 128 KiB
# (MAX_ARG_STRLEN); an exec passes the variables beside it instead.
MAX_SCRIPT_BYTES = 96 * 1024
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def final_step_input(cmd: str, env: Mapping[str, str], workdir: str) -> bytes | None:
    """What to write to the entry's stdin so that it runs `/bin/sh -c cmd` with `env` in
    `workdir`, as an exec would; None when this step cannot go that way (a variable name
    the shell cannot export, or a step too long or containing the END line)."""
    if not all(_NAME.match(name) for name in env):
        return None
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    # A step before may have replaced the directory the entry was started in.
    lines.append(f"cd -- {shlex.quote(workdir)} || exit 126")
    lines.append(cmd)
    script = "\n".join(lines)
    if END in script.split("\n") or "\0" in script:
        return None
    data = f"{script}\n{END}\n".encode()
    return data if len(data) <= MAX_SCRIPT_BYTES else None
