"""The secret store's keys (bob_common/config.py) and its sealing (entities_svc/secret_box.py),
as pure functions: keys from a variable or an owner-only file, the first one sealing, any
one opening; a value opens only under its own name; no key, no secrets."""

from __future__ import annotations

import os

import pytest
from cryptography.fernet import Fernet

from bob_common.config import ConfigError, EntitiesSettings
from entities_svc.errors import FailedPrecondition
from entities_svc.secret_box import SecretBox, Undecryptable

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def keys(env: dict[str, str]) -> tuple[str, ...]:
    return EntitiesSettings.from_env(env).secrets_keys


def key_file(tmp_path, text: str, mode: int = 0o600) -> str:
    path = tmp_path / "secrets.key"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_keys_come_from_the_variable_or_the_file_first_one_first(tmp_path):
    assert keys({}) == ()
    assert keys({"BOB_SECRETS_KEY": f"{NEW}, {OLD}"}) == (NEW, OLD)
    path = key_file(tmp_path, f"# rotated today\n{NEW}\n\n{OLD}  # the old one\n")
    assert keys({"BOB_SECRETS_KEY_FILE": path}) == (NEW, OLD)
    assert NEW not in repr(EntitiesSettings.from_env({"BOB_SECRETS_KEY": NEW}))


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"BOB_SECRETS_KEY": "not-a-key"}, "key 1 is not a Fernet key"),
        ({"BOB_SECRETS_KEY": f"{NEW},short"}, "key 2 is not a Fernet key"),
        ({"BOB_SECRETS_KEY": NEW, "BOB_SECRETS_KEY_FILE": "/x"}, "not both"),
        ({"BOB_SECRETS_KEY_FILE": "/nonexistent/secrets.key"}, "cannot be read"),
    ],
)
def test_bad_keys_stop_the_start_saying_why_without_showing_a_key(env, says):
    with pytest.raises(ConfigError, match=says) as caught:
        keys(env)
    assert NEW not in str(caught.value)


def test_a_key_file_others_may_read_is_refused(tmp_path):
    path = key_file(tmp_path, NEW, mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        keys({"BOB_SECRETS_KEY_FILE": path})
    with pytest.raises(ConfigError, match="holds no key"):
        keys({"BOB_SECRETS_KEY_FILE": key_file(tmp_path, "# empty\n")})


def test_a_sealed_value_opens_under_its_own_name_only():
    box = SecretBox([NEW])
    sealed = box.seal("deploy-token", "s3cret-value")
    assert "s3cret-value" not in sealed
    assert box.open("deploy-token", sealed) == "s3cret-value"
    with pytest.raises(Undecryptable, match="sealed for another secret"):
        box.open("other", sealed)
    with pytest.raises(Undecryptable, match="'x' cannot be decrypted"):
        SecretBox([OLD]).open("x", sealed)


def test_a_rotation_reads_with_either_key_and_seals_with_the_first():
    sealed_old = SecretBox([OLD]).seal("a", "value-a")
    box = SecretBox([NEW, OLD])
    assert box.open("a", sealed_old) == "value-a"
    assert not box.sealed_with_first(sealed_old)
    rotated = box.rotate(sealed_old)
    assert box.sealed_with_first(rotated)
    assert SecretBox([NEW]).open("a", rotated) == "value-a"


def test_without_a_key_only_secrets_fail():
    box = SecretBox(())
    assert not box.usable
    with pytest.raises(FailedPrecondition, match="no key"):
        box.seal("a", "b")
