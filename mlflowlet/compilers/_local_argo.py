"""Run a compiled Argo Workflow's containers as local subprocesses (for ``--check``).

Interprets the subset of Argo that :mod:`mlflowlet.compilers.argo` emits, the way the Argo
controller does: DAG tasks in dependency order, ``when`` conditions, ``withItems``/``withParam``
fan-out (aggregated output parameters as :func:`aggregate` builds them), ``{{...}}``
substitution, input artifacts copied from a temporary directory that stands in for the artifact
repository, output parameters read from their ``valueFrom.path``, ``retryStrategy.limit``
retries and the ``onExit`` template with ``{{workflow.status}}``. Container paths are mapped
into a per-pod temporary directory; ``secretKeyRef`` values come from ``secrets``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
from typing import Any

from ..errors import CompileError
from ._runs import LocalRunner, PodRun, digest

_REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_TASK_PARAM = re.compile(r"^\{\{tasks\.([^.]+)\.outputs\.parameters\.([^}]+)\}\}$")
_TASK_ART = re.compile(r"^\{\{tasks\.([^.]+)\.outputs\.artifacts\.([^}]+)\}\}$")


def substitute(text: str, scope: dict[str, str], where: str) -> str:
    """Replace every ``{{name}}`` in ``text`` from ``scope``.

    Raises:
        CompileError: a reference that does not resolve (names it and ``where``).
    """

    def one(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in scope:
            raise CompileError(f"{where}: reference {{{{{key}}}}} does not resolve")
        return scope[key]

    return _REF.sub(one, text)


def aggregate(values: list[str]) -> str:
    """Aggregate a fanned-out task's output parameter values the way the Argo controller does.

    A JSON list of the values themselves when every one parses as a JSON object or array, else
    a JSON list of their texts (scalars such as ``2.0`` stay the string ``"2.0"``); see
    ``aggregatedJsonValueList`` in Argo's ``workflow/controller/operator.go``.
    """
    parsed: list[Any] = []
    for value in values:
        try:
            item = json.loads(value)
        except ValueError:
            return json.dumps(values)
        if not isinstance(item, (dict, list)):
            return json.dumps(values)
        parsed.append(item)
    return json.dumps(parsed)


def evaluate_when(expr: str) -> bool:
    """Evaluate a substituted ``when`` expression (comparisons, ``&&``, ``||``, literals)."""
    source = expr.replace("&&", " and ").replace("||", " or ")
    tree = ast.parse(source.strip(), mode="eval")

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name) and node.id in ("true", "false"):
            return node.id == "true"
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BoolOp):
            vals = [value(v) for v in node.values]
            return all(vals) if isinstance(node.op, ast.And) else any(vals)
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = value(node.left), value(node.comparators[0])
            ops = {
                ast.Eq: "==",
                ast.NotEq: "!=",
                ast.Lt: "<",
                ast.LtE: "<=",
                ast.Gt: ">",
                ast.GtE: ">=",
            }
            from ..pipelines.refs import _OPS

            return bool(_OPS[ops[type(node.ops[0])]](left, right))
        raise CompileError(f"when expression {expr!r} uses something the check cannot evaluate")

    return bool(value(tree.body))


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
        spec = (
            doc["spec"].get("workflowSpec", doc["spec"])
            if doc.get("kind") == "CronWorkflow"
            else doc["spec"]
        )
        super().__init__(workdir, env, secrets, timeout)
        self.spec = spec
        os.makedirs(workdir, exist_ok=True)
        self.templates = {t["name"]: t for t in spec["templates"]}
        self.scope: dict[str, str] = {}
        for p in spec.get("arguments", {}).get("parameters", []):
            self.scope[f"workflow.parameters.{p['name']}"] = p.get("value", "")
        for key, value in (params or {}).items():
            self.scope[f"workflow.parameters.{key}"] = (
                value if isinstance(value, str) else json.dumps(value)
            )
        missing = [
            p["name"]
            for p in spec.get("arguments", {}).get("parameters", [])
            if f"workflow.parameters.{p['name']}" not in self.scope
            or ("value" not in p and p["name"] not in (params or {}))
        ]
        if missing:
            raise CompileError(f"workflow parameter(s) {missing} have no value; pass params")
        self.artifacts: dict[str, str] = {}  # "tasks.X.outputs.artifacts.Y" -> stored path
        self.task_state: dict[str, str] = {}
        self.lineage: list[dict[str, Any]] = []
        self._count = 0

    # workflow ----------------------------------------------------------------------------------
    def run(self) -> str:
        """Run every task (and the exit handler); return Argo's workflow status."""
        entry = self.templates[self.spec["entrypoint"]]
        failed = False
        for task in _toposort(entry["dag"]["tasks"]):
            deps = task.get("dependencies", [])
            if any(self.task_state.get(d) in ("Failed", "Omitted") for d in deps):
                self.task_state[task["name"]] = "Omitted"
                continue
            if "when" in task and not evaluate_when(
                substitute(task["when"], self.scope, f"task {task['name']!r} when")
            ):
                self.task_state[task["name"]] = "Skipped"
                continue
            ok = self._run_task(task)
            self.task_state[task["name"]] = "Succeeded" if ok else "Failed"
            failed = failed or not ok
        status = "Failed" if failed else "Succeeded"
        if self.spec.get("onExit"):
            self.scope["workflow.status"] = status
            self._run_pod(self.spec["onExit"], self.templates[self.spec["onExit"]], {}, {}, "")
        return status

    def _node(self, task: str) -> str:
        return (
            _node_name(self.templates[task]["container"], task) if task in self.templates else task
        )

    def states(self) -> dict[str, str]:
        """Step name to ``completed`` / ``error`` / ``skipped`` / ``omitted``."""
        out: dict[str, str] = {}
        names = {
            t["name"]: t["template"]
            for t in self.templates[self.spec["entrypoint"]]["dag"]["tasks"]
        }
        for task, state in self.task_state.items():
            node = self._node(names[task])
            out[node] = {
                "Succeeded": "completed",
                "Failed": "error",
                "Skipped": "skipped",
                "Omitted": "omitted",
            }[state]
        for pod in self.pods:
            if pod.task == self.spec.get("onExit"):
                out[pod.node] = pod.state
            elif out.get(pod.node) == "completed" and pod.state != "completed":
                out[pod.node] = pod.state
        return out

    def shape(self) -> list[tuple[Any, ...]]:
        """Return the lineage shape (see :func:`mlflowlet.compilers.check.local_shape`)."""
        by_task: dict[str, list[PodRun]] = {}
        for pod in self.pods:
            by_task.setdefault(pod.task, []).append(pod)
        rows = set()
        for rec in self.lineage:
            producers = by_task.get(rec["producer"], [])
            consumer = self._node(rec["consumer"])
            for pod in producers:
                it = pod.iteration or pod.results.get("best_iteration", 0)
                sha = pod.artifacts.get(rec["output"], "") if rec["artifact"] else ""
                rows.add((pod.node, it, rec["output"], consumer, rec["param"], sha))
        return sorted(rows)

    def _run_task(self, task: dict[str, Any]) -> bool:
        name = task["name"]
        template = self.templates[task["template"]]
        args = task.get("arguments", {})
        items: list[Any] | None = None
        if "withItems" in task:
            items = list(task["withItems"])
        elif "withParam" in task:
            raw = substitute(task["withParam"], self.scope, f"task {name!r} withParam")
            items = json.loads(raw)
            self._lineage_for(task, task["withParam"], _item_param(args))
        for p in args.get("parameters", []):
            self._lineage_for(task, p["value"], p["name"])
        for a in args.get("artifacts", []):
            self._lineage_for(task, a["from"], a["name"], artifact=True)
        runs = [None] if items is None else list(enumerate(items, start=1))
        outputs: list[dict[str, str]] = []
        ok = True
        for entry in runs:
            scope = dict(self.scope)
            iteration = 0
            if entry is not None:
                iteration, item = entry
                scope["item"] = item if isinstance(item, str) else json.dumps(item)
            values = {
                p["name"]: substitute(p["value"], scope, f"task {name!r}")
                for p in args.get("parameters", [])
            }
            arts = {a["name"]: self._artifact(a["from"], name) for a in args.get("artifacts", [])}
            pod = self._run_pod(
                name, template, values, arts, f"{name}-{iteration}", iteration=iteration
            )
            ok = ok and pod.ok
            outputs.append(pod.parameters)
        self._publish(name, template, outputs, fanned=items is not None)
        return ok

    def _publish(
        self, name: str, template: dict[str, Any], outputs: list[dict[str, str]], fanned: bool
    ) -> None:
        for p in template.get("outputs", {}).get("parameters", []):
            key = f"tasks.{name}.outputs.parameters.{p['name']}"
            values = [o[p["name"]] for o in outputs if p["name"] in o]
            if fanned:  # Argo aggregates a fanned-out task's output parameter as a JSON list
                self.scope[key] = aggregate(values)
            elif values:
                self.scope[key] = values[0]

    def _lineage_for(
        self, task: dict[str, Any], raw: str, param: str, artifact: bool = False
    ) -> None:
        match = (_TASK_ART if artifact else _TASK_PARAM).match(raw or "")
        if match:
            self.lineage.append(
                {
                    "producer": match.group(1),
                    "output": match.group(2),
                    "consumer": task["name"],
                    "param": param,
                    "artifact": artifact,
                    "ref": raw,
                }
            )

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
        pod_name: str,
        iteration: int = 0,
    ) -> PodRun:
        self._count += 1
        root = os.path.join(self.workdir, "pods", f"{self._count:04d}-{task}")
        paths: dict[str, str] = {}
        for a in template.get("inputs", {}).get("artifacts", []):
            local = _local(root, a["path"])
            paths[a["path"]] = local
            os.makedirs(os.path.dirname(local), exist_ok=True)
            _copy(artifacts[a["name"]], local)
        outs = template.get("outputs", {})
        for item in [*outs.get("artifacts", []), *outs.get("parameters", [])]:
            path = item["path"] if "path" in item else item["valueFrom"]["path"]
            paths[path] = _local(root, path)
        scope = dict(self.scope)
        scope.update({f"inputs.parameters.{k}": v for k, v in params.items()})
        container = template["container"]
        argv = [
            substitute(a, scope, f"template {template['name']!r}")
            for a in [*container.get("command", []), *container.get("args", [])]
        ]
        argv = [_map_paths(a, paths) for a in argv]
        attempts = 1 + int(template.get("retryStrategy", {}).get("limit", 0))
        pod = PodRun(task=task, node=_node_name(container, task), iteration=iteration)
        env = self._env(container)
        for _ in range(attempts):
            if self.attempt(pod, argv, env):
                break
        if pod.ok:
            for p in outs.get("parameters", []):
                with open(paths[p["valueFrom"]["path"]], encoding="utf-8") as fh:
                    pod.parameters[p["name"]] = fh.read()
            for a in outs.get("artifacts", []):
                stored = os.path.join(
                    self.workdir, "repository", f"{self._count:04d}-{task}", a["name"]
                )
                os.makedirs(os.path.dirname(stored), exist_ok=True)
                if not os.path.exists(paths[a["path"]]):
                    raise CompileError(
                        f"template {template['name']!r} wrote no output "
                        f"artifact {a['name']!r} at {a['path']}"
                    )
                _copy(paths[a["path"]], stored)
                pod.artifacts[a["name"]] = digest(stored)
                self.artifacts[f"tasks.{task}.outputs.artifacts.{a['name']}"] = stored
        self.pods.append(pod)
        return pod

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


def _item_param(args: dict[str, Any]) -> str:
    for p in args.get("parameters", []):
        if p["value"] == "{{item}}":
            return p["name"]
    return ""


def _node_name(container: dict[str, Any], default: str) -> str:
    for var in container.get("env", []):
        if var["name"] == "MLFLOWLET_EXEC_CONFIG":
            return json.loads(var["value"]).get("metadata", {}).get("name", default)
    return default


def _local(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def _map_paths(arg: str, paths: dict[str, str]) -> str:
    for path in sorted(paths, key=len, reverse=True):
        arg = arg.replace(path, paths[path])
    return arg


def _toposort(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done: set[str] = set()
    order: list[dict[str, Any]] = []
    pending = list(tasks)
    while pending:
        ready = [t for t in pending if all(d in done for d in t.get("dependencies", []))]
        if not ready:
            raise CompileError(
                f"tasks {[t['name'] for t in pending]} depend on unknown tasks or on each other"
            )
        for t in ready:
            order.append(t)
            done.add(t["name"])
            pending.remove(t)
    return order
