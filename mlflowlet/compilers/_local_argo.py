"""Run a compiled Argo Workflow's containers as local subprocesses (for ``--check``).

Interprets the subset of Argo that :mod:`mlflowlet.compilers.argo` emits, by the controller's
own rules (``workflow/controller/dag.go``, ``steps.go``, ``operator.go``; v3.7.18 and v4):

* tasks in dependency order; ``depends`` (or ``dependencies``) over the upstream phases: false
  makes a task ``Omitted``, with neither its ``when`` nor its arguments evaluated;
* ``when`` substituted, then evaluated with govaluate's rules (:mod:`._argo_expr`): false makes
  it ``Skipped``, an expression Argo cannot evaluate makes it ``Error``;
* ``withItems`` / ``withParam`` fan-out (a ``withParam`` that is not a JSON list is an
  ``Error``, an empty one ``Skipped``); a fan-out's output parameters aggregated as
  :func:`aggregate` does; a skipped or omitted task's outputs are their ``valueFrom.default``
  when declared, else absent (a reference to them fails the consumer);
* the DAG's phase by Argo's leaf rule (:func:`dag_phase`);
* ``retryStrategy`` (``limit``, ``retryPolicy``), a template's ``activeDeadlineSeconds`` per
  attempt, memoization keys checked against Argo's cache-key rule, ``onExit`` with
  ``{{workflow.status}}``.

What cannot be reproduced is listed in ``unverified``: the memoization cache itself (every
step runs here), retry back-off delays, and ``failFast`` after a failure (which steps a real
controller still starts depends on timing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from typing import Any

from .._wire import digest
from ..errors import CompileError
from ._argo_expr import CACHE_KEY, ExprError, eval_depends, eval_when, memoize_key
from ._container_step import plain_config, plain_run
from ._local_argo_dag import (
    body_steps,
    dag_phase,
    number,
    run_body,
    toposort,
    unalias,
    unoutput,
)
from ._local_argo_outputs import item_output, item_runs, item_scope, per_item_when, publish
from ._runs import LocalRunner, PodRun
from ._workflow import RETRIES_MARK, workflow_scope

_REF = re.compile(r"\{\{\s*([^{}=][^{}]*?)\s*\}\}")
_TASK_PARAM = re.compile(r"^\{\{tasks\.([^.]+)\.outputs\.parameters\.([^}]+)\}\}$")
_TASK_ART = re.compile(r"^\{\{tasks\.([^.]+)\.outputs\.artifacts\.([^}]+)\}\}$")
_STATES = {"Succeeded": "completed", "Failed": "error", "Error": "error"}
_RETRIED = ("Always", "OnFailure")  # our pods fail by exit code: OnError would not retry


def substitute(text: str, scope: dict[str, str], where: str) -> str:
    """Replace every ``{{name}}`` in ``text`` from ``scope`` (expression tags are left).

    Raises:
        CompileError: a reference that does not resolve (names it and ``where``).
    """

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in scope:
            raise CompileError(f"{where}: reference {{{{{key}}}}} does not resolve")
        return scope[key]

    return _REF.sub(one, text)


def resubstitute(value: str, scope: dict[str, str], where: str) -> str:
    """Return a task argument's value as Argo passes it: with its own tags substituted again.

    Argo's template replace covers ``inputs.parameters[].value`` too, so a ``{{...}}`` inside a
    substituted value is replaced once more (argo-workflows #1535, #13890).

    Raises:
        CompileError: the value holds an expression tag (``{{=...}}``, which Argo would
            evaluate) or a reference that does not resolve.
    """
    if "{{" not in value:
        return value
    if re.search(r"\{\{\s*=", value):
        raise CompileError(f"{where}: its value holds an expression tag Argo would evaluate")
    return substitute(value, scope, f"{where}: its value, substituted again by Argo,")


class ArgoLocalRunner(LocalRunner):
    """Interpret one compiled workflow (see the module docstring)."""

    def __init__(
        self,
        doc: dict[str, Any],
        workdir: str,
        params: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        timeout: float = 300.0,
    ) -> None:
        spec = doc["spec"].get("workflowSpec", doc["spec"])
        super().__init__(workdir, env, secrets, timeout)
        self.spec = spec
        os.makedirs(workdir, exist_ok=True)
        self.templates = {t["name"]: t for t in spec["templates"]}
        self.scope: dict[str, str] = {}
        declared = spec.get("arguments", {}).get("parameters", [])
        for p in declared:
            if "value" in p:
                self.scope[f"workflow.parameters.{p['name']}"] = p["value"]
        for key, value in (params or {}).items():
            text = value if isinstance(value, str) else json.dumps(value)
            self.scope[f"workflow.parameters.{key}"] = text
        self.scope.update(workflow_scope(doc))  # {{workflow.name}}, .uid, .creationTimestamp
        self.started = time.monotonic()  # {{workflow.duration}}: seconds since, when read
        missing = [
            p["name"] for p in declared if f"workflow.parameters.{p['name']}" not in self.scope
        ]
        if missing:
            raise CompileError(f"workflow parameter(s) {missing} have no value; pass params")
        self.artifacts: dict[str, str] = {}  # "tasks.X.outputs.artifacts.Y" -> stored path
        self.phase: dict[str, str] = {}
        self.messages: dict[str, str] = {}
        self.empty: set[str] = set()  # fan-outs over an empty list
        self.lineage: list[dict[str, Any]] = []
        self.outputs: dict[str, tuple[str, Any]] = {}  # the workflow's outputs
        self._count = 0
        self.looping, self.aliases = 0, list[dict[str, str]]()
        self.places: list[tuple[int, int]] = []  # (item, items) of each open body call

    # workflow ----------------------------------------------------------------------------------
    def run(self) -> str:
        """Run every task (and the exit handler); return Argo's workflow status."""
        dag = self.templates[self.spec["entrypoint"]]["dag"]
        for task in toposort(dag["tasks"]):
            self.phase[task["name"]] = self._task(task)
            if self.phase[task["name"]] in ("Failed", "Error") and dag.get("failFast", True):
                self.note(
                    "failFast: after a failure a real controller stops starting new tasks; "
                    "which of them had already started depends on timing"
                )
        status = dag_phase(dag["tasks"], self.phase)
        failed = status != "Succeeded"
        if not failed and not self._outputs(self.templates[self.spec["entrypoint"]]):
            status = "Error"  # Argo fails a DAG whose outputs do not resolve
        if self.spec.get("onExit"):
            self.scope["workflow.status"] = status
            self.scope["workflow.failures"] = self._failures(status)
            handler = self.templates[name := self.spec["onExit"]]
            if "dag" in handler:  # an exit sub-pipeline: its tasks, by the rules of main's
                for task in toposort(handler["dag"]["tasks"]):
                    self.phase[task["name"]] = self._task(task)
                done = dag_phase(handler["dag"]["tasks"], self.phase)
            else:
                done = "Succeeded" if self._run_pod(name, handler, {}, {}).ok else "Failed"
            status = done if status == "Succeeded" else status  # Argo: a failed onExit fails it
        return status

    def _failures(self, status: str) -> str:
        """Return ``{{workflow.failures}}``: the failed nodes, the workflow's own too.

        Argo >= 3.5 quotes the JSON once more (``strconv.Quote``); ``null`` when none failed.
        """
        nodes = [
            {"displayName": name, "phase": phase, "message": self.messages.get(name, "")}
            for name, phase in sorted(self.phase.items())
            if phase in ("Failed", "Error")
        ]
        if status != "Succeeded":
            nodes.insert(0, {"displayName": self.spec.get("entrypoint", ""), "phase": status})
        return json.dumps(json.dumps(nodes or None))

    def _outputs(self, template: dict[str, Any]) -> bool:
        """Resolve the entrypoint's outputs (the workflow's); False when one does not resolve."""
        outs = template.get("outputs", {})
        try:
            for p in outs.get("parameters", []):
                text = substitute(p["valueFrom"]["parameter"], self.scope, "workflow outputs")
                self.outputs[p["name"]] = ("parameter", text)
            for a in outs.get("artifacts", []):
                path = self._artifact(a["from"], "workflow outputs")
                self.outputs[a["name"]] = ("artifact", digest(path))
        except CompileError as exc:
            self.messages["(workflow outputs)"] = str(exc)
            return False
        return True

    def _task(self, task: dict[str, Any]) -> str:
        """Decide and run one task; return its phase."""
        name, template = task["name"], self.templates[task["template"]]
        try:
            if not eval_depends(task, self.phase):
                self._skipped_outputs(name, template)
                return "Omitted"
            when = "when" in task and not per_item_when(task)  # else: per item (_run_task)
            if when and not eval_when(substitute(task["when"], self.scope, name)):
                self._skipped_outputs(name, template)
                return "Skipped"
            items = self._items(task)
        except (CompileError, ExprError) as exc:
            self.messages[name] = str(exc)
            return "Error"
        if "container" in template:  # a loop's items reach its body steps as its input
            self._record_lineage(task)
        if items == []:  # "Skipped, empty params": locally, a map over nothing completes
            self._skipped_outputs(name, template)
            self.empty.add(name)
            return "Skipped"
        return self._run_task(task, template, items)

    def _record_lineage(self, task: dict[str, Any]) -> None:
        args = task.get("arguments", {})
        if "withParam" in task:
            for param in _item_params(args):  # the element, its sub-fields, or its outputs
                tpl = self.templates[task["template"]]
                self._lineage_for(task, item_output(task["withParam"], tpl, param), param)
        for p in args.get("parameters", []):
            if not p["name"].endswith("__sha256"):  # a cache key's input, no data for the step
                self._lineage_for(task, p["value"], p["name"])
        for a in args.get("artifacts", []):
            self._lineage_for(task, a["from"], a["name"], artifact=True)

    def _items(self, task: dict[str, Any]) -> list[Any] | None:
        if "withItems" in task:
            return list(task["withItems"])
        if "withParam" not in task:
            return None
        raw = substitute(task["withParam"], self.scope, f"task {task['name']!r} withParam")
        try:
            items = json.loads(raw)
        except ValueError:
            items = None
        if not isinstance(items, list):
            raise CompileError(f"withParam value could not be parsed as a JSON list: {raw[:80]}")
        return items

    def _skipped_outputs(self, name: str, template: dict[str, Any]) -> None:
        for p in template.get("outputs", {}).get("parameters", []):
            default = p.get("valueFrom", {}).get("default")
            if default is not None:
                self.scope[f"tasks.{name}.outputs.parameters.{p['name']}"] = default

    def _node(self, template: str) -> str:
        tpl = self.templates.get(template, {})
        return _node_name(tpl["container"], template) if "container" in tpl else template

    def states(self) -> dict[str, str]:
        """Step name to ``completed`` / ``error`` / ``skipped`` (Argo's Skipped and Omitted).

        A fan-out Argo skipped for an empty list is ``completed``, as a local map over nothing.
        """
        out: dict[str, str] = {}
        tasks = self.templates[self.spec["entrypoint"]]["dag"]["tasks"]
        tasks = tasks + self.templates.get(self.spec.get("onExit", ""), {}).get("dag", {}).get(
            "tasks", []
        )  # an exit sub-pipeline's tasks too
        names = {t["name"]: t["template"] for t in tasks}
        loops = []
        for task, phase in self.phase.items():
            state = "completed" if task in self.empty else _STATES.get(phase, "skipped")
            if "container" in self.templates.get(names[task], {}):
                out[self._node(names[task])] = state
            else:  # a loop: its body's steps are as their pods ended, else not run
                loops.append((task, "completed" if task in self.empty else "skipped"))
        for pod in self.pods:
            if pod.task == self.spec.get("onExit"):
                out[pod.node] = pod.state
            elif out.setdefault(pod.node, pod.state) == "completed" and pod.state != "completed":
                out[pod.node] = pod.state
        for task, state in loops:
            for node in body_steps(self, names[task]):
                out.setdefault(node, state)
        return out

    def shape(self) -> list[tuple[Any, ...]]:
        """Return the lineage shape (see :func:`mlflowlet.compilers.check.local_shape`)."""
        by_task: dict[str, list[PodRun]] = {}
        for pod in self.pods:
            by_task.setdefault(pod.task, []).append(pod)
        rows = set()
        for rec in self.lineage:
            consumer = self._node(rec["template"])
            for pod in by_task.get(rec["producer"], []):
                if not pod.ok or rec.get("iteration", pod.iteration) != pod.iteration:
                    continue  # a failed item's outputs reach no consumer; an item, its own
                it = pod.iteration or pod.results.get("best_iteration", 0)
                sha = pod.artifacts.get(rec["output"], "") if rec["artifact"] else ""
                rows.add((pod.node, it, rec["output"], consumer, rec["param"], sha))
        return sorted(rows)

    def _run_task(self, task: dict[str, Any], template: dict[str, Any], items: Any) -> str:
        name, args = task["name"], task.get("arguments", {})
        runs = [(0, None)] if items is None else list(enumerate(items, start=1))
        outputs: list[dict[str, str]] = []
        ok, ran = True, items is None
        for iteration, item in runs:
            scope = dict(self.scope)
            if items is not None:
                scope.update(item_scope(item))
            try:
                if not item_runs(task, scope, name):
                    continue  # its when is false: this item is Skipped, with no outputs
                ran = True
                where = f"task {name!r}"
                values = {
                    p["name"]: resubstitute(substitute(p["value"], scope, where), scope, where)
                    for p in args.get("parameters", [])
                }
                arts = {
                    a["name"]: self._artifact(a["from"], name) for a in args.get("artifacts", [])
                }
            except CompileError as exc:
                self.messages[name] = str(exc)
                return "Error"
            if "dag" in template:  # a mapped sub-pipeline's body, once per item
                raw = {p["name"]: p["value"] for p in args.get("parameters", [])}
                raw["item"] = task.get("withParam", raw.get("item", ""))  # the item's list
                body_ok, outs = run_body(self, template, values, raw, (iteration, len(runs)))
                ok = ok and body_ok
                if body_ok:
                    outputs.append(outs)
                continue
            pod = self._run_pod(name, template, values, arts, iteration=iteration)
            ok = ok and pod.ok
            if pod.ok:
                outputs.append(pod.parameters)
        if not ran and items:  # every item's when was false: nothing read its inputs
            self.lineage = [r for r in self.lineage if r["template"] != task["template"]]
        publish(self.scope, name, template, outputs, fanned=items is not None)
        return "Succeeded" if ok else "Failed"

    def _lineage_for(
        self, task: dict[str, Any], raw: str, param: str, artifact: bool = False
    ) -> None:
        raw = unalias(self, raw or "")
        match = (_TASK_ART if artifact else _TASK_PARAM).match(
            raw if artifact else unoutput(self, raw)
        )
        if match:
            rec = {"producer": match.group(1), "output": match.group(2), "param": param}
            if self.looping and rec["producer"] in self.phase:  # this item's own producer
                pods = [p.iteration for p in self.pods if p.task == rec["producer"]]
                rec["iteration"] = pods[-1] if pods else -1
            self.lineage.append({**rec, "template": task["template"], "artifact": artifact})

    def _artifact(self, ref: str, task: str) -> str:
        key = ref.strip("{} ")
        if key not in self.artifacts:
            raise CompileError(f"task {task!r}: artifact {ref} was never produced")
        return self.artifacts[key]

    # one pod -------------------------------------------------------------------------------------
    def _run_pod(
        self,
        task: str,
        template: dict[str, Any],
        params: dict[str, str],
        artifacts: dict[str, str],
        iteration: int = 0,
    ) -> PodRun:
        self._count += 1
        root = os.path.join(self.workdir, "pods", f"{self._count:04d}-{task}")
        paths = self._paths(root, template, artifacts)
        scope = {**self.scope, **{f"inputs.parameters.{k}": v for k, v in params.items()}}
        scope["workflow.duration"] = f"{time.monotonic() - self.started:f}"  # Argo's %f
        if "retryStrategy" in template:  # {{retries}}: the attempt's retry count, set below
            scope["retries"] = RETRIES_MARK
        container = template["container"]
        pod = PodRun(task=task, node=_node_name(container, task), iteration=iteration)
        number(self, pod)
        self.pods.append(pod)
        try:
            self._memoize(template, scope)
            argv = [
                _map_paths(substitute(a, scope, f"template {template['name']!r}"), paths)
                for a in [*container.get("command", []), *container.get("args", [])]
            ]
            env = self._env(container)
        except (CompileError, ExprError) as exc:
            pod.finish(1, "", str(exc))
            return pod
        pod.plain = plain_config(env, root)
        retry = template.get("retryStrategy", {})
        limit = (
            int(retry.get("limit", 0)) if retry.get("retryPolicy", "OnFailure") in _RETRIED else 0
        )
        if limit and retry.get("backoff"):
            self.note("retry back-off delays are not waited for here")
        deadline = template.get("activeDeadlineSeconds")
        for n in range(1 + limit):
            now = [a.replace(RETRIES_MARK, str(n)) for a in argv]
            if self.attempt(pod, now, env, float(deadline) if deadline else None):
                break
        if pod.ok:
            self._collect(pod, task, template, paths)
        if pod.plain:  # a container step prints no run record: read its outputs as locally
            plain_run(pod, pod.plain, texts=pod.parameters)
        return pod

    def _paths(self, root: str, template: dict[str, Any], artifacts: dict[str, str]) -> dict:
        paths: dict[str, str] = {}
        for a in template.get("inputs", {}).get("artifacts", []):
            local = paths[a["path"]] = _local(root, a["path"])
            os.makedirs(os.path.dirname(local), exist_ok=True)
            _copy(artifacts[a["name"]], local)
        outs = template.get("outputs", {})
        for item in [*outs.get("artifacts", []), *outs.get("parameters", [])]:
            path = item["path"] if "path" in item else item["valueFrom"]["path"]
            paths[path] = _local(root, path)
        return paths

    def _memoize(self, template: dict[str, Any], scope: dict[str, str]) -> None:
        memo = template.get("memoize")
        if not memo:
            return
        key = memoize_key(substitute(memo["key"], scope, "memoize key"), scope)
        if not CACHE_KEY.match(key):
            raise ExprError(f"invalid cache key: {key}")
        self.note(
            f"memoization: a real controller reuses cached outputs from ConfigMap "
            f"{memo['cache']['configMap']['name']!r} for up to {memo.get('maxAge', '-')}; "
            "here every step runs"
        )

    def _collect(self, pod: PodRun, task: str, template: dict[str, Any], paths: dict) -> None:
        outs = template.get("outputs", {})
        for p in outs.get("parameters", []):
            path = paths[p["valueFrom"]["path"]]
            if os.path.exists(path):
                with open(path, encoding="utf-8") as fh:
                    pod.parameters[p["name"]] = fh.read()
            elif "default" in p["valueFrom"]:
                pod.parameters[p["name"]] = p["valueFrom"]["default"]
            else:
                pod.returncode = 1
                pod.log += f"\noutput parameter {p['name']!r}: no file at {path}"
        for a in outs.get("artifacts", []):
            stored = os.path.join(
                self.workdir, "repository", f"{self._count:04d}-{task}", a["name"]
            )
            os.makedirs(os.path.dirname(stored), exist_ok=True)
            if not os.path.exists(paths[a["path"]]):
                pod.returncode = 1
                pod.log += f"\noutput artifact {a['name']!r}: nothing at {a['path']}"
                continue
            _copy(paths[a["path"]], stored)
            pod.artifacts[a["name"]] = digest(stored)
            self.artifacts[f"tasks.{task}.outputs.artifacts.{a['name']}"] = stored

    def _env(self, container: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                try:
                    env[var["name"]] = self.secrets[ref["name"]][ref["key"]]
                except KeyError:
                    raise CompileError(
                        f"env {var['name']} reads secret {ref['name']!r} key {ref['key']!r}; "
                        "give the check its value with secrets={name: {key: value}}"
                    ) from None
        env.update(self.env)
        return env


def _copy(source: str, target: str) -> None:
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)


def _item_params(args: dict[str, Any]) -> list[str]:
    return [p["name"] for p in args.get("parameters", []) if p["value"] == "{{item}}"]


def _node_name(container: dict[str, Any], default: str) -> str:
    for var in container.get("env", []):
        if var["name"] == "MLFLOWLET_EXEC_CONFIG":
            return json.loads(var["value"]).get("metadata", {}).get("name", default)
    return default


def _local(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _map_paths(arg: str, paths: dict[str, str]) -> str:
    """Map container paths to local ones in one pass (one path may be a prefix of another)."""
    if not paths:
        return arg
    pattern = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
    return re.sub(pattern, lambda m: paths[m.group(0)], arg)
