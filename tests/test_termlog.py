"""The termination message: the run's outcome as compact JSON under 4 KiB (#20).

Kubernetes keeps at most 4096 bytes of a container's termination message, and falls back to the
log only on failure and only for its last 2048 bytes / 80 lines
(https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/
#customizing-the-termination-message): the entrypoint's last log line (a whole run, often over
4 KiB) never came back that way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from mlflowlet._termlog import LIMIT, compact_record
from mlflowlet.entrypoint import read_run_json

BIG = textwrap.dedent("""
    def train(context):
        context.log_result("accuracy", 0.93)
        context.log_result("epochs", 12)
        for i in range(300):
            context.log_result(f"note_{i:03d}", "x" * 40)
        context.log_result("report", "y" * 5000)
""")


def test_the_entrypoint_writes_its_outcome_as_the_termination_message(tmp_path):
    (tmp_path / "big.py").write_text(BIG)
    term = tmp_path / "termination-log"
    term.write_text("")
    spec = {"metadata": {"name": "big", "uid": "u-big", "project": "p"},
            "spec": {"handler": "train", "command": "big.py"}}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
    env.update(MLFLOWLET_EXEC_CONFIG=json.dumps(spec), MLFLOWLET_TERMINATION_LOG=str(term))
    proc = subprocess.run([sys.executable, "-m", "mlflowlet.entrypoint"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    full_line = proc.stdout.strip().splitlines()[-1]
    assert len(full_line.encode()) > 2 * LIMIT  # what FallbackToLogsOnError could not carry
    message = term.read_text()
    assert len(message.encode()) <= LIMIT and "\n" not in message
    data = read_run_json(message)
    assert data["metadata"]["uid"] == "u-big" and data["status"]["state"] == "completed"
    results = data["status"]["results"]
    assert (results["accuracy"], results["epochs"]) == (0.93, 12)
    assert "report" not in results and "results" in data["truncated"]


def test_a_failed_run_keeps_its_error_line_and_a_small_run_everything():
    record = {"metadata": {"uid": "u", "project": "p", "iteration": 2, "name": "n"},
              "status": {"state": "error", "results": {"a": 1},
                         "error": "Traceback ...\n  File x\nValueError: bad shard 3",
                         "artifacts": [{"key": "model", "uri": "s3://b/m.pkl", "hash": "h",
                                        "producer": {"big": "x" * 100}}]}}
    data = read_run_json(compact_record(record))
    assert data["status"]["error"] == "ValueError: bad shard 3"
    assert data["status"]["artifacts"] == [{"key": "model", "uri": "s3://b/m.pkl", "hash": "h"}]
    assert data["metadata"]["iteration"] == 2 and "truncated" not in data
