"""The Kubernetes runtimes: each run is a workload (a Job, an MPIJob, a SparkApplication).

How the package is laid out, bottom to top:

* :mod:`.checks`: image references, DNS-1123 names, quantities, manifest validation (the
  official OpenAPI schemas, strict).
* :mod:`.options`: :class:`~.options.PodOptions`, what every pod of a runtime gets.
* :mod:`.manifests`: pure builders of containers, pod templates, Jobs, Secrets (golden YAML in
  ``tests/runtimes/golden``); :mod:`.crds`: the operators' MPIJob and SparkApplication.
* :mod:`.pods`: reading pod state; :mod:`.client`: the API calls (submit, state, pods, logs,
  delete) for any :class:`~.client.Workload`; :mod:`.watch`: following a workload's runs.
* :mod:`.fluent`: the chainable ``with_*`` settings; :mod:`.base`: :class:`~.base.KubeRuntime`,
  what the runtimes share (run, dry run, submit, abort).
* :mod:`.job`, :mod:`.mpijob`, :mod:`.spark`: the runtimes ``job``, ``mpijob`` and ``spark``.

To add a workload kind: a pure builder in :mod:`.crds`, a :class:`~.client.Workload` (its API,
log container, pod selector, state) and a :class:`~.base.KubeRuntime` subclass that sets
``kind`` and ``workload`` and implements ``_workload_manifest``; register it in
:data:`mlflowlet.runtimes._BUILTIN`.
"""
