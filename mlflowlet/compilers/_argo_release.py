"""Argo names and the fields that differ between Argo releases (``argo_version``)."""

from __future__ import annotations

from typing import Any

from ._naming import dns1123

__all__ = ["cache_name", "cron_name", "for_release", "generate_name"]


def cron_name(label: str) -> str:
    """Return a ``CronWorkflow``'s name: at most 52 characters.

    Argo names each workflow it starts ``<name>-<10-digit time>`` and refuses a longer
    CronWorkflow name (``maxCronWorkflowNameLength = 52``, workflow/validate/validate.go;
    https://argo-workflows.readthedocs.io/en/latest/cron-workflows/).
    """
    return dns1123(label, 52)


def generate_name(label: str) -> str:
    """Return ``generateName``: the label cut so the name stays a 63-character label.

    Kubernetes appends 5 random characters; Argo labels pods with the workflow's name.
    """
    return dns1123(label, 57) + "-"


def cache_name(label: str) -> str:
    """Return the cache ConfigMap's name: a DNS-1123 name of at most 63 characters."""
    return dns1123(f"mlflowlet-cache-{label}")


def for_release(doc: dict[str, Any], options: Any) -> dict[str, Any]:
    """Return ``doc`` (dumped from hera's Argo 4 models) shaped for ``options.argo_version``.

    Argo 3.x names the memoization cache ConfigMap with a ``ConfigMapKeySelector`` (``key``
    required), and Argo 3.5 knows only a CronWorkflow's one ``schedule`` (3.6 added
    ``schedules``, the only one in 4.x).
    """
    if not options.argo_version.startswith("3"):
        return doc
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    for template in spec["templates"]:
        if "memoize" in template:
            template["memoize"]["cache"]["configMap"]["key"] = "cache"
    if options.schedule:
        doc["spec"]["schedule"] = doc["spec"].pop("schedules")[0]
    return doc
