"""The CI templates that tufrepo installs into a repository, and checks for outdated copies.

The templates live once, in the project's top-level ``workflows/`` directory; the package
reaches them as ``tufrepo/workflow_templates`` (a symlink in the source tree, a real
directory in an installed wheel). They call tufrepo's composite actions (``actions/``,
GitHub) and CI/CD components (``templates/``, GitLab) at a commit: installing replaces the
placeholders ``__TUFREPO_REF__`` (a full commit SHA: the commit this tufrepo was built from,
recorded by setup.py in ``data/source-commit``, or ``--ref``) and ``__TUFREPO_VERSION__``.
Everything else a user configures goes through CI variables and secrets, so an installed
copy that is not this version's template at this commit is either outdated, pinned to
another commit (``lagging``), or edited by hand, and ``check`` tells which.

GitHub: ``workflows/github/<name>.yml`` → ``.github/workflows/tufrepo-<name>.yml``.
GitLab: ``workflows/gitlab/tufrepo.gitlab-ci.yml`` → ``.gitlab/tufrepo.gitlab-ci.yml`` (or,
for an app, ``app-release.gitlab-ci.yml`` → ``.gitlab/tufrepo-app-release.gitlab-ci.yml``),
included from ``.gitlab-ci.yml`` (created when absent).
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from tufrepo import __version__
from tufrepo.errors import Error, InputError
from tufrepo.files import stage

__all__ = [
    "APP_TEMPLATE",
    "GITLAB_APP_INCLUDE",
    "GITLAB_CI",
    "GITLAB_INCLUDE",
    "CheckResult",
    "Pin",
    "Platform",
    "State",
    "Template",
    "check",
    "install",
    "pin",
    "render",
    "source_commit",
    "templates",
]

GITHUB_DIR = PurePosixPath(".github/workflows")
GITHUB_PREFIX = "tufrepo-"
GITLAB_CI = PurePosixPath(".gitlab-ci.yml")
GITLAB_INCLUDE = PurePosixPath(".gitlab/tufrepo.gitlab-ci.yml")
GITLAB_APP_INCLUDE = PurePosixPath(".gitlab/tufrepo-app-release.gitlab-ci.yml")
APP_TEMPLATE = "app-release.yml"
_GITLAB_SOURCE = "tufrepo.gitlab-ci.yml"
_GITLAB_APP_SOURCE = "app-release.gitlab-ci.yml"
REF_PLACEHOLDER = "__TUFREPO_REF__"
VERSION_PLACEHOLDER = "__TUFREPO_VERSION__"
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True, kw_only=True)
class Pin:
    """The tufrepo commit (full SHA) and version that installed workflows refer to."""

    ref: str
    version: str


def source_commit() -> str | None:
    """The git commit this tufrepo was built from, as recorded at build time (or None:
    an editable install, or a build outside a git checkout)."""
    record = resources.files("tufrepo") / "data" / "source-commit"
    try:
        text = record.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if _SHA.fullmatch(text) else None


def pin(ref: str | None = None) -> Pin:
    """The pin for ``ref`` (a full commit SHA), or for this tufrepo's own commit.

    Raises:
        InputError: ``ref`` is not a full lowercase commit SHA, or none was given and this
            tufrepo records no commit.
    """
    if ref is None:
        ref = source_commit()
        if ref is None:
            raise InputError(
                "this tufrepo records no source commit (an editable install, or built outside "
                "git): give the tufrepo commit to pin with --ref SHA"
            )
    elif not _SHA.fullmatch(ref):
        raise InputError(f"--ref must be a full 40-character commit SHA, not {ref!r}")
    return Pin(ref=ref, version=__version__)


def render(template: bytes, at: Pin) -> bytes:
    """A template with its placeholders replaced by ``at``'s commit and version."""
    return template.replace(REF_PLACEHOLDER.encode(), at.ref.encode()).replace(
        VERSION_PLACEHOLDER.encode(), at.version.encode()
    )


