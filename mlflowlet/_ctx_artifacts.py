"""The artifact side of a run context: where its artifacts go, and logging them.

Private to :mod:`mlflowlet.context`: ``Context.log_artifact`` (and ``log_dataset``,
``log_model``) delegate to a :class:`RunArtifacts`, which stores each artifact through the run's
:class:`~mlflowlet.artifacts.ArtifactManager` with the run as its producer and hands the record
to the run's :class:`~mlflowlet._ctx_recorder.Recorder`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._ctx_recorder import Recorder
from ._masking import masked as _masked
from ._names import check_project, check_run_name
from .model import RunObject

if TYPE_CHECKING:
    from .artifacts import Artifact, ArtifactManager
    from .db.base import RunDB


def run_artifact_path(run: RunObject, db: RunDB | None) -> str:
    """Return the run's own artifact directory (or URL); see ``Context.artifact_path``."""
    spec, meta = run.spec, run.metadata
    check_run_name(meta.uid, "run uid")  # both become directories under the root
    if meta.project:
        check_project(meta.project)
    base = spec.artifact_path
    if base:
        base = base.replace("{{run.uid}}", meta.uid).replace("{{run.project}}", meta.project)
        if meta.uid and meta.uid not in base.replace("\\", "/").split("/"):
            base = f"{base.rstrip('/')}/{meta.uid}"
    else:
        from .settings import get_setting  # one variable, not every setting: once per run

        root = str(get_setting("artifact_path"))
        root = root or (db.artifact_root if db is not None else "")
        root = root or os.path.join(os.getcwd(), "artifacts")
        base = f"{root.rstrip('/')}/{meta.project}/{meta.uid}"
    if meta.iteration:
        base = f"{base.rstrip('/')}/{meta.iteration}"
    if run._attempt_dir:  # an attempt of a retried map item (the item's uid and iteration)
        base = f"{base.rstrip('/')}/{run._attempt_dir}"
    return base if "://" in base else os.path.abspath(base)


class RunArtifacts:
    """A run's artifacts, stored by its ``ArtifactManager`` (made on first use).

    Their records go to the run's recorder, buffered for its next commit.

    Args:
        recorder: the run's recorder (its run, DB, secrets and buffers).
    """

    __slots__ = ("_recorder", "manager")

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self.manager: ArtifactManager | None = None  # under the run's artifact path

    def log(
        self,
        item: Any,
        body: Any,
        local_path: str | None,
        target_path: str | None,
        viewer: str | None,
        labels: dict[str, str] | None,
        format: str | None,
        tag: str | None,
        upload: bool,
        kw: dict[str, Any],
    ) -> Artifact:
        """Store an artifact as ``Context.log_artifact`` does; buffer its record; return it."""
        # no file is stored after the run ended
        with self._recorder.writing("artifact", getattr(item, "key", item)):
            rec = self._recorder
            run = rec.run
            if self.manager is None:
                from .artifacts import ArtifactManager

                self.manager = ArtifactManager(run_artifact_path(run, rec.db))
            secrets = rec.mask_store()
            if secrets is not None:  # names become file paths: hide secret values before any write
                item, target_path, labels, kw = _hide_names(
                    secrets.mask, item, local_path, target_path, labels, kw
                )
                tag = secrets.mask(tag) if tag else tag
            meta = run.metadata
            art = self.manager.log(
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
                tree=run.spec.pipeline_uid or meta.uid,
                iteration=meta.iteration,
                secrets=rec.secrets_or_none,
                **kw,
            )
            rec.add_artifact(art.to_dict())
            rec.touch(False)
            return art

    def link_best(self, records: list[dict[str, Any]], iteration: int) -> None:
        """List a sweep's best iteration's artifact versions as this (parent) run's own.

        Each becomes a link record of the parent (same location, hash and version uid; no bytes
        copied; ``link_iteration`` names the iteration), stored with the parent's next commit,
        so ``latest`` (and the version's tag) of each key then points at the best iteration.
        """
        own = self._recorder.run.metadata.iteration
        for rec in records:
            self._recorder.add_artifact(dict(rec, iteration=own, link_iteration=iteration))

    def link_records(self, records: list[dict[str, Any]]) -> None:
        """List artifact versions of other runs as this run's own (a pipeline's outputs).

        Each record keeps its location, hash, version uid and producer (no bytes copied), under
        the key given; it is stored with this run's next commit.
        """
        own = self._recorder.run.metadata.iteration
        for rec in records:
            self._recorder.add_artifact(dict(rec, iteration=own))


def _hide_names(
    mask: Any,
    item: Any,
    local_path: str | None,
    target_path: str | None,
    labels: dict[str, str] | None,
    kw: dict[str, Any],
) -> tuple[Any, str | None, dict[str, str] | None, dict[str, Any]]:
    """Mask secret values in an artifact's key, target path, labels and other string options.

    The record's metadata is masked when it is written (``Recorder.write``); this covers what
    becomes a file name first. A ``local_path`` whose file name holds a secret is stored under
    the masked name.
    """
    if isinstance(item, str):
        item = mask(item)
    elif hasattr(item, "key"):
        item.key = mask(item.key)
        item.labels = _masked(dict(item.labels or {}), mask)
        item.tag = mask(item.tag) if item.tag else item.tag
        if getattr(item, "target_path", None):
            item.target_path = mask(item.target_path)
    if target_path is None and local_path is not None:
        name = os.path.basename(os.fspath(local_path))
        if mask(name) != name:
            target_path = mask(name)
    if target_path is not None:
        target_path = mask(target_path)
    if labels is not None:
        labels = _masked(dict(labels), mask)
    kw = {k: mask(v) if isinstance(v, str) else v for k, v in kw.items()}
    return item, target_path, labels, kw
