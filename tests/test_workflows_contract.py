"""Every `tufrepo ...` command line in the CI templates exists, with those options.

The command lines are taken from the parsed workflows (GitHub `run:`, including those of
the tufrepo actions a workflow calls; GitLab components' `script:`),
split like a shell would (shlex; `>`, `|`, `&&`, `||`, `;` end a command), and parsed by
click against `tufrepo.cli.main` without running anything: a renamed command or flag, a
missing argument or an unexpected one fails here, not in a user's CI.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import gitlab_helpers as g
import pytest
import workflows_helpers as h

from tufrepo.cli import main

OPERATORS = {"|", "||", "&&", ";", "&", "(", ")"}
REDIRECTS = {">", ">>", "<", ">&"}


def shell_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of one shell line, as argument lists (redirections removed)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words: list[str] = []
    tokens = iter(list(lexer))
    for tok in tokens:
        if tok in OPERATORS:
            if words:
                yield words
            words = []
        elif tok in REDIRECTS:
            if words and words[-1].isdigit():
                words.pop()  # the file descriptor of "2>" (shlex splits it off)
            next(tokens, None)  # the redirection's target
        else:
            words.append(tok)
    if words:
        yield words


def template_lines() -> Iterator[tuple[str, str]]:
    """(where, shell line) for every run:/script: line of every template."""
    for path in h.GITHUB_FILES:
        for name, job in h.load(path)["jobs"].items():
            for run in h.runs(job):
                for line in run.splitlines():
                    yield f"{path.name}:{name}", line
    for path in h.GITLAB_FILES:
        for name, job in g.gitlab_jobs(h.load(path)):
            for line in g.script_lines(job):
                yield f"templates/{path.name}:{name}", line


def tufrepo_commands() -> list[tuple[str, list[str]]]:
    return [
        (where, words[1:])
        for where, line in template_lines()
        for words in shell_commands(line)
        if words[0] == "tufrepo"
    ]


def _without_file_checks(cmd: click.Command) -> click.Command:
    """A callback-free copy of ``cmd`` whose path/file values are plain strings.

    Values like "$RUNNER_TEMP/site" or a file that exists only in the user's repository
    are fine; everything else (option names, choices, arity, required ones) is checked.
    """
    params = []
    for p in cmd.params:
        q = copy.copy(p)
        q.callback = None
        if isinstance(p.type, click.Path | click.File):
            q.type = click.STRING
        params.append(q)
    return click.Command(cmd.name, params=params, callback=None)


def check_command(args: list[str]) -> str | None:
    """None when ``tufrepo ARGS`` parses; otherwise why not."""
    cmd: click.Command = main
    name = "tufrepo"
    parent: click.Context | None = None
    rest = list(args)
    path = ["tufrepo"]
    try:
        while isinstance(cmd, click.Group):
            if not rest:
                return f"{' '.join(path)}: no subcommand"
            ctx = cmd.make_context(name, list(rest), parent=parent)
            consumed = len(rest) - len(ctx.args) - 1
            if consumed < 0 or rest[consumed].startswith("-"):
                return f"{' '.join(path)}: no subcommand"
            name = rest[consumed]
            sub = cmd.get_command(ctx, name)
            if sub is None:
                return f"{' '.join(path)}: no command {name!r}"
            cmd, parent, rest = sub, ctx, ctx.args
            path.append(name)
        _without_file_checks(cmd).make_context(name, list(rest), parent=parent)
    except click.ClickException as e:
        return f"{' '.join(path)}: {e.format_message()}"
    return None


COMMANDS = tufrepo_commands()


def test_templates_use_the_cli() -> None:
    """The extraction finds the commands each workflow is built on."""
    found = {(where.split(":")[0], args[0]) for where, args in COMMANDS}
    assert {
        ("signing-event.yml", "update-targets"),
        ("signing-event.yml", "status"),
        ("online-sign.yml", "online-sign"),
        ("online-sign.yml", "publish"),
        ("publish.yml", "publish"),
        ("create-signing-events.yml", "expiry-events"),
        ("test.yml", "check-site"),
        ("app-release.yml", "event"),
        ("templates/repository.yml", "update-targets"),
        ("templates/repository.yml", "status"),
        ("templates/repository.yml", "online-sign"),
        ("templates/repository.yml", "publish"),
        ("templates/repository.yml", "expiry-events"),
        ("templates/repository.yml", "check-site"),
        ("templates/app-release.yml", "event"),
    } <= found


@pytest.mark.parametrize(
    ("where", "args"), COMMANDS, ids=[f"{w}:{shlex.join(a)}" for w, a in COMMANDS]
)
def test_template_command_exists(where: str, args: list[str]) -> None:
    assert check_command(args) is None, where


def test_shell_commands_split() -> None:
    line = 'tufrepo status --format markdown > "$F" && gh pr ready "$B" # done'
    assert list(shell_commands(line)) == [
        ["tufrepo", "status", "--format", "markdown"],
        ["gh", "pr", "ready", "$B"],
    ]
    assert list(shell_commands("a || b 2> err; c|d")) == [["a"], ["b"], ["c"], ["d"]]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["workflows", "install", "--github", "--repo", "$DIR"], None),
        (["-v", "workflows", "check", "--json"], None),
        (["workflows", "instal", "--github"], "no command 'instal'"),
        (["nosuch-command"], "no command 'nosuch-command'"),
        (["workflows", "install", "--githbu"], "No such option '--githbu'"),
        (["workflows", "check", "extra"], "unexpected extra argument"),
        (["workflows", "check", "--repo"], "requires an argument"),
        (["--nosuch", "workflows"], "No such option '--nosuch'"),
        (["workflows"], "no subcommand"),
        (["-v"], "no subcommand"),
    ],
)
def test_check_command_catches_renames(args: list[str], error: str | None) -> None:
    """The checker itself: a renamed command or option, or a wrong arity, is reported."""
    result = check_command(args)
    if error is None:
        assert result is None
    else:
        assert result is not None
        assert error in result


def test_check_command_runs_nothing(tmp_path: Path) -> None:
    """Parsing never calls a command: no file is written by `workflows install`."""
    assert check_command(["workflows", "install", "--github", "--repo", str(tmp_path)]) is None
    assert list(tmp_path.iterdir()) == []