def _pinned_ref(template: bytes, installed: bytes) -> str | None:
    """The commit an installed copy pins, when it is ``template`` rendered at some commit
    and version (None: it differs from the template in more than its pin)."""
    text = template.decode("utf-8", errors="replace")
    groups = {REF_PLACEHOLDER: ("ref", "[0-9a-f]{40}"), VERSION_PLACEHOLDER: ("v", r"[\w.+!-]+")}
    pattern = ""
    seen: set[str] = set()
    for part in re.split(f"({REF_PLACEHOLDER}|{VERSION_PLACEHOLDER})", text):
        if part not in groups:
            pattern += re.escape(part)
            continue
        name, regex = groups[part]
        pattern += f"(?P={name})" if name in seen else f"(?P<{name}>{regex})"
        seen.add(name)
    m = re.fullmatch(pattern, installed.decode("utf-8", errors="replace"))
    return m.group("ref") if m and "ref" in seen else None


def _gitlab_ci_text(include: PurePosixPath) -> bytes:
    return (
        "# Installed by `tufrepo workflows install --gitlab`: add your own jobs below.\n"
        f"include:\n  - local: {include}\n"
    ).encode()


class Platform(enum.Enum):
    GITHUB = "github"
    GITLAB = "gitlab"


class State(enum.Enum):
    """What ``check`` found for one installed file."""

    UP_TO_DATE = "up-to-date"
    LAGGING = "lagging"  # this version's template, pinned to another tufrepo commit
    OUTDATED = "outdated"  # differs from this version's template
    MISSING = "missing"  # part of an installed set, but absent
    OBSOLETE = "obsolete"  # a tufrepo-*.yml that this version no longer ships
    NOT_INCLUDED = "not-included"  # .gitlab-ci.yml does not include the tufrepo include


@dataclass(frozen=True, kw_only=True)
class Template:
    """One template: its name under ``workflows/<platform>/`` and where it is installed."""

    platform: Platform
    name: str
    dest: PurePosixPath

    def content(self) -> bytes:
        """The template's bytes, from the installed package or the source tree."""
        root = resources.files("tufrepo") / "workflow_templates"
        return (root / self.platform.value / self.name).read_bytes()


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    path: PurePosixPath
    state: State
    ref: str | None = None  # LAGGING: the commit the installed copy pins

    def __bool__(self) -> bool:
        return self.state is State.UP_TO_DATE


def _github_names() -> list[str]:
    root = resources.files("tufrepo") / "workflow_templates" / Platform.GITHUB.value
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".yml"))


def templates(platform: Platform, *, app: bool = False) -> list[Template]:
    """The templates of ``platform``: the TUF repository's set, or the app's (``app``)."""
    if platform is Platform.GITLAB:
        if app:
            return [Template(platform=platform, name=_GITLAB_APP_SOURCE, dest=GITLAB_APP_INCLUDE)]
        return [Template(platform=platform, name=_GITLAB_SOURCE, dest=GITLAB_INCLUDE)]
    names = [APP_TEMPLATE] if app else [n for n in _github_names() if n != APP_TEMPLATE]
    return [
        Template(platform=platform, name=n, dest=GITHUB_DIR / f"{GITHUB_PREFIX}{n}") for n in names
    ]


def _checkout(repo: Path) -> Path:
    if not repo.is_dir():
        raise InputError(f"{repo} is not a directory")
    if not (repo / ".git").exists():
        raise InputError(f"{repo} is not a git checkout (no .git)")
    return repo


def _gitlab_ci_includes(repo: Path, include: PurePosixPath) -> bool | None:
    """Whether .gitlab-ci.yml names ``include`` (None: there is no .gitlab-ci.yml)."""
    path = repo / GITLAB_CI
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from e
    return str(include) in text


