"""Trained models: a model file (or bytes) with its metrics, parameters and framework."""

from __future__ import annotations

import os
from typing import Any

from mlflowlet.artifacts.base import Artifact, json_safe


class ModelArtifact(Artifact, kind="model"):
    """A model file plus what describes it.

    The stored file is ``model_file`` (a local path, taken relative to ``model_dir`` when
    that is given) or ``body``. ``extra`` holds ``metrics``, ``parameters``, ``framework``
    and ``model_file`` (the file name).

    Args:
        key: the artifact key.
        model_file: the local model file; with ``body``, the name of the stored file.
        body: the model's bytes, when there is no file.
        metrics: evaluation metrics, e.g. ``{'accuracy': 0.93}``.
        parameters: training parameters.
        framework: e.g. ``'sklearn'``, ``'pytorch'``.
        model_dir: the local directory holding ``model_file``.
        **kwargs: further :class:`Artifact` arguments (``labels``, ``tag``, ``target_path``...).
    """

    def __init__(
        self,
        key: str,
        model_file: str | None = None,
        body: Any = None,
        metrics: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        framework: str = "",
        model_dir: str | None = None,
        **kwargs: Any,
    ) -> None:
        local_path = kwargs.pop("local_path", None)
        name = None
        if model_file is not None:
            model_file = os.fspath(model_file)
            if body is None:
                local_path = os.path.join(model_dir, model_file) if model_dir else model_file
            else:  # MLRun style: log_model(key, body=pickle.dumps(m), model_file='model.pkl')
                name = os.path.basename(model_file)
                if not kwargs.get("target_path"):
                    kwargs["target_path"] = name
        super().__init__(key, body=body, local_path=local_path, **kwargs)
        self.metrics = dict(metrics or {})
        self.parameters = dict(parameters or {})
        self.framework = framework
        self.model_file = os.path.basename(local_path) if local_path else name

    @property
    def extra(self) -> dict[str, Any]:
        """The model's metrics, parameters, framework and file name."""
        return {
            "metrics": json_safe(self.metrics, keep_nonfinite=True),  # NaN stays NaN
            "parameters": json_safe(self.parameters, keep_nonfinite=True),
            "framework": self.framework,
            "model_file": self.model_file,
        }

    @extra.setter
    def extra(self, value: dict[str, Any]) -> None:
        """Ignore assignments: the model's own fields are the source of truth."""

    def _restore(self, extra: dict[str, Any]) -> None:
        self.metrics = dict(extra.get("metrics") or {})
        self.parameters = dict(extra.get("parameters") or {})
        self.framework = extra.get("framework") or ""
        self.model_file = extra.get("model_file")
