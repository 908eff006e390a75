"""``examples/notebook_pipeline.ipynb``, executed with nbclient: define, run, compile and check."""

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from compiler_checks import argo_schema_errors, kfp_strict_errors

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook_pipeline.ipynb"


def _kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernel spec running this interpreter; Jupyter's and IPython's files under tmp_path."""
    spec = tmp_path / "jupyter" / "kernels" / "mlflowlet-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps(
        {"argv": argv, "display_name": "mlflowlet test", "language": "python"}))
    for name, sub in (("JUPYTER_PATH", "jupyter"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                      ("JUPYTER_CONFIG_DIR", "config"), ("IPYTHONDIR", "ipython"),
                      ("MPLCONFIGDIR", "mpl"), ("TMPDIR", "tmp")):
        (tmp_path / sub).mkdir(exist_ok=True)
        monkeypatch.setenv(name, str(tmp_path / sub))
    return "mlflowlet-test"


@pytest.mark.slow
def test_the_notebook_defines_runs_compiles_and_checks_a_pipeline(tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=280, kernel_name=_kernel(tmp_path, monkeypatch),
                                     resources={"metadata": {"path": str(work)}})
    client.execute()  # a failing cell (the check's `assert report.ok` too) raises here
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.get("output_type") == "stream")
    assert "completed {'sum': 20}" in text
    assert "2 steps ship their handler pickled" in text
    for target in ("kfp", "argo"):
        assert f"{target}: 2 container run(s), workflow Succeeded; matches the local run" in text
    argo_text = (work / "numbers.argo.yaml").read_text()
    assert argo_schema_errors(yaml.safe_load(argo_text)) == []
    kfp_text = (work / "numbers.kfp.yaml").read_text()
    assert kfp_strict_errors(kfp_text, tmp_path) == []
    for compiled in (argo_text, kfp_text):
        assert "__main__:make" in compiled and "__main__:total" in compiled
        assert compiled.count("--handler-pickle") == 2
