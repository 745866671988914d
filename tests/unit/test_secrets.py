"""Encryption at rest of sensitive settings: SecretBox and its key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import orjson
import pytest

from segue.destinations.secrets import MARKER, SECRET_FILE, SecretBox, SecretError, is_sealed


@pytest.mark.parametrize(
    "value", ["sk_live_abc123", "", "ünïcödé ☕", 12345, 1.5, True, None, ["a", 1], {"k": "v"}]
)
def test_seal_then_open_gives_the_value_back(value: object) -> None:
    box = SecretBox("a key")
    sealed = box.seal(value)
    assert is_sealed(sealed)
    assert set(sealed) == {MARKER}
    assert box.open(sealed) == value


def test_the_sealed_form_does_not_contain_the_plaintext() -> None:
    box = SecretBox("a key")
    sealed = box.seal("sk_live_abc123")
    encoded = orjson.dumps(sealed)
    assert b"sk_live_abc123" not in encoded
    assert b"c2tfbGl2ZV9hYmMxMjM" not in encoded  # nor its base64


def test_sealing_twice_gives_different_tokens() -> None:
    box = SecretBox("a key")
    assert box.seal("same")[MARKER] != box.seal("same")[MARKER]


@pytest.mark.parametrize("value", ["plain", 3, None, {"a": 1}, {MARKER: "x", "other": 1}])
def test_open_passes_unsealed_values_through(value: object) -> None:
    assert SecretBox("k").open(value) == value
    assert not is_sealed(value)


def test_a_wrong_key_is_a_clear_error() -> None:
    sealed = SecretBox("right key").seal("sk_live_abc123")
    with pytest.raises(SecretError, match=r"SEGUE_SECRET_KEY or secret\.key changed"):
        SecretBox("wrong key").open(sealed)


def test_a_tampered_token_is_refused() -> None:
    box = SecretBox("k")
    sealed = box.seal("secret")
    token = sealed[MARKER]
    forged = {MARKER: token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")}
    with pytest.raises(SecretError):
        box.open(forged)


def test_the_same_key_string_on_two_nodes_interoperates() -> None:
    sealed = SecretBox("shared").seal({"token": "t"})
    assert SecretBox("shared").open(sealed) == {"token": "t"}


# -- where the key comes from ---------------------------------------------------------
def test_key_file_is_created_0600_in_a_new_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"
    box = SecretBox.from_environment(data_dir, environ={})
    path = data_dir / SECRET_FILE
    assert path.is_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(path.read_text("utf-8").strip()) >= 40  # 32 random bytes, base64
    assert box.open(box.seal("x")) == "x"


def test_key_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        SecretBox.from_environment(tmp_path, environ={})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600


def test_the_key_file_is_reused_after_a_restart(tmp_path: Path) -> None:
    sealed = SecretBox.from_environment(tmp_path, environ={}).seal("sk_live_abc123")
    before = (tmp_path / SECRET_FILE).read_bytes()
    again = SecretBox.from_environment(tmp_path, environ={})
    assert (tmp_path / SECRET_FILE).read_bytes() == before
    assert again.open(sealed) == "sk_live_abc123"


def test_two_data_dirs_have_different_keys(tmp_path: Path) -> None:
    sealed = SecretBox.from_environment(tmp_path / "a", environ={}).seal("v")
    with pytest.raises(SecretError):
        SecretBox.from_environment(tmp_path / "b", environ={}).open(sealed)


def test_segue_secret_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    box = SecretBox.from_environment(tmp_path, environ={"SEGUE_SECRET_KEY": "from env"})
    assert not (tmp_path / SECRET_FILE).exists()
    assert SecretBox("from env").open(box.seal("v")) == "v"


def test_segue_secret_key_is_read_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGUE_SECRET_KEY", "process env")
    box = SecretBox.from_environment(tmp_path)
    assert SecretBox("process env").open(box.seal(1)) == 1
    assert not (tmp_path / SECRET_FILE).exists()
