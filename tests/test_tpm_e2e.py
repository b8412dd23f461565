"""The TPM HSM through tufrepo's own flows: a maintainer signs a signing event with a
``tpmhsm:`` key, CI runs online-sign with a ``tpmhsm:`` online key, and python-tuf's
ngclient (over HTTP on 127.0.0.1) accepts the result."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from git_helpers import World, git
from tpm_helpers import Swtpm, swtpm_available, swtpm_running
from tuf.ngclient import Updater

from tufrepo.hsm import HsmClient, RunningService, start_service
from tufrepo.signers import PASSWORD_ENV, import_public_key
from tufrepo.signers.filekey import generate_filekey, load_filekey

pytestmark = [
    pytest.mark.tpm,
    pytest.mark.git,
    pytest.mark.skipif(not swtpm_available(), reason="needs swtpm, tpm2-pytss and grpcio"),
]

PASSWORD = "ci secret"


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    with swtpm_running(tmp_path / "swtpm") as tpm:
        yield tpm


@pytest.fixture
def service(swtpm: Swtpm, tmp_path: Path) -> Iterator[RunningService]:
    running = start_service(tcti=swtpm.tcti, state_dir=tmp_path / "hsm", port=0)
    yield running
    running.stop()


def _tpm_uri(service: RunningService, keys: Path, name: str) -> str:
    """A file key ``name`` and a 1-of-1 TPM key it authorises; the signer URI."""
    path = keys / f"{name}.key"
    generate_filekey(path, PASSWORD)
    address = f"127.0.0.1:{service.port}"
    with HsmClient(address) as client:
        info = client.create_key([load_filekey(path, PASSWORD).public_key()], 1)
    return f"tpmhsm://{address}/{info.key_id}?filekey={path}"


def test_signing_event_and_online_sign_through_the_tpm(
    tmp_path: Path, service: RunningService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    (tmp_path / "world").mkdir()
    world = World(tmp_path / "world")
    keys = tmp_path / "tpmkeys"
    keys.mkdir()
    world.signers["@alice"] = _tpm_uri(service, keys, "alice")
    world.online_uri = _tpm_uri(service, keys, "ci")
    world.init("@alice")  # root + targets signed through the TPM; online key in the TPM

    ci = world.clone("ci")
    git(ci, "checkout", "--quiet", "-B", "main", "origin/main")
    world.tufrepo("ci", "online-sign")
    assert json.loads(world.tufrepo("ci", "verify", "--json").stdout)["valid"] is True

    root = json.loads((ci / "metadata/root.json").read_text())["signed"]
    online = import_public_key(world.online_uri)
    alice = import_public_key(world.signers["@alice"])
    assert {k["keyval"]["public"] for k in root["keys"].values()} == {
        online.keyval["public"],
        alice.keyval["public"],
    }
    assert all(k["scheme"] == "ecdsa-sha2-nistp256" for k in root["keys"].values())
    timestamp = json.loads((ci / "metadata/timestamp.json").read_text())
    assert timestamp["signatures"][0]["keyid"] in root["roles"]["timestamp"]["keyids"]

    # publish the site; a TUF client over HTTP (check-site, and python-tuf directly) accepts it
    site = tmp_path / "site"
    world.tufrepo("ci", "publish", str(site))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        root_v1 = ci / "metadata" / "root_history" / "1.root.json"
        checked = world.subprocess(ci, "check-site", url, "--root", str(root_v1))
        assert checked.returncode == 0, checked.stderr
        client_dir = tmp_path / "client"
        client_dir.mkdir()
        updater = Updater(
            metadata_dir=str(client_dir),
            metadata_base_url=f"{url}/metadata/",
            target_base_url=f"{url}/targets/",
            bootstrap=root_v1.read_bytes(),
        )
        updater.refresh()
        assert (client_dir / "timestamp.json").exists()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
