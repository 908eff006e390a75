"""The artifact-logging methods of a run context (a base of ``Context``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import RunObject

if TYPE_CHECKING:
    import threading


class _ArtifactLogging:
    """``log_artifact``, ``log_dataset`` and ``log_model`` of ``Context``."""

    _run: RunObject
    _secrets: Any
    _manager: Any
    _pending_artifacts: list[dict[str, Any]]
    _log_lock: threading.Lock

    if TYPE_CHECKING:

        @property
        def artifact_path(self) -> str:
            """Defined by ``Context``."""

        def _maybe_flush(self, force: bool) -> None: ...

        def _mask_store(self) -> Any: ...

    def log_artifact(
        self,
        item: Any,
        body: Any = None,
        local_path: str | None = None,
        target_path: str | None = None,
        viewer: str | None = None,
        labels: dict[str, str] | None = None,
        format: str | None = None,
        tag: str | None = None,
        upload: bool = True,
        **kw: Any,
    ) -> Any:
        """Store an artifact (a key with ``body``/``local_path``, or an ``Artifact``); record it."""
        if self._manager is None:
            from .artifacts import ArtifactManager

            self._manager = ArtifactManager(self.artifact_path)
        secrets = self._mask_store()
        if secrets is not None:  # names become file paths: hide secret values before any write
            item, target_path, labels, kw = _hide_names(
                secrets.mask, item, local_path, target_path, labels, kw
            )
            tag = secrets.mask(tag) if tag else tag
        meta = self._run.metadata
        art = self._manager.log(
            item,
            body=body,
            local_path=local_path,
            target_path=target_path,
            viewer=viewer,
            labels=labels,
            format=format,
            tag=tag,
            upload=upload,
            producer={
                "uid": meta.uid,
                "name": meta.name,
                "iteration": meta.iteration,
                "kind": "run",
            },
            project=meta.project,
            tree=self._run.spec.pipeline_uid or meta.uid,
            iteration=meta.iteration,
            secrets=self._secrets,
            **kw,
        )
        record = art.to_dict()
        arts = self._run.status.artifacts
        arts[:] = [a for a in arts if a.get("key") != record["key"]]
        arts.append(record)
        with self._log_lock:
            self._pending_artifacts.append(record)
        self._maybe_flush(False)
        return art

    def _link_best(self, records: list[dict[str, Any]], iteration: int) -> None:
        """List a sweep's best iteration's artifact versions as this (parent) run's own.

        Each becomes a link record of the parent (same location, hash and version uid; no bytes
        copied; ``link_iteration`` names the iteration), stored with the parent's next commit,
        so ``latest`` (and the version's tag) of each key then points at the best iteration.
        """
        arts = self._run.status.artifacts
        for rec in records:
            link = dict(rec, iteration=self._run.metadata.iteration, link_iteration=iteration)
            arts[:] = [a for a in arts if a.get("key") != link["key"]]
            arts.append(link)
            self._pending_artifacts.append(link)

    def _link_records(self, records: list[dict[str, Any]]) -> None:
        """List artifact versions of other runs as this run's own (a pipeline's outputs).

        Each record keeps its location, hash, version uid and producer (no bytes copied), under
        the key given; it is stored with this run's next commit.
        """
        arts = self._run.status.artifacts
        for rec in records:
            link = dict(rec, iteration=self._run.metadata.iteration)
            arts[:] = [a for a in arts if a.get("key") != link["key"]]
            arts.append(link)
            self._pending_artifacts.append(link)

    def log_dataset(
        self,
        key: str,
        df: Any,
        format: str = "parquet",
        preview: int = 20,
        stats: bool = True,
        labels: dict[str, str] | None = None,
        tag: str | None = None,
        **kw: Any,
    ) -> Any:
        """Store a DataFrame as a dataset artifact with schema, preview and stats."""
        from .artifacts import DatasetArtifact

        art = DatasetArtifact(key, df=df, format=format, preview=preview, stats=stats)
        return self.log_artifact(art, labels=labels, tag=tag, **kw)

    def log_model(
        self,
        key: str,
        model_file: str | None = None,
        body: Any = None,
        metrics: dict[str, Any] | None = None,
        parameters: dict[str, Any] | None = None,
        framework: str = "",
        labels: dict[str, str] | None = None,
        tag: str | None = None,
        model_dir: str | None = None,
        **kw: Any,
    ) -> Any:
        """Store a model file (or body) with its metrics, parameters and framework."""
        from .artifacts import ModelArtifact

        art = ModelArtifact(
            key,
            model_file=model_file,
            body=body,
            metrics=metrics,
            parameters=parameters,
            framework=framework,
            model_dir=model_dir,
        )
        return self.log_artifact(art, labels=labels, tag=tag, **kw)


def _hide_names(
    mask: Any,
    item: Any,
    local_path: str | None,
    target_path: str | None,
    labels: dict[str, str] | None,
    kw: dict[str, Any],
) -> tuple[Any, str | None, dict[str, str] | None, dict[str, Any]]:
    """Mask secret values in an artifact's key, target path, labels and other string options.

    The record's metadata is masked when it is written (``_Persistence._write``); this covers
    what becomes a file name first. A ``local_path`` whose file name holds a secret is stored
    under the masked name.
    """
    from ._ctx_persist import _masked

    if isinstance(item, str):
        item = mask(item)
    elif hasattr(item, "key"):
        item.key = mask(item.key)
        item.labels = _masked(dict(item.labels or {}), mask)
        item.tag = mask(item.tag) if item.tag else item.tag
        if getattr(item, "target_path", None):
            item.target_path = mask(item.target_path)
    if target_path is None and local_path is not None:
        import os

        name = os.path.basename(os.fspath(local_path))
        if mask(name) != name:
            target_path = mask(name)
    if target_path is not None:
        target_path = mask(target_path)
    if labels is not None:
        labels = _masked(dict(labels), mask)
    kw = {k: mask(v) if isinstance(v, str) else v for k, v in kw.items()}
    return item, target_path, labels, kw
