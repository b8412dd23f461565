"""Every command's ``--help``, parsed: one spelling per option, values with a metavar,
defaults shown, and every environment variable a command reads named in its help."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tufrepo.cli import main

ROOT = Path(__file__).resolve().parent.parent
_CLICK_TYPES = {"TEXT", "INTEGER", "FLOAT", "PATH", "DIRECTORY", "FILENAME", "BOOLEAN"}
_SIGNING = ["delegate", "sign", "import"]
_SECRETS = [*_SIGNING, "online-sign"]
_HSM_CLIENT = ["hsm create-key", "hsm import", "hsm info", "hsm add-trusted",
               "hsm registry add", "hsm registry vouch", "hsm registry list",
               "hsm registry verify"]  # fmt: skip
ENV_READERS = {
    "TUFREPO_USER": [*_SIGNING, "key generate", "key show"],
    "TUFREPO_SIGNER": _SIGNING,
    "TUFREPO_PUSH_REMOTE": _SIGNING,
    "TUFREPO_CONFIG": ["config"],
    "TUFREPO_KEY_PASSWORD": [
        *_SECRETS,
        "key generate",
        "key show",
        "hsm keygen",
        "hsm add-trusted",
        "hsm registry vouch",
    ],
    "TUFREPO_HSM_PIN": [*_SECRETS, "key show"],
    "TUFREPO_SIGSTORE_TOKEN": [*_SECRETS, ""],
    "TUFREPO_SIGSTORE_TRUST_CONFIG": [""],  # the group's --sigstore-trust-config
    "TUFREPO_HSM_SERVER": _HSM_CLIENT,
    "TUFREPO_HSM_CA": _HSM_CLIENT,
}
"""Which commands read each variable ("" is the group itself)."""


def _commands(cmd: click.Command = main, path: str = "") -> dict[str, click.Command]:
    out = {path: cmd}
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            out.update(_commands(sub, f"{path} {name}".strip()))
    return out


COMMANDS = _commands()


def _help(path: str) -> str:
    result = CliRunner().invoke(main, [*path.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _options(path: str) -> dict[str, str]:
    """Long option name -> the metavar its help shows ("" for a flag), parsed from --help."""
    out = {}
    for line in _help(path).split("Options:", 1)[-1].splitlines():
        m = re.match(
            r"^\s{2}((?:-\w, )?--[\w-]+(?:\s*/\s*--[\w-]+)?)(?: ([^\s].*?))?(?:\s{2,}|$)", line
        )
        if m:
            name = m.group(1).split(", ")[-1].split(" / ")[0].split("/")[0].strip()
            out[name] = m.group(2) or ""
    return out


@pytest.mark.parametrize("path", [p for p in COMMANDS if p])
def test_option_naming(path: str) -> None:
    for name, metavar in _options(path).items():
        assert re.fullmatch(r"--[a-z][a-z0-9]*(-[a-z0-9]+)*", name), (path, name)
        assert metavar.split(" ")[0] not in _CLICK_TYPES, f"{path} {name}: metavar {metavar}"
    command = COMMANDS[path]
    for param in command.params:
        if not isinstance(param, click.Option) or param.is_flag or param.hidden:
            continue
        default = param.get_default(click.Context(command), call=False)
        if default not in (None, (), "", getattr(click.core, "UNSET", None)):
            assert param.show_default, f"{path} {param.opts}: default {param.default!r} not shown"


def test_one_spelling_per_option() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for path in COMMANDS:
        if not path or path.startswith("hsm") or isinstance(COMMANDS[path], click.Group):
            continue  # hsm's --signer names a policy file key, not a signer URI
        for name, metavar in _options(path).items():
            first = seen.setdefault(name, (path, metavar))
            assert first[1] == metavar, f"{name}: {first[0]} shows {first[1]!r}, {path} {metavar!r}"
    assert seen["--url"][1] == "URL"
    assert seen["--root"][1] == "FILE"
    assert seen["--repo"][1] == "DIR"
    assert seen["--valid-for"][1] == "DURATION"
    repo_helps = {re.sub(r"\s+", " ", _help(p).split("--repo", 1)[1].split("--", 1)[0])
                  for p in COMMANDS if "--repo" in _options(p)}  # fmt: skip
    assert len(repo_helps) == 1, repo_helps
    assert "[default: (current directory)]" in repo_helps.pop()


def test_delegate_shows_its_defaults() -> None:
    text = " ".join(_help("delegate").split())
    assert "[new role: 365; timestamp 2]" in text
    assert "[new role: 60; timestamp 1]" in text


def test_every_environment_variable_is_named_in_help() -> None:
    names = set()
    for source in (ROOT / "tufrepo").rglob("*.py"):
        names |= set(re.findall(r"\bTUFREPO_[A-Z_]+[A-Z]\b", source.read_text()))
    assert names == set(ENV_READERS), "map each variable a command reads in ENV_READERS"
    for env, readers in ENV_READERS.items():
        for path in readers:
            assert env in " ".join(_help(path).split()), f"`tufrepo {path} --help` misses {env}"


def test_verbose_after_the_subcommand(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["verify", "-v", "--repo", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "No such option" not in result.output