def _new_file_mode() -> int:
    """The mode open() would give a new file (0o666 less the umask), as mkstemp gives 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _write_all(repo: Path, files: Iterable[tuple[PurePosixPath, bytes]]) -> None:
    """Write every file atomically: all temp files first, then one os.replace each."""
    staged: list[tuple[Path, Path]] = []
    new_mode = _new_file_mode()
    try:
        for rel, data in files:
            dest = repo / rel
            if dest.is_dir():
                raise InputError(f"{dest} is a directory")
            mode = dest.stat().st_mode & 0o777 if dest.exists() else new_mode
            staged.append((stage(dest, data, mode=mode), dest))
        for tmp, dest in staged:
            tmp.replace(dest)
    except OSError as e:
        raise Error(f"cannot write the workflows: {e}") from e
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def install(repo: Path, platform: Platform, *, at: Pin, app: bool = False) -> list[tuple[str, str]]:
    """Write this version's templates, pinned to ``at``, into ``repo``; return (action,
    path) per file.

    Raises:
        InputError: ``repo`` is not a git checkout, or (GitLab) an existing .gitlab-ci.yml
            does not include the tufrepo include yet (nothing is written then).
        Error: a file could not be written.
    """
    repo = _checkout(repo)
    files: list[tuple[PurePosixPath, bytes]] = []
    report: list[tuple[str, str]] = []
    for t in templates(platform, app=app):
        data = render(t.content(), at)
        dest = repo / t.dest
        if not dest.exists():
            action = "created"
        elif dest.is_file() and dest.read_bytes() == data:
            action = "unchanged"
        else:
            action = "updated"
        files.append((t.dest, data))
        report.append((action, str(t.dest)))
    if platform is Platform.GITLAB:
        include = files[0][0]
        included = _gitlab_ci_includes(repo, include)
        if included is None:
            files.append((GITLAB_CI, _gitlab_ci_text(include)))
            report.append(("created", str(GITLAB_CI)))
        elif not included:
            raise InputError(
                f"{GITLAB_CI} exists but does not include {include}: add "
                f"'include: [{{local: {include}}}]' to it, then run this again"
            )
    _write_all(repo, files)
    return report


def _check_one(repo: Path, t: Template, at: Pin) -> CheckResult:
    dest = repo / t.dest
    if not dest.is_file():
        return CheckResult(path=t.dest, state=State.MISSING)
    data = dest.read_bytes()
    if data == render(t.content(), at):
        return CheckResult(path=t.dest, state=State.UP_TO_DATE)
    ref = _pinned_ref(t.content(), data)
    if ref is not None and ref != at.ref:
        return CheckResult(path=t.dest, state=State.LAGGING, ref=ref)
    return CheckResult(path=t.dest, state=State.OUTDATED)


def check(repo: Path, *, at: Pin) -> list[CheckResult]:
    """Compare the installed tufrepo workflows of ``repo`` with this version's templates
    pinned to ``at``.

    The installed sets are found by their paths: the GitHub TUF-repository set when any of
    its files is present (then all of them are expected), the app templates and the GitLab
    includes when present. Empty when nothing is installed.

    Raises:
        InputError: ``repo`` is not a git checkout.
    """
    repo = _checkout(repo)
    results: list[CheckResult] = []
    repo_set = templates(Platform.GITHUB)
    app_set = templates(Platform.GITHUB, app=True)
    if any((repo / t.dest).exists() for t in repo_set):
        results += [_check_one(repo, t, at) for t in repo_set]
    if any((repo / t.dest).exists() for t in app_set):
        results += [_check_one(repo, t, at) for t in app_set]
    known = {t.dest.name for t in repo_set + app_set}
    workflows_dir = repo / GITHUB_DIR
    if workflows_dir.is_dir():
        for p in sorted(workflows_dir.glob(f"{GITHUB_PREFIX}*.yml")):
            if p.name not in known:
                results.append(CheckResult(path=GITHUB_DIR / p.name, state=State.OBSOLETE))
    for gitlab_set in (templates(Platform.GITLAB), templates(Platform.GITLAB, app=True)):
        if any((repo / t.dest).exists() for t in gitlab_set):
            results += [_check_one(repo, t, at) for t in gitlab_set]
            if not _gitlab_ci_includes(repo, gitlab_set[0].dest):
                results.append(CheckResult(path=GITLAB_CI, state=State.NOT_INCLUDED))
    return results
