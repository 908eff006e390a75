"""Semantic checks of compiled documents that no schema catches.

* Argo: every ``{{...}}`` reference resolves (workflow parameters, template inputs, earlier
  tasks' outputs, ``item`` inside a fan-out), every artifact ``from`` names a declared output,
  every edge of the pipeline DAG appears as a task dependency (``depends`` or
  ``dependencies``), and every memoization key satisfies Argo's cache-key rule.
* KFP: every ``producerTask`` names a task of the same DAG, every ``{{$.inputs...}}`` /
  ``{{$.outputs...}}`` placeholder of an executor names an input or output of its component,
  and every DAG edge appears as a dependency (``dependentTasks`` of the task or an enclosing
  condition / loop group).

Each function returns a list of problems (empty when the document is sound).
"""

from __future__ import annotations

import re
from typing import Any

from ._argo_expr import CACHE_KEY, depends_tasks, memoize_key
from ._naming import dns1123

_ARGO_REF = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_KFP_REF = re.compile(r"\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\]")


def _argo_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["workflowSpec"] if doc.get("kind") == "CronWorkflow" else doc["spec"]


def validate_argo(doc: dict[str, Any], dag: Any = None) -> list[str]:
    """Return the problems of a compiled Argo document (see the module docstring)."""
    spec = _argo_spec(doc)
    problems: list[str] = []
    templates = {t["name"]: t for t in spec["templates"]}
    wf_params = {
        f"workflow.parameters.{p['name']}" for p in spec.get("arguments", {}).get("parameters", [])
    }
    known = wf_params | {
        "workflow.status",
        "workflow.failures",
        "workflow.name",
        "workflow.namespace",
        "workflow.uid",
        "workflow.creationTimestamp",
        "workflow.duration",  # global: the controller's seconds so far (Argo validates a prefix)
    }
    main = templates[spec["entrypoint"]]
    tasks = {t["name"]: t for t in main["dag"]["tasks"]}
    # every DAG template: main, and the bodies of mapped sub-pipelines (_argo_loops)
    dags = [t for t in spec["templates"] if "dag" in t]
    callers: dict[str, list[tuple[dict[str, Any], str]]] = {}  # template -> (task, its DAG)
    for tpl in dags:
        for task in tpl["dag"]["tasks"]:
            callers.setdefault(task["template"], []).append((task, tpl["name"]))
    needs: dict[str, set[str]] = {}  # task -> what it, or a loop task running it, depends on
    for tpl in dags:
        inputs = {
            f"inputs.parameters.{p['name']}" for p in tpl.get("inputs", {}).get("parameters", [])
        }
        here = {t["name"]: t for t in tpl["dag"]["tasks"]}
        problems += _dag_problems(here, templates, known | inputs)
        for name, task in here.items():
            deps = depends_tasks(task)
            inside = {n for d in deps if d in here for n in _inside(here[d]["template"], templates)}
            needs.setdefault(name, set()).update(deps, inside, _enclosing(tpl["name"], callers))
    problems += _output_problems(main, tasks, templates)
    for template in spec["templates"]:
        problems += _memoize_problems(template)
        if "container" not in template:
            continue
        inputs = {
            f"inputs.parameters.{p['name']}"
            for p in template.get("inputs", {}).get("parameters", [])
        }
        retries = {"retries"} if "retryStrategy" in template else set()  # Argo: only there
        for arg in template["container"].get("args", []):
            for ref in _ARGO_REF.findall(arg):
                if ref not in inputs | known | retries:
                    problems.append(
                        f"template {template['name']!r}: {{{{{ref}}}}} does not resolve"
                    )
    if dag is not None:
        for edge in dag.edges:
            source, target = dns1123(edge.source), dns1123(edge.target)
            if source not in needs.get(target, set()):
                problems.append(
                    f"edge {edge.source} -> {edge.target} ({edge.kind}) is not a dependency"
                )
    return problems


def _inside(template: str, templates: dict[str, Any]) -> set[str]:
    """Return the tasks DAG ``template`` runs (a loop task's body steps), nested ones too."""
    found: set[str] = set()
    for task in templates.get(template, {}).get("dag", {}).get("tasks", []):
        found.add(task["name"])
        if task["template"] != template:
            found |= _inside(task["template"], templates)
    return found


