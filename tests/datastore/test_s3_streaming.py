"""A 2 GB artifact through S3 (SeaweedFS) with the peak memory of the process measured.

The work runs in a child process so its peak RSS (``VmHWM``, reset after warm-up through
``/proc/self/clear_refs``) belongs to the transfer alone: ``log_artifact(local_path=...)``
of a 2 GB file to an ``s3://`` artifact path (multipart, hashed while read), then a
streaming read of the object back through ``DataItem.open()``, hashed as it comes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SIZE = 2 << 30
LIMIT = 100 << 20  # the transfer may add at most this much to the process's memory

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from blake3 import blake3
    from mlflowlet import new_runner, new_task
    from mlflowlet.datastore import get_dataitem

    size, bucket, secrets = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])

    def status(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS (Linux >= 4.0)

    # a 2 GB file, generated block by block (1 MiB blocks, each different)
    seed, sha = os.urandom(1 << 20), blake3(max_threads=blake3.AUTO)
    t0 = time.monotonic()
    with open("big.bin", "wb") as f:
        for i in range(size >> 20):
            block = i.to_bytes(8, "little") + seed[8:]
            sha.update(block)
            f.write(block)
    expected, made = "blake3:" + sha.hexdigest(), time.monotonic() - t0

    def handler(context, path=""):
        context.log_artifact("big", local_path=path)

    task = new_task(artifact_path=f"s3://{bucket}/big").with_secrets("inline", secrets)
    with open("small.bin", "wb") as f:
        f.write(os.urandom(9 << 20))
    new_runner().run(task, handler=handler, params={"path": "small.bin"})  # warm-up
    base = status("VmRSS")
    reset_peak()
    t0 = time.monotonic()
    run = new_runner().run(task, handler=handler, params={"path": "big.bin"})
    up_s, up_peak = time.monotonic() - t0, status("VmHWM")
    (art,) = run.status.artifacts
    os.unlink("big.bin")

    base_down = status("VmRSS")
    reset_peak()
    t0 = time.monotonic()
    sha = blake3(max_threads=blake3.AUTO)
    with get_dataitem(art["uri"], secrets=secrets).open() as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    down_s, down_peak = time.monotonic() - t0, status("VmHWM")
    print(json.dumps({
        "expected": expected, "hash": art["hash"], "size": art["size"],
        "read": "blake3:" + sha.hexdigest(),
        "base": base, "up_peak": up_peak, "base_down": base_down, "down_peak": down_peak,
        "make_s": made, "up_s": up_s, "down_s": down_s,
    }))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc for peak RSS")
def test_2gb_artifact_streams_to_and_from_s3_with_bounded_memory(
    seaweedfs, s3_bucket, s3_secrets, tmp_path
):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(SIZE), s3_bucket, json.dumps(s3_secrets)],
        cwd=tmp_path, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(  # the figures, for -s / the CI log
        f"2 GB via S3: make {out['make_s']:.1f} s, log_artifact {out['up_s']:.1f} s, "
        f"stream back {out['down_s']:.1f} s; RSS base {out['base'] >> 20} MiB, "
        f"peak +{(out['up_peak'] - out['base']) >> 20} MiB up, "
        f"+{(out['down_peak'] - out['base_down']) >> 20} MiB down"
    )
    assert out["size"] == SIZE
    assert out["hash"] == out["expected"] == out["read"]
    assert out["up_peak"] - out["base"] < LIMIT
    assert out["down_peak"] - out["base_down"] < LIMIT
