"""Owner-only files and directories (bob_common/private_files.py), whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

import pytest

from bob_common.private_files import private_dir, private_file, write_private


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    """The loosest umask: modes must not depend on the caller's."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_missing_directories_are_made_for_their_owner_only_and_existing_ones_are_left(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    private_dir(shared / "a" / "b")
    assert (_mode(shared / "a"), _mode(shared / "a" / "b")) == (0o700, 0o700)
    assert _mode(shared) == 0o755


def test_a_file_is_made_0600_and_an_open_one_is_narrowed_keeping_its_content(tmp_path):
    new = private_file(tmp_path / "d" / "bob.db")
    assert (_mode(new), new.read_bytes(), _mode(tmp_path / "d")) == (0o600, b"", 0o700)
    old = tmp_path / "old.db"
    old.write_bytes(b"rows")
    old.chmod(0o644)
    private_file(old)
    assert (_mode(old), old.read_bytes()) == (0o600, b"rows")


def test_written_settings_are_0600_from_the_start_and_replace_the_old_file(tmp_path):
    target = tmp_path / "conf" / "token"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "s3cret\n")
    assert (_mode(target), target.read_text()) == (0o600, "s3cret\n")
    assert sorted(p.name for p in target.parent.iterdir()) == ["token"]