def _enclosing(template: str, callers: dict[str, list[tuple[dict[str, Any], str]]]) -> set[str]:
    """Return what the tasks running DAG ``template`` (and theirs, up to ``main``) depend on."""
    found: set[str] = set()
    pending, seen = [template], set()
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            for task, owner in callers.get(name, []):
                found.update(depends_tasks(task))
                pending.append(owner)
    return found


def _dag_problems(tasks: dict[str, Any], templates: dict[str, Any], known: set[str]) -> list[str]:
    """Return the problems of one DAG template's tasks: templates, depends, references, inputs."""
    problems: list[str] = []
    for name, task in tasks.items():
        if task["template"] not in templates:
            problems.append(f"task {name!r} uses unknown template {task['template']!r}")
            continue
        outs = set()
        unknown = [dep for dep in depends_tasks(task) if dep not in tasks]
        problems += [f"task {name!r} depends on unknown task {dep!r}" for dep in unknown]
        for dep in _ancestors(name, tasks):  # Argo resolves the outputs of every ancestor
            t_out = templates[tasks[dep]["template"]].get("outputs", {})
            outs |= {
                f"tasks.{dep}.outputs.parameters.{p['name']}" for p in t_out.get("parameters", [])
            }
            outs |= {
                f"tasks.{dep}.outputs.artifacts.{a['name']}" for a in t_out.get("artifacts", [])
            }
            if _fans(tasks[dep]):  # every output of each item, aggregated
                outs.add(f"tasks.{dep}.outputs.parameters")
        scope = known | outs | ({"item"} if _fans(task) else set())
        args = task.get("arguments", {})
        texts = [p.get("value", "") for p in args.get("parameters", [])]
        texts += [a.get("from", "") for a in args.get("artifacts", [])]
        texts += [task.get("when", ""), task.get("withParam", "")]
        for text in texts:
            for ref in _ARGO_REF.findall(text):
                if ref not in scope and not (ref.startswith("item.") and _fans(task)):
                    problems.append(f"task {name!r}: {{{{{ref}}}}} does not resolve")
        declared = {
            p["name"] for p in templates[task["template"]].get("inputs", {}).get("parameters", [])
        }
        given = {p["name"] for p in args.get("parameters", [])}
        if declared - given:
            problems.append(f"task {name!r} gives no value to inputs {sorted(declared - given)}")
    return problems


def _output_problems(
    main: dict[str, Any], tasks: dict[str, Any], templates: dict[str, Any]
) -> list[str]:
    """Every workflow output must name an output its task's template declares."""
    outs = main.get("outputs", {})
    texts = [p.get("valueFrom", {}).get("parameter", "") for p in outs.get("parameters", [])]
    texts += [a.get("from", "") for a in outs.get("artifacts", [])]
    problems = []
    for text in texts:
        for ref in _ARGO_REF.findall(text):
            parts = ref.split(".")
            task = tasks.get(parts[1]) if len(parts) == 5 and parts[0] == "tasks" else None
            declared = {}
            if task is not None:
                t_out = templates[task["template"]].get("outputs", {})
                declared = {
                    "parameters": {p["name"] for p in t_out.get("parameters", [])},
                    "artifacts": {a["name"] for a in t_out.get("artifacts", [])},
                }
            if task is None or parts[4] not in declared.get(parts[3], set()):
                problems.append(f"workflow output {{{{{ref}}}}} does not resolve")
    return problems


def _fans(task: dict[str, Any]) -> bool:
    """Whether ``task`` fans out (``{{item}}``, ``{{item.key}}`` and its aggregates exist)."""
    return "withParam" in task or "withItems" in task


def _ancestors(name: str, tasks: dict[str, Any]) -> set[str]:
    """Every task ``name`` depends on, directly or not (``common.GetTaskAncestry`` in Argo)."""
    found: set[str] = set()
    pending = [d for d in depends_tasks(tasks[name]) if d in tasks]
    while pending:
        dep = pending.pop()
        if dep not in found:
            found.add(dep)
            pending += [d for d in depends_tasks(tasks[dep]) if d in tasks]
    return found


