"""The per-user configuration file: who the signer is, their signer URI, the remote to push to.

``$TUFREPO_CONFIG``, else ``$XDG_CONFIG_HOME/tufrepo/config.toml`` (``~/.config/...``), a TOML
file of string keys::

    user = "@alice"
    signer = "filekey:/home/alice/.tufrepo/alice.key"
    push-remote = "fork"

It is read last: a command-line flag beats its environment variable, which beats the file.
No secret belongs here (passwords and PINs come from a prompt or their variables).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tufrepo.errors import InputError
from tufrepo.files import atomic_write

__all__ = ["CONFIG_ENV", "ENV", "KEYS", "config_path", "load", "save_value"]

CONFIG_ENV = "TUFREPO_CONFIG"
KEYS = {
    "user": "Who you are: @name (as in the metadata's key owners).",
    "signer": "Your signer URI (file2:, filekey:, hsm:, sigstore:, tpmhsm:).",
    "push-remote": "The git remote to push signing events to (a fork); default origin.",
}
ENV = {"user": "TUFREPO_USER", "signer": "TUFREPO_SIGNER", "push-remote": "TUFREPO_PUSH_REMOTE"}
"""The environment variable of each key (it beats the file)."""


def config_path() -> Path:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tufrepo" / "config.toml"


def load(path: Path | None = None) -> dict[str, str]:
    """The configured values (an absent file is an empty configuration).

    Raises:
        InputError: the file is unreadable, not TOML, or holds unknown keys or non-strings.
    """
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise InputError(f"cannot read the configuration {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise InputError(f"the configuration {path} is not valid TOML: {e}") from e
    import tomllib  # only when there is a file to parse (start-up time)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"the configuration {path} is not valid TOML: {e}") from e
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    bad = sorted(k for k, v in data.items() if not isinstance(v, str))
    if bad:
        raise InputError(f"{path}: {bad[0]} must be a string")
    return dict(data)


def save_value(key: str, value: str | None, path: Path | None = None) -> Path:
    """Set ``key`` (None: remove it) and write the file atomically; returns its path.

    Raises:
        InputError: an unknown key, or the file cannot be read or written.
    """
    if key not in KEYS:
        raise InputError(f"unknown configuration key {key!r} (known: {', '.join(KEYS)})")
    path = path or config_path()
    values = load(path)
    if value is None:
        values.pop(key, None)
    else:
        values[key] = value
    text = "".join(f"{k} = {json.dumps(v)}\n" for k, v in sorted(values.items()))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, text.encode())
    except OSError as e:
        raise InputError(f"cannot write the configuration {path}: {e.strerror}") from e
    return path
