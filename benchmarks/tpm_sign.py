"""Signatures per second through the TPM HSM against swtpm (1-of-1 and 2-of-3 quorums).

Each signature is the whole protocol as a CI signer runs it: PrepareSign over gRPC (a new
policy session, context-saved), cpHashA/aHash and the file-key signatures on the client,
Sign over gRPC (LoadExternal + PolicySigned per file key, PolicyOR, PolicyCommandCode,
storage primary + Load, TPM2_Sign, flushes). Run from the repository root:

    python benchmarks/tpm_sign.py [--count 200] [--threads 4] [--json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from tpm_helpers import new_file_keys, swtpm_running  # noqa: E402

from tufrepo.hsm import HsmClient, start_service  # noqa: E402


def bench(
    address: str, key_id: str, keys: list[ec.EllipticCurvePrivateKey], count: int, threads: int
) -> float:
    digest = hashlib.sha256(b"benchmark").digest()

    def work(n: int) -> None:
        with HsmClient(address) as client:
            for _ in range(n):
                client.sign_digest(key_id, digest, keys)

    per = [count // threads + (1 if i < count % threads else 0) for i in range(threads)]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, per))
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="signatures per case")
    parser.add_argument("--threads", type=int, default=4, help="clients for the parallel run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, swtpm_running(Path(tmp) / "swtpm") as tpm:
        running = start_service(tcti=tpm.tcti, state_dir=Path(tmp) / "state", port=0)
        address = f"127.0.0.1:{running.port}"
        try:
            file_keys = new_file_keys(3)
            with HsmClient(address) as client:
                one = client.create_key([file_keys[0].public_key()], 1)
                two = client.create_key([k.public_key() for k in file_keys], 2)
            for name, key_id, keys in (
                ("1-of-1", one.key_id, file_keys[:1]),
                ("2-of-3", two.key_id, file_keys[1:]),
            ):
                bench(address, key_id, keys, 10, 1)  # warm-up
                results[f"{name} sequential"] = bench(address, key_id, keys, args.count, 1)
                results[f"{name} {args.threads} clients"] = bench(
                    address, key_id, keys, args.count, args.threads
                )
        finally:
            running.stop()
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        for case, rate in results.items():
            print(f"{case:<22} {rate:7.1f} signatures/s")


if __name__ == "__main__":
    main()
