"""Run a compiled KFP pipeline's containers as local subprocesses (for ``--check``).

Each container task goes through kfp.local's own task path
(``task_dispatcher.run_single_task_implementation``: executor input, placeholder resolution,
output collection) with the ``DockerRunner``, whose container launch
(``DockerTaskHandler.run``) is replaced by a local subprocess of the resolved command; the
stand-in also writes the ``executor_output.json`` that KFP's launcher writes for container
components, so the output artifacts are registered.

The DAG level is walked here, over the IR (the subset :mod:`mlflowlet.compilers.kfp` emits):
kfp.local's own orchestrator (kfp 2.17) cannot resolve a ``dsl.If`` condition or a
``dsl.ParallelFor`` over an upstream task's output ("Parent pipeline input argument ... not
found"), so tasks run in dependency order, ``triggerPolicy.condition`` is evaluated over the
task's inputs, ``parameterIterator`` fans out, loop outputs are collected in item order, and
the exit handler gets a ``PipelineTaskFinalStatus``-shaped dict. Secrets of the Kubernetes
platform spec come from ``secrets`` (kfp.local ignores the platform spec).

Where kfp.local is laxer than KFP's backend, this follows the backend: conditions are evaluated
as CEL (:func:`_cel`: typed values, ``int()``/``double()`` casts, no string/number mixing), a
task is retried ``retryPolicy.maxRetryCount`` times, an output parameter that does not parse as
its declared type (a ``KEY__items`` that is not a list) fails its task, as the launcher's does.
Not reproduced (listed in ``unverified``): KFP's cache, retry back-off delays, and which steps
the backend still starts after a failure (its DAGs fail fast).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from .._wire import digest
from ..errors import CompileError, MissingDependencyError
from ._container_step import make_output_folders, plain_config, plain_run
from ._kfp_cel import cel as _cel
from ._naming import kfp_name
from ._runs import LocalRunner, PodRun
from ._workflow import kfp_create_time

_LOCK = threading.Lock()  # kfp.local keeps one global config: one check at a time


class KFPLocalRunner(LocalRunner):
    """Run one compiled KFP document through kfp.local (see the module docstring)."""

    def __init__(
        self,
        doc: dict[str, Any],
        workdir: str,
        params: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, dict[str, str]] | None = None,
        timeout: float = 300.0,
    ) -> None:
        self.spec = doc.get("pipeline_spec", doc)
        self.platform = doc.get("platform_spec", {})
        super().__init__(workdir, env, secrets, timeout)
        self.params = {kfp_name(k): v for k, v in (params or {}).items()}
        self.status = ""
        self._places: list[tuple[int, int]] = []  # (item, items) of each open ParallelFor
        self.messages: dict[str, str] = {}
        self.empty: set[str] = set()  # steps in a ParallelFor over an empty list
        self.outputs: dict[str, tuple[str, Any]] = {}  # the pipeline's outputs
        self._secret_env = self._platform_secrets()

    def _platform_secrets(self) -> dict[str, dict[str, str]]:
        """Executor label → env var → secret value, from the Kubernetes platform spec."""
        out: dict[str, dict[str, str]] = {}
        configs = (
            self.platform.get("platforms", {})
            .get("kubernetes", {})
            .get("deploymentSpec", {})
            .get("executors", {})
        )
        for label, config in configs.items():
            for ref in config.get("secretAsEnv", []):
                name = ref.get("secretName") or ref.get("secretNameParameter", {}).get(
                    "runtimeValue", {}
                ).get("constant", "")
                for kv in ref.get("keyToEnv", []):
                    try:
                        value = self.secrets[name][kv["secretKey"]]
                    except KeyError:
                        raise CompileError(
                            f"executor {label} reads secret {name!r} key {kv['secretKey']!r}; "
                            "give the check its value with secret_values={name: {key: value}}"
                        ) from None
                    out.setdefault(label, {})[kv["envVar"]] = value
        return out

    def run(self) -> str:
        """Run the pipeline; return ``Succeeded`` or ``Failed``."""
        try:
            from google.protobuf import json_format
            from kfp import local
            from kfp.local import docker_task_handler, status
            from kfp.pipeline_spec import pipeline_spec_pb2
        except ImportError:
            raise MissingDependencyError("kfp", "kfp") from None

        os.makedirs(self.workdir, exist_ok=True)
        self.spec = kfp_create_time(self.spec)  # a placeholder KFP fills, kfp.local does not
        self._pb = json_format.ParseDict(
            self.spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False
        )
        runner = self

        def launch(handler: Any) -> Any:  # replaces the `docker run` of DockerTaskHandler
            ok = runner._launch(list(handler.full_command), dict(handler.env_vars or {}))
            return status.Status.SUCCESS if ok else status.Status.FAILURE

        with _LOCK:
            original = docker_task_handler.DockerTaskHandler.run
            docker_task_handler.DockerTaskHandler.run = launch
            try:
                self._root = os.path.join(self.workdir, "root")
                local.init(
                    runner=local.DockerRunner(), raise_on_error=False, pipeline_root=self._root
                )
                self._runner = local.DockerRunner()
                params = self._pipeline_params()
                ok, outputs = self._run_dag("root", self.spec["root"]["dag"], params)
                if ok:
                    self._pipeline_outputs(outputs)
            finally:
                docker_task_handler.DockerTaskHandler.run = original
        self.status = "Succeeded" if ok else "Failed"
        return self.status

    def _pipeline_outputs(self, outputs: dict[str, Any]) -> None:
        """Keep the root DAG's outputs (a single output ``Output`` is the pipeline's ``return``)."""
        declared = self.spec["root"].get("outputDefinitions", {})
        for kind in ("parameters", "artifacts"):
            for name in declared.get(kind, {}):
                key = "return" if name == "Output" else name
                value = outputs.get(name)
                if kind == "artifacts":
                    self.outputs[key] = ("artifact", digest(value.path) if value else "")
                else:
                    self.outputs[key] = ("parameter", value)

    def _pipeline_params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in (
            self.spec["root"].get("inputDefinitions", {}).get("parameters", {}).items()
        ):
            if name in self.params:
                out[name] = self.params[name]
            elif "defaultValue" in spec:
                out[name] = spec["defaultValue"]
            else:
                raise CompileError(f"pipeline parameter {name!r} has no value; pass params")
        return out

    # the DAG walk ---------------------------------------------------------------------------
    def _run_dag(
        self, comp: str, dag: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """Run one DAG component's tasks in order; return (succeeded, the DAG's outputs)."""
        tasks = dag.get("tasks", {})
        outputs: dict[str, dict[str, Any]] = {}
        state: dict[str, str] = {}
        for name in _order(tasks):
            task = tasks[name]
            deps = task.get("dependentTasks", [])
            final = _strategy(task) == "ALL_UPSTREAM_TASKS_COMPLETED"
            if not final and any(
                state.get(d) != "SUCCEEDED" for d in deps if state.get(d) != "SKIPPED"
            ):
                state[name] = "NOT_TRIGGERED"
                continue
            args = self._arguments(task, inputs, outputs, state)
            cond = task.get("triggerPolicy", {}).get("condition")
            try:
                if cond and not _cel(cond, args):
                    state[name] = "SKIPPED"
                    continue
            except CompileError as exc:  # the driver fails the condition's task
                self.messages[name], state[name] = str(exc), "FAILED"
                continue
            ok, outputs[name] = self._run_task(name, task, args)
            state[name] = "SUCCEEDED" if ok else "FAILED"
            if not ok:
                self.note(
                    "KFP's backend fails a DAG fast: after a failure it stops starting new "
                    "tasks, and which of them had already started depends on timing"
                )
        return _dag_succeeded(tasks, state), self._dag_outputs(dag, outputs)

    def _arguments(
        self,
        task: dict[str, Any],
        inputs: dict[str, Any],
        outputs: dict[str, dict[str, Any]],
        state: dict[str, str],
    ) -> dict[str, Any]:
        args: dict[str, Any] = {}
        given = task.get("inputs", {})
        for kind in ("parameters", "artifacts"):
            for key, src in given.get(kind, {}).items():
                if "componentInputParameter" in src or "componentInputArtifact" in src:
                    args[key] = inputs[
                        src.get("componentInputParameter") or src.get("componentInputArtifact")
                    ]
                elif "taskOutputParameter" in src or "taskOutputArtifact" in src:
                    ref = src.get("taskOutputParameter") or src.get("taskOutputArtifact")
                    out_key = ref.get("outputParameterKey") or ref.get("outputArtifactKey")
                    args[key] = outputs.get(ref["producerTask"], {}).get(out_key)
                elif "runtimeValue" in src:
                    args[key] = src["runtimeValue"].get("constant")
                elif "taskFinalStatus" in src:
                    producer = src["taskFinalStatus"]["producerTask"]
                    ok = state.get(producer) in ("SUCCEEDED", "SKIPPED")
                    args[key] = {
                        "state": "SUCCEEDED" if ok else "FAILED",
                        "pipelineTaskName": producer,
                        "error": {},
                    }
        return args

    def _run_task(
        self, name: str, task: dict[str, Any], args: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        ref = task["componentRef"]["name"]
        comp = self.spec["components"][ref]
        if "parameterIterator" in task:
            it = task["parameterIterator"]
            items = (
                args.get(it["items"].get("inputParameter", ""))
                if "inputParameter" in it["items"]
                else json.loads(it["items"]["raw"])
            )
            if isinstance(items, str):
                items = json.loads(items)
            per_item: list[Any] = []
            ok = True
            for i, item in enumerate(items or [], start=1):
                self._places.append((i, len(items or [])))
                try:
                    item_ok, out = self._run_dag(ref, comp["dag"], {**args, it["itemInput"]: item})
                finally:
                    self._places.pop()
                ok, per_item = ok and item_ok, [*per_item, out]
            if not items:  # a loop over nothing completes; its collected outputs are empty
                self.empty |= _executors(self.spec, comp["dag"])
            keys = set(comp["dag"].get("outputs", {}).get("parameters", {}))
            return ok, {k: [out.get(k) for out in per_item] for k in keys}
        if "dag" in comp:
            return self._run_dag(ref, comp["dag"], args)
        return self._run_executor(name, task, comp, args)

    def _run_executor(
        self, name: str, task: dict[str, Any], comp: dict[str, Any], args: dict[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        """Run one container task through kfp.local, with the task's retries."""
        from kfp.local import status

        ref = task["componentRef"]["name"]
        retries = int(task.get("retryPolicy", {}).get("maxRetryCount", 0))
        if retries and task.get("retryPolicy", {}).get("backoffDuration"):
            self.note("retry back-off delays are not waited for here")
        if task.get("cachingOptions", {}).get("enableCache"):
            self.note("KFP's cache may reuse an earlier run of a cached step; here every step runs")
        iteration = 0  # the item's 1-based position, outer-major in nested loops (as locally)
        for item, count in self._places:
            iteration = (iteration - 1 if iteration else 0) * count + item
        self._pod = PodRun(task=name, node=name, iteration=iteration)
        self.pods.append(self._pod)
        braced = sorted(k for k, v in args.items() if "{{" in json.dumps(v, default=str))
        if braced:  # the launcher replaces placeholders in the arguments a value was put in
            self._pod.finish(1, "", f"input(s) {braced} hold '{{{{', which KFP's launcher replaces")
            return False, {}
        ok, outputs = False, dict[str, Any]()
        for _ in range(1 + retries):
            try:
                outputs, result = self._dispatch(name, ref, args)
            except ValueError as exc:  # an output kfp.local cannot read: the launcher fails too
                self._pod.returncode, outputs, result = 1, {}, status.Status.FAILURE
                self._pod.log += f"\n{exc}"
            problem = _output_type_problem(comp, outputs) if result == status.Status.SUCCESS else ""
            if problem:
                self._pod.returncode, self._pod.log = 1, self._pod.log + "\n" + problem
            ok = result == status.Status.SUCCESS and not problem
            if ok:
                break
        if self._pod.plain:  # a container step prints no run record: its outputs, as KFP read them
            plain_run(self._pod, self._pod.plain, values=outputs if ok else {})
        return ok, outputs if ok else {}

    def _dispatch(self, name: str, ref: str, args: dict[str, Any]) -> tuple[Any, Any]:
        from kfp.local import task_dispatcher, utils

        comp = self.spec["components"][ref]
        executor = task_dispatcher.get_executor_spec(self._pb, comp["executorLabel"])
        self._count = getattr(self, "_count", 0) + 1
        outputs, result = task_dispatcher.run_single_task_implementation(
            pipeline_resource_name=self.spec["pipelineInfo"]["name"],
            component_name=f"{self._count:04d}-{name}",
            component_spec=self._pb.components[ref],
            executor_spec=utils.struct_to_executor_spec(executor),
            arguments={k: v for k, v in args.items() if v is not None},
            pipeline_root=self._root,
            runner=self._runner,
            raise_on_error=False,
            block_input_artifact=False,
            unique_pipeline_id="check",
        )
        return outputs or {}, result

    @staticmethod
    def _dag_outputs(dag: dict[str, Any], outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("parameters", "artifacts"):
            for key, spec in dag.get("outputs", {}).get(kind, {}).items():
                sel = spec.get("valueFromParameter") or (spec.get("artifactSelectors") or [{}])[0]
                sub = sel.get("producerSubtask", "")
                out[key] = outputs.get(sub, {}).get(
                    sel.get("outputParameterKey") or sel.get("outputArtifactKey")
                )
        return out

    def _executor_of(self, env: dict[str, str]) -> str:
        config = json.loads(env.get("MLFLOWLET_EXEC_CONFIG", "{}"))
        name = config.get("metadata", {}).get("name", "")
        for label, executor in self.spec.get("deploymentSpec", {}).get("executors", {}).items():
            for var in executor.get("container", {}).get("env", []):
                if (
                    var.get("name") == "MLFLOWLET_EXEC_CONFIG"
                    and json.loads(var.get("value", "{}")).get("metadata", {}).get("name") == name
                ):
                    return label
        return ""

    def _launch(self, argv: list[str], env_vars: dict[str, str]) -> bool:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOWLET_")}
        env.update(env_vars)
        env.update(self._secret_env.get(self._executor_of(env_vars), {}))
        env.update(self.env)
        pod = self._pod
        config = json.loads(env_vars.get("MLFLOWLET_EXEC_CONFIG", "{}"))
        pod.node = config.get("metadata", {}).get("name", "") or pod.node
        pod.plain = plain_config(env_vars)
        if pod.plain:
            make_output_folders(argv, self._root)
        if self.attempt(pod, argv, env):
            outputs = {}
            for i, arg in enumerate(argv[:-1]):
                if arg == "--output":
                    key, _, target = argv[i + 1].partition("=")
                    target = target.rstrip("/")
                    if os.path.exists(target):
                        pod.artifacts[key] = digest(target)
                        outputs[target] = key
            _register_artifacts(outputs)
        return pod.ok

    def states(self) -> dict[str, str]:
        """Step name to ``completed`` / ``error``; steps a condition held back are ``skipped``.

        A step in a ``ParallelFor`` over an empty list is ``completed``, as a local map over
        nothing.
        """
        out: dict[str, str] = {}
        for pod in self.pods:
            if out.get(pod.node) in (None, "completed"):
                out[pod.node] = pod.state
        for name in self.empty:
            out.setdefault(name, "completed")
        comps = self.spec.get("components", {}).values()
        dags = [self.spec["root"]["dag"], *(c["dag"] for c in comps if "dag" in c)]
        for dag in dags:
            for task in dag.get("tasks", {}).values():
                name = task.get("taskInfo", {}).get("name", "")
                comp_ref = task.get("componentRef", {}).get("name", "")
                if (
                    name
                    and name not in out
                    and "executorLabel" in self.spec["components"].get(comp_ref, {})
                ):
                    out[name] = "skipped"
        return out

    def shape(self) -> list[tuple[Any, ...]]:
        """Return the lineage shape, read from the IR's data flow and the pods that ran."""
        from ._kfp_lineage import kfp_lineage

        return kfp_lineage(self.spec, self.pods, self.empty)


_PB_TYPES: dict[str, Any] = {
    "STRING": str,
    "NUMBER_DOUBLE": (int, float),
    "NUMBER_INTEGER": (int, float),
    "BOOLEAN": bool,
    "LIST": list,
    "STRUCT": dict,
}


def _output_type_problem(comp: dict[str, Any], outputs: dict[str, Any]) -> str:
    """Return what KFP's launcher would refuse among a task's output parameters ('' if none)."""
    declared = comp.get("outputDefinitions", {}).get("parameters", {})
    for key, spec in sorted(declared.items()):
        want = _PB_TYPES.get(spec.get("parameterType", ""), object)
        value = outputs.get(key)
        if key in outputs and (
            not isinstance(value, want) or (isinstance(value, bool) and want is not bool)
        ):
            return (
                f"output parameter {key!r} is {type(value).__name__} {str(value)[:60]!r}, "
                f"not the declared {spec.get('parameterType')}: KFP's launcher fails the task"
            )
    return ""


def _register_artifacts(outputs: dict[str, str]) -> None:
    """Write the ``executor_output.json`` that KFP's launcher writes for a container component.

    On a cluster the launcher (not the user's container) records the output artifacts a
    container component wrote to ``{{$.outputs.artifacts[...].path}}``; kfp.local only reads
    them from this file, so the stand-in launch writes it: one artifact per output path, whose
    name is the path's last part (kfp.local puts artifact ``x`` at ``<task root>/x``).
    """
    by_root: dict[str, dict[str, Any]] = {}
    for path in outputs:
        root, name = os.path.split(path)
        by_root.setdefault(root, {})[name] = {
            "artifacts": [{"name": name, "uri": path, "metadata": {}}]
        }
    for root, artifacts in by_root.items():
        with open(os.path.join(root, "executor_output.json"), "w", encoding="utf-8") as fh:
            json.dump({"artifacts": artifacts}, fh)


def _executors(spec: dict[str, Any], dag: dict[str, Any]) -> set[str]:
    """Return the display names of the container tasks in a DAG (nested groups included)."""
    found: set[str] = set()
    for task in dag.get("tasks", {}).values():
        comp = spec["components"].get(task["componentRef"]["name"], {})
        if "dag" in comp:
            found |= _executors(spec, comp["dag"])
        else:
            found.add(task["taskInfo"]["name"])
    return found


def _dag_succeeded(tasks: dict[str, Any], state: dict[str, str]) -> bool:
    """Whether a DAG succeeded, as KFP's backend decides it (an Argo DAG, Argo's leaf rule).

    The backend compiles a task with ``ALL_UPSTREAM_TASKS_COMPLETED`` (an ``ExitHandler``'s exit
    task, an ``ignore_upstream_failure()`` task) as an Argo exit lifecycle hook of its upstream
    tasks (``argocompiler/dag.go``, KFP >= 2.4), outside the DAG: its state never counts. Of the
    others, a task that ran keeps its state as its branch state; a skipped or untriggered one
    inherits a failure from any task it depends on; the DAG failed when a leaf's branch failed.
    """
    from ._validate import _data_sources

    def ups(name: str) -> list[str]:
        return [*tasks[name].get("dependentTasks", []), *_data_sources(tasks[name])]

    hooks = {n for n, t in tasks.items() if _strategy(t) == "ALL_UPSTREAM_TASKS_COMPLETED"}
    branch: dict[str, bool] = {}
    for name in _order(tasks):
        own = state.get(name, "NOT_TRIGGERED")
        if name in hooks:
            continue
        if own in ("SUCCEEDED", "FAILED"):
            branch[name] = own == "SUCCEEDED"
        else:
            branch[name] = all(branch.get(u, True) for u in ups(name))
    needed = {d for name in branch for d in ups(name)}
    return all(ok for name, ok in branch.items() if name not in needed)


def _strategy(task: dict[str, Any]) -> str:
    return str(task.get("triggerPolicy", {}).get("strategy", ""))


def _order(tasks: dict[str, Any]) -> list[str]:
    """Task names in dependency order (``dependentTasks`` and data producers)."""
    from ._validate import _data_sources

    done: list[str] = []
    pending = list(tasks)
    while pending:
        ready = [
            n
            for n in pending
            if all(
                d in done
                for d in [*tasks[n].get("dependentTasks", []), *_data_sources(tasks[n])]
                if d in tasks
            )
        ]
        if not ready:
            raise CompileError(f"KFP tasks {pending} depend on each other")
        done += ready
        pending = [n for n in pending if n not in ready]
    return done
