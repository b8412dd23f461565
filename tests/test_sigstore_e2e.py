"""A whole repository life signed only by Sigstore identities, against the local stand-in.

Real git (a bare upstream, one clone per person), the real sigstore-python client, the
stand-in's OIDC issuer, Fulcio and Rekor on 127.0.0.1, and no other network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sigstore_helpers import (
    NONET_MARKER,
    clean_sigstore,
    no_network,
    no_network_env,
    serve_directory,
    standin,
    standin_trust,
)
from sigstore_standin import SigstoreStandin

from tests.git_helpers import World, git
from tufrepo import sigstore_trust
from tufrepo.signers.sigstore import TOKEN_ENV, signer_uri

__all__ = ["clean_sigstore", "no_network", "standin", "standin_trust"]  # fixtures used here

pytestmark = [pytest.mark.sigstore, pytest.mark.git, pytest.mark.usefixtures("standin_trust")]

ALICE = "alice@example.com"
BOB = "bob@example.com"
REPO = "example/tuf-repo"
WORKFLOW = "tufrepo-online-sign.yml"


@pytest.fixture
def world(tmp_path: Path, standin: SigstoreStandin) -> World:
    (tmp_path / "world").mkdir()
    w = World(tmp_path / "world")
    w.signers["@alice"] = signer_uri(ALICE, standin.issuer)
    w.signers["@bob"] = signer_uri(BOB, standin.issuer)
    w.online_uri = signer_uri(standin.ci_identity(REPO, WORKFLOW), standin.ci_issuer)
    return w


class People:
    """Whose identity token is in the environment (as if they had signed in)."""

    def __init__(self, standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch) -> None:
        self._standin = standin
        self._monkeypatch = monkeypatch

    def be(self, email: str) -> None:
        self._monkeypatch.setenv(TOKEN_ENV, self._standin.token(email))


@pytest.fixture
def people(standin: SigstoreStandin, monkeypatch: pytest.MonkeyPatch) -> People:
    return People(standin, monkeypatch)


def _status_output(world: World, event: str, code: int, fmt: str) -> str:
    path = world.clone("ci")
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", f"sign/{event}", f"origin/sign/{event}")
    try:
        return world.tufrepo("ci", "status", "--format", fmt, code=code).stdout
    finally:
        git(path, "checkout", "--quiet", "--detach")


def _status(world: World, event: str, code: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_status_output(world, event, code, "json"))
    return data


def _role(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in status["roles"] if r["role"] == name)


def _verify_main(world: World) -> dict[str, Any]:
    ci = world.clone("ci")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    report: dict[str, Any] = json.loads(world.tufrepo("ci", "verify", "--json").stdout)
    return report


def _swap_signature(world: World, event: str, role: str, src: str, dst: str) -> None:
    """Put ``src``'s signature (bundle and all) in ``dst``'s slot of ``role`` on the event."""
    path = world.clone("mallory")
    git(path, "fetch", "--quiet", "origin")
    git(path, "checkout", "--quiet", "-B", f"sign/{event}", f"origin/sign/{event}")
    file = path / "metadata" / f"{role}.json"
    doc = json.loads(file.read_text())
    sigs = {s["keyid"]: s for s in doc["signatures"]}
    sigs[dst] = {**sigs[src], "keyid": dst}
    doc["signatures"] = list(sigs.values())
    file.write_text(json.dumps(doc, indent=1, sort_keys=True))
    git(path, "commit", "--quiet", "-am", f"{role}: copy a signature into another key's slot")
    git(path, "push", "--quiet", "origin", f"sign/{event}")
    git(path, "checkout", "--quiet", "--detach")


def _keyid(world: World, role: str, identity: str) -> str:
    """The keyid of ``identity``'s Sigstore key for ``role`` (a top-level role) on main."""
    root = json.loads((world.clone("ci") / "metadata" / "root.json").read_text())["signed"]
    return next(
        k
        for k in root["roles"][role]["keyids"]
        if root["keys"][k]["keyval"]["identity"] == identity
    )