def _memoize_problems(template: dict[str, Any]) -> list[str]:
    key = template.get("memoize", {}).get("key")
    if key is None:
        return []
    names = {
        f"inputs.parameters.{p['name']}" for p in template.get("inputs", {}).get("parameters", [])
    }
    example = memoize_key(key, {name: "x" for name in names})
    if not CACHE_KEY.match(example):
        return [f"template {template['name']!r}: memoize key {key!r} breaks Argo's cache-key rule"]
    return []


def _kfp_tasks(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], list[str]]]:
    """Every DAG task as ``(dag component, task name, task, dependencies incl. enclosing)``."""
    comps = spec.get("components", {})
    out: list[tuple[str, str, dict[str, Any], list[str]]] = []

    def walk(comp_name: str, dag: dict[str, Any], inherited: list[str]) -> None:
        for name, task in dag.get("tasks", {}).items():
            deps = inherited + list(task.get("dependentTasks", []))
            out.append((comp_name, name, task, deps))
            ref = task.get("componentRef", {}).get("name", "")
            if "dag" in comps.get(ref, {}):
                walk(ref, comps[ref]["dag"], deps + _data_sources(task))

    walk("root", spec["root"]["dag"], [])
    return out


def _data_sources(task: dict[str, Any]) -> list[str]:
    inputs = task.get("inputs", {})
    found = []
    for item in [*inputs.get("parameters", {}).values(), *inputs.get("artifacts", {}).values()]:
        for key in ("taskOutputParameter", "taskOutputArtifact"):
            if key in item:
                found.append(item[key]["producerTask"])
    return found


def validate_kfp(spec: dict[str, Any], dag: Any = None) -> list[str]:
    """Return the problems of a compiled KFP ``PipelineSpec`` dict (see the module docstring)."""
    problems: list[str] = []
    comps = spec.get("components", {})
    dags = {"root": spec["root"]["dag"], **{k: v["dag"] for k, v in comps.items() if "dag" in v}}
    for comp_name, name, task, _deps in _kfp_tasks(spec):
        siblings = dags[comp_name].get("tasks", {})
        for producer in _data_sources(task) + list(task.get("dependentTasks", [])):
            if producer not in siblings:
                problems.append(
                    f"task {name!r} in {comp_name}: producerTask {producer!r} is not "
                    "a task of the same DAG"
                )
        if task.get("componentRef", {}).get("name") not in comps:
            problems.append(f"task {name!r} refers to unknown component")
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for comp_name, comp in comps.items():
        label = comp.get("executorLabel")
        if not label:
            continue
        if label not in executors:
            problems.append(f"component {comp_name!r} has no executor {label!r}")
            continue
        io = {
            ("inputs", kind, key)
            for kind in ("parameters", "artifacts")
            for key in comp.get("inputDefinitions", {}).get(kind, {})
        }
        io |= {
            ("outputs", kind, key)
            for kind in ("parameters", "artifacts")
            for key in comp.get("outputDefinitions", {}).get(kind, {})
        }
        container = executors[label]["container"]
        for arg in [*container.get("command", []), *container.get("args", [])]:
            for ref in _KFP_REF.findall(arg):
                if ref not in io:
                    problems.append(
                        f"executor {label!r}: placeholder {ref} names no "
                        f"input/output of {comp_name!r}"
                    )
    if dag is not None:
        tasks = _kfp_tasks(spec)
        nested: dict[str, set[str]] = {}  # group task -> every task inside it
        for comp_name, name, _t, _d in tasks:
            for _pc, parent, ptask, _pd in tasks:
                if ptask.get("componentRef", {}).get("name") == comp_name:
                    nested.setdefault(parent, set()).add(name)
        for _ in range(len(tasks)):  # close over nesting depth
            for names in nested.values():
                names |= {n for inner in list(names) for n in nested.get(inner, ())}
        by_display = {
            t.get("taskInfo", {}).get("name"): (name, deps) for _c, name, t, deps in tasks
        }
        for edge in dag.edges:
            source, target = by_display.get(edge.source), by_display.get(edge.target)
            if source is None or target is None:
                problems.append(f"edge {edge.source} -> {edge.target}: a step has no task")
                continue
            deps = set(target[1]) | {n for d in target[1] for n in nested.get(d, ())}
            if source[0] not in deps:
                problems.append(
                    f"edge {edge.source} -> {edge.target} ({edge.kind}) is not a dependency"
                )
    return problems
