"""The CI templates are hardened: each rule checked on the real files and on broken copies.

Tools: zizmor (offline audits), actionlint, and check-jsonschema's vendored GitLab CI schema
(all in the `test` extra of pyproject.toml).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import gitlab_helpers as g
import pytest
import workflows_helpers as h
import yaml

CheckFn = Callable[[Path], list[str]]


@pytest.mark.parametrize("path", h.GITHUB_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("check", h.GITHUB_CHECKS, ids=lambda c: c.__name__)
def test_github_template_passes(path: Path, check: CheckFn) -> None:
    assert check(path) == []


def test_all_github_templates_present() -> None:
    names = {p.name for p in h.GITHUB_FILES}
    assert names == {
        "signing-event.yml",
        "online-sign.yml",
        "publish.yml",
        "create-signing-events.yml",
        "test.yml",
        "app-release.yml",
    }


def test_all_gitlab_templates_present() -> None:
    assert [p.name for p in h.GITLAB_FILES] == ["app-release.yml", "repository.yml"]
    assert [p.name for p in h.GITLAB_INCLUDES] == [
        "app-release.gitlab-ci.yml",
        "tufrepo.gitlab-ci.yml",
    ]


@pytest.mark.parametrize("path", h.GITLAB_FILES, ids=lambda p: p.name)
def test_gitlab_template_passes(path: Path) -> None:
    assert g.check_gitlab(path) == []


CHECKOUT = "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2"
ONLINE_SIGN_ACTION = "tufrepo/tufrepo/actions/online-sign@__TUFREPO_REF__"
# (file, broken text for old -> new, the check that must notice)
MUTATIONS: list[tuple[str, str, str, CheckFn]] = [
    ("signing-event.yml", CHECKOUT, "actions/checkout@v4", h.check_pins),
    (
        "signing-event.yml",
        CHECKOUT,
        "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683",
        h.check_pins,
    ),
    ("test.yml", "permissions: {}\n", "permissions: read-all\n", h.check_permissions),
    (
        "test.yml",
        "      issues: write # opens or updates the failure issue\n",
        "      issues: write\n      contents: write\n",
        h.check_permissions,
    ),
    (
        "publish.yml",
        "      contents: read # reads main\n",
        "      contents: read\n      id-token: write\n",
        h.check_permissions,
    ),
    (
        "create-signing-events.yml",
        "      contents: write # pushes sign/** branches\n",
        "      contents: write\n      pages: write\n",
        h.check_permissions,
    ),
    (
        "signing-event.yml",
        "      pull-requests: write # opens the pull request, comments, marks it ready\n",
        "      pull-requests: write\n      actions: write\n",
        h.check_permissions,
    ),
    (
        "signing-event.yml",
        "      contents: write # pushes the updated targets metadata to this sign/** branch\n",
        "      contents: read\n",
        h.check_permissions,
    ),
    (
        "signing-event.yml",
        "  push:\n",
        "  pull_request_target:\n  push:\n",
        h.check_triggers_and_caches,
    ),
    (
        "test.yml",
        "  workflow_dispatch:\n",
        "  workflow_dispatch:\n  workflow_run:\n    workflows: [x]\n",
        h.check_triggers_and_caches,
    ),
    (
        "test.yml",
        "          root: metadata/root_history/1.root.json\n",
        "          root: metadata/root_history/1.root.json\n          cache: pip\n",
        h.check_triggers_and_caches,
    ),
    (
        "publish.yml",
        "          persist-credentials: false\n",
        "          persist-credentials: true\n",
        h.check_checkout_credentials,
    ),
    (
        "test.yml",
        "          persist-credentials: false\n",
        "",
        h.check_checkout_credentials,
    ),
    (
        "signing-event.yml",
        'gh pr ready "$BRANCH"',
        "gh pr ready ${{ github.head_ref }}",
        h.check_run_lines,
    ),
    (
        "signing-event.yml",
        'gh pr ready "$BRANCH"',
        "gh pr ready $BRANCH",
        h.check_run_lines,
    ),
    (
        "app-release.yml",
        "      TAG: ${{ github.event.release.tag_name }}\n",
        "      TAG: v1\n      X: a ${{ github.event.release.name }}\n",
        h.check_run_lines,
    ),
    (
        "online-sign.yml",
        ONLINE_SIGN_ACTION,
        "tufrepo/tufrepo/actions/online-signer@__TUFREPO_REF__",
        h.check_install_pin,
    ),
    (
        "online-sign.yml",
        "      - name: Online sign\n",
        '      - run: pip install "tufrepo==0.1.0"\n      - name: Online sign\n',
        h.check_install_pin,
    ),
    (
        "online-sign.yml",
        ONLINE_SIGN_ACTION,
        "tufrepo/tufrepo/actions/online-sign@" + "f" * 40,
        h.check_install_pin,
    ),
    (
        "online-sign.yml",
        ONLINE_SIGN_ACTION,
        "tufrepo/tufrepo/actions/online-sign@main",
        h.check_pins,
    ),
    (
        "online-sign.yml",
        "    environment: tufrepo-online-signing\n",
        "",
        h.check_secrets_need_environment,
    ),
    (
        "online-sign.yml",
        "    environment: tufrepo-online-signing\n",
        "    environment: other\n",
        h.check_online_and_publish_only_from_main,
    ),
    (
        "online-sign.yml",
        "    branches: [main]\n",
        '    branches: [main, "sign/**"]\n',
        h.check_online_and_publish_only_from_main,
    ),
    (
        "publish.yml",
        "    if: github.ref == 'refs/heads/main'\n",
        "",
        h.check_online_and_publish_only_from_main,
    ),
    (
        "publish.yml",
        "      name: github-pages\n",
        "      name: other\n",
        h.check_online_and_publish_only_from_main,
    ),
    (
        "signing-event.yml",
        "      pull-requests: write # opens the pull request, comments, marks it ready\n",
        "      pull-requests: write\n      id-token: write\n",
        h.check_signing_event_isolated,
    ),
    (
        "signing-event.yml",
        "      GH_TOKEN: ${{ github.token }}\n",
        "      GH_TOKEN: ${{ secrets.ONLINE }}\n",
        h.check_signing_event_isolated,
    ),
    (
        "signing-event.yml",
        "    if: startsWith(github.ref, 'refs/heads/sign/')\n",
        "",
        h.check_signing_event_isolated,
    ),
    (
        "signing-event.yml",
        "    needs: update-targets\n",
        "    needs: update-targets\n    environment: tufrepo-online-signing\n",
        h.check_signing_event_isolated,
    ),
]


@pytest.mark.parametrize(
    ("name", "old", "new", "check"),
    MUTATIONS,
    ids=[f"{m[0]}-{m[3].__name__}-{i}" for i, m in enumerate(MUTATIONS)],
)
def test_github_check_catches(
    tmp_path: Path, name: str, old: str, new: str, check: CheckFn
) -> None:
    text = (h.GITHUB_DIR / name).read_text()
    assert old in text, f"mutation no longer applies to {name}: {old!r}"
    broken = tmp_path / name
    broken.write_text(h.render_text(text.replace(old, new, 1)))
    assert check(broken) != []


GITLAB_MUTATIONS: list[tuple[str, str]] = [
    ("  needs: [tufrepo-status]\n", "  needs: [tufrepo-statuz]\n"),
    (
        "tufrepo-check-site:\n  extends: [.tufrepo]\n  stage: test\n  rules:\n    - if: ",
        "tufrepo-check-site:\n  extends: [.tufrepo]\n  stage: test\n  rules:\n    - if: $X && ",
    ),
    ("  interruptible: false\n  variables:", "  cache:\n    paths: [.pip]\n  variables:"),
    (
        "    - tufrepo update-targets --push\n",
        "    - tufrepo update-targets --push\n    - echo $CI_COMMIT_MESSAGE\n",
    ),
    ("    - bash /tmp/tufrepo-source/actions/install.sh\n", '    - pip install "tufrepo==0.1.0"\n'),
    ("    - bash /tmp/tufrepo-source/actions/install.sh\n", ""),
    ("      regex: ^[0-9a-f]{40}$\n", "      default: main\n"),
    ("    TUFREPO_REF: $[[ inputs.tufrepo-ref ]]\n", "    TUFREPO_REF: main\n"),
    (
        (
            "  stage: test\n  needs: [tufrepo-update-targets]\n  script:\n"
            "    - tufrepo status --format markdown"
        ),
        (
            "  stage: test\n  needs: [tufrepo-update-targets]\n  variables:\n"
            "    X: $TUFREPO_ONLINE_KEY_PASSWORD\n  script:\n    - tufrepo status --format markdown"
        ),
    ),
    ("    name: tufrepo-online-signing\n", "    name: production\n"),
    (
        "    - if: $CI_COMMIT_BRANCH != $CI_DEFAULT_BRANCH\n      when: never\n",
        "",
    ),
    (
        "tufrepo-event-ready:\n  extends: [.tufrepo, .signing-event-rules]\n",
        (
            "tufrepo-event-ready:\n  extends: [.tufrepo, .signing-event-rules]\n"
            "  id_tokens:\n    T:\n      aud: x\n"
        ),
    ),
]


GITLAB_APP_MUTATIONS: list[tuple[str, str]] = [
    (
        '    - if: $CI_COMMIT_TAG && $CI_COMMIT_REF_PROTECTED == "true"\n',
        "    - if: $CI_COMMIT_TAG\n",
    ),
    ('--remote "$TUFREPO_REPOSITORY_URL"', "--remote $TUFREPO_REPOSITORY_URL"),
    ("    - git -C /tmp/tufrepo-source checkout --quiet --detach FETCH_HEAD\n", ""),
]


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [(h.GITLAB_FILE, *m) for m in GITLAB_MUTATIONS]
    + [(h.GITLAB_APP_FILE, *m) for m in GITLAB_APP_MUTATIONS],
)
def test_gitlab_check_catches(tmp_path: Path, path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"mutation no longer applies: {old!r}"
    broken = tmp_path / path.name
    broken.write_text(text.replace(old, new, 1))
    assert g.check_gitlab(broken) != []


def test_publish_jobs_equal_in_online_sign() -> None:
    """online-sign.yml deploys with the same jobs as publish.yml (one can't drift)."""
    online = h.load(h.GITHUB_DIR / "online-sign.yml")["jobs"]
    publish = h.load(h.GITHUB_DIR / "publish.yml")["jobs"]
    for name in ("build-site", "deploy-site"):
        a = {k: v for k, v in online[name].items() if k not in ("needs", "if")}
        b = {k: v for k, v in publish[name].items() if k not in ("needs", "if")}
        assert a == b, name


def test_unquoted_expansions() -> None:
    assert h.unquoted_expansions('a "$X" \'$Y\' "${Z}/$W"') == []
    assert h.unquoted_expansions("a $X ${Y}") == ["$X", "${Y}"]
    assert h.unquoted_expansions('a "b" $(cat f)') == ["$("]


# --- the tools ------------------------------------------------------------------------------


def _checkout_with(tmp_path: Path, *, local_actions: bool) -> Path:
    """A git checkout with the rendered templates where GitHub reads them, and tufrepo's
    actions/ beside them (zizmor audits both). With ``local_actions``, the workflows call
    those actions as ./actions/<name>, so that actionlint checks every call's inputs
    against the action's metadata."""
    wf = tmp_path / ".github" / "workflows"
    wf.mkdir(parents=True)
    shutil.copytree(h.ACTIONS_DIR, tmp_path / "actions")
    for p in h.GITHUB_FILES:
        text = p.read_text()
        if local_actions:
            text = re.sub(
                re.escape(h.ACTIONS_REPO) + r"([\w-]+)@[0-9a-f]{40} # v\S+", r"./actions/\1", text
            )
        (wf / p.name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


@pytest.fixture
def github_checkout(tmp_path: Path) -> Path:
    return _checkout_with(tmp_path, local_actions=False)


@pytest.fixture
def actionlint_checkout(tmp_path: Path) -> Path:
    return _checkout_with(tmp_path, local_actions=True)


def _zizmor(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [h.tool("zizmor"), "--offline", "--format", "json", "--no-progress", str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_zizmor_zero_findings(github_checkout: Path) -> None:
    result = _zizmor(github_checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_zizmor_audits_the_actions(github_checkout: Path) -> None:
    action = github_checkout / "actions" / "publish" / "action.yml"
    action.write_text(
        action.read_text().replace(
            '--previous "$PREVIOUS_URL"', '--previous "${{ inputs.previous-url }}"'
        )
    )
    result = _zizmor(github_checkout)
    assert result.returncode != 0
    assert "template-injection" in result.stdout


def test_zizmor_notices_injection(github_checkout: Path) -> None:
    wf = github_checkout / ".github" / "workflows" / "signing-event.yml"
    wf.write_text(
        wf.read_text().replace('gh pr ready "$BRANCH"', "gh pr ready ${{ github.head_ref }}")
    )
    result = _zizmor(github_checkout)
    assert result.returncode != 0
    assert "template-injection" in result.stdout


def _actionlint(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [h.tool("actionlint"), "-no-color"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_actionlint_passes(actionlint_checkout: Path) -> None:
    result = _actionlint(actionlint_checkout)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("rel", "old", "new", "named"),
    [
        (".github/workflows/test.yml", "steps.check.outcome", "steps.nosuch.outcome", "nosuch"),
        # a renamed input of an action, still passed by a workflow
        ("actions/check-site/action.yml", "  valid-for:\n", "  margin:\n", "valid-for"),
    ],
)
def test_actionlint_notices_errors(
    actionlint_checkout: Path, rel: str, old: str, new: str, named: str
) -> None:
    path = actionlint_checkout / rel
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new, 1))
    result = _actionlint(actionlint_checkout)
    assert result.returncode != 0
    assert named in result.stdout


def _gitlab_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [h.tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _component_jobs(path: Path, tmp_path: Path) -> Path:
    """The jobs of a component as GitLab sees them after interpolating its inputs."""
    text = path.read_text().split("\n---\n", 1)[1]
    text = text.replace("$[[ inputs.tufrepo-ref ]]", h.TEST_REF)
    text = text.replace("$[[ inputs.tufrepo-source ]]", "https://gitlab.example/tufrepo.git")
    assert "$[[" not in text
    out = tmp_path / f"jobs-{path.name}"
    out.write_text(text)
    return out


@pytest.mark.parametrize("path", h.GITLAB_FILES, ids=lambda p: p.name)
def test_gitlab_schema_valid(path: Path, tmp_path: Path) -> None:
    result = _gitlab_schema(_component_jobs(path, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    header = tmp_path / f"spec-{path.name}"
    header.write_text(yaml.safe_dump({"spec": h.component_spec(path)}))
    result = _gitlab_schema(header)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", h.GITLAB_INCLUDES, ids=lambda p: p.name)
def test_gitlab_include_valid(path: Path, tmp_path: Path) -> None:
    """The installed include: valid, one component at the pinned commit with that commit as
    its tufrepo-ref input."""
    rendered = tmp_path / path.name
    rendered.write_text(h.render_text(path.read_text()))
    result = _gitlab_schema(rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    (include,) = h.load(rendered)["include"]
    component, ref = include["component"].split("@")
    assert component.rsplit("/", 1)[1] in {p.stem for p in h.GITLAB_FILES}
    assert ref == include["inputs"]["tufrepo-ref"] == h.TEST_REF


def test_gitlab_schema_notices_errors(tmp_path: Path) -> None:
    data = h.load(h.GITLAB_FILE)
    data["pages"]["when"] = "sometimes"
    broken = tmp_path / "broken.gitlab-ci.yml"
    broken.write_text(yaml.safe_dump(data))
    assert _gitlab_schema(broken).returncode != 0