def test_sigstore_signing_events(
    world: World,
    people: People,
    standin: SigstoreStandin,
    standin_trust: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # init: alice signs root and targets with her Sigstore identity; CI's workflow is online
    people.be(ALICE)
    world.tufrepo("alice", "delegate", "sign/init", "--online-key", world.online_uri, user="@alice")
    status = _status(world, "init", 0)
    assert _role(status, "root")["signed"] == ["@alice"]
    world.merge("init")
    root = json.loads((world.clone("ci") / "metadata/root.json").read_text())["signed"]
    online = root["keys"][root["roles"]["timestamp"]["keyids"][0]]
    assert online["keyval"] == {
        "identity": standin.ci_identity(REPO, WORKFLOW),
        "issuer": standin.ci_issuer,
    }
    assert online["x-tuf-on-ci-online-uri"] == world.online_uri
    assert _verify_main(world)["valid"] is True

    # two Sigstore signers with threshold 2 for targets
    world.tufrepo(
        "alice", "delegate", "sign/two", "targets", "--signers", "@alice,@bob",
        "--threshold", "2", user="@alice",
    )  # fmt: skip
    people.be(BOB)
    world.tufrepo("bob", "sign", "sign/two", user="@bob")
    status = _status(world, "two", 1)
    assert _role(status, "targets")["signed"] == ["@bob"]
    assert _role(status, "targets")["missing"] == ["@alice"]
    people.be(ALICE)
    world.tufrepo("alice", "sign", "sign/two", user="@alice")
    assert _status(world, "two", 0)["ready"] is True
    world.merge("two")
    assert _verify_main(world)["valid"] is True

    # an artifact release by app CI; both sign
    artifact = world.root / "notes.txt"
    artifact.write_text("release notes\n")
    world.tufrepo(
        "appci", "event", "open", "rel-1", "--remote", str(world.remote),
        "--target", f"notes.txt={artifact}",
    )  # fmt: skip
    people.be(BOB)
    world.tufrepo("bob", "sign", "sign/rel-1", user="@bob")

    # bob's bundle in alice's slot: alice has not signed (no crash, not ready)
    alice_id, bob_id = _keyid(world, "targets", ALICE), _keyid(world, "targets", BOB)
    _swap_signature(world, "rel-1", "targets", bob_id, alice_id)
    status = _status(world, "rel-1", 1)
    assert _role(status, "targets")["signed"] == ["@bob"]
    assert _role(status, "targets")["missing"] == ["@alice"]
    [invalid] = _role(status, "targets")["invalid_signatures"]
    assert invalid.startswith(f"@alice: Sigstore signature by {ALICE}")
    assert "SANs do not match" in invalid
    markdown = _status_output(world, "rel-1", 1, "markdown")
    assert f"invalid signature: @alice: Sigstore signature by {ALICE}" in markdown

    people.be(ALICE)
    world.tufrepo("alice", "sign", "sign/rel-1", user="@alice")
    status = _status(world, "rel-1", 0)
    assert _role(status, "targets")["artifacts"][0]["path"] == "notes.txt"
    world.merge("rel-1")
    assert _verify_main(world)["valid"] is True
    assert standin.requests.count("POST /api/v1/log/entries") >= 5

    # CI signs snapshot and timestamp with its workflow identity (ambient GitHub credentials);
    # a person's token is refused for the online key, and nothing is pushed
    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    refs = world.remote_refs()
    result = world.tufrepo("ci", "online-sign", code=2)
    assert "but the key is" in result.stderr
    assert world.remote_refs() == refs
    monkeypatch.delenv(TOKEN_ENV)
    for name, value in standin.github_actions_env(REPO, WORKFLOW).items():
        monkeypatch.setenv(name, value)
    world.tufrepo("ci", "online-sign")
    assert world.remote_refs() != refs
    for role in ("snapshot", "timestamp"):
        doc = json.loads((ci / "metadata" / f"{role}.json").read_text())
        assert [set(s) for s in doc["signatures"]] == [{"keyid", "sig", "bundle"}]
    assert "GET /gha/id-token" in standin.requests
    assert _verify_main(world)["valid"] is True

    # publish the site; a real TUF client process downloads the release, offline but for
    # 127.0.0.1, trusting the stand-in's Sigstore instance through the environment
    site = world.root / "site"
    world.tufrepo("ci", "publish", str(site), "--repo", str(ci))
    index = (site / "index.html").read_text()
    assert ALICE in index
    assert BOB in index
    assert standin.ci_identity(REPO, WORKFLOW) in index
    env = no_network_env()
    env[sigstore_trust.TRUST_CONFIG_ENV] = str(standin_trust)
    for name in (TOKEN_ENV, "GITHUB_ACTIONS", "ACTIONS_ID_TOKEN_REQUEST_URL"):
        env.pop(name, None)
    out = world.root / "downloads"
    with serve_directory(site) as url:
        proc = world.subprocess(
            world.root,
            *("download", "notes.txt", "--url", url, "-o", str(out)),
            *("--root", str(ci / "metadata/root_history/1.root.json")),
            *("--cache-dir", str(world.root / "client-cache")),
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        assert (out / "notes.txt").read_text() == "release notes\n"
        assert NONET_MARKER not in proc.stderr
        # the same client with the production trust root refuses the site
        env.pop(sigstore_trust.TRUST_CONFIG_ENV)
        proc = world.subprocess(
            world.root,
            *("download", "notes.txt", "--url", url, "-o", str(out / "prod")),
            *("--root", str(ci / "metadata/root_history/1.root.json")),
            *("--cache-dir", str(world.root / "client-cache-prod")),
            env=env,
        )
        assert proc.returncode != 0
        assert not (out / "prod" / "notes.txt").exists()

    # the same repository under the production trust root: no signature verifies
    sigstore_trust.set_trust_config_path(sigstore_trust.PINNED_DIR / "trust-config.json")
    report = json.loads(world.tufrepo("ci", "verify", "--json", code=1).stdout)
    assert report["valid"] is False
    assert any("root" in p for p in report["problems"])

    # the trust config can live in the repository itself - but only as committed on main:
    # an event branch (or an uncommitted file) never decides which Sigstore is trusted
    sigstore_trust.set_trust_config_path(None)
    git(ci, "checkout", "--quiet", "-B", "sign/trust", "origin/main")
    config = ci / sigstore_trust.REPOSITORY_TRUST_CONFIG
    config.parent.mkdir()
    config.write_bytes(standin_trust.read_bytes())
    git(ci, "add", str(config))
    git(ci, "commit", "--quiet", "-m", "trust the stand-in")
    report = json.loads(world.tufrepo("ci", "verify", "--json", code=1).stdout)
    assert report["valid"] is False
    info = json.loads(world.tufrepo("ci", "sigstore", "trust-config", "--json").stdout)
    assert info["origin"] == "pinned"
    git(ci, "push", "--quiet", "origin", "sign/trust:main")
    git(ci, "fetch", "--quiet", "origin")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    report = json.loads(world.tufrepo("ci", "verify", "--json").stdout)
    assert report["valid"] is True
    info = json.loads(world.tufrepo("ci", "sigstore", "trust-config", "--json").stdout)
    assert info["origin"] == "repository"
    assert info["path"].startswith(".tufrepo/sigstore-trust-config.json at ")
