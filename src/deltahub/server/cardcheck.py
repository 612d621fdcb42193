"""What ``/api/validate-yaml`` checks in a card's metadata beyond YAML syntax, as the Hub does.

The Hub refuses a card whose ``model-index`` is malformed or whose ``license`` is not one of its
license ids (``other`` with ``license_name`` for anything else), and warns about a card without
metadata. huggingface_hub calls this before every commit that changes README.md and turns errors
into "Invalid metadata in README.md" (and warnings into a UserWarning), so a bad card is refused
before any file is uploaded.
"""

from __future__ import annotations

from typing import Any

# The Hub's license identifiers (https://huggingface.co/docs/hub/repositories-licenses)
LICENSES = frozenset(
    """
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0
lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl
openmdw-1.0 openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license
fair-noncommercial-research-license llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
""".split()
)
EMPTY_WARNING = (
    "Empty or missing yaml metadata in repo card (https://huggingface.co/docs/hub/model-cards#model-card-metadata)"
)
_STRING_OR_LIST = (
    "tags",
    "datasets",
    "language",
    "base_model",
    "metrics",
    "task_categories",
    "size_categories",
    "task_ids",
    "language_creators",
    "annotations_creators",
    "multilinguality",
    "source_datasets",
)


def _strings(value: Any) -> bool:
    return isinstance(value, str) or isinstance(value, list) and all(isinstance(v, str) for v in value)


def _model_index(value: Any) -> list[str]:
    """Errors in a ``model-index`` (a list of {name, results: [{task: {type}, dataset: {name, type},
    metrics: [{type, value}]}]})."""
    if not isinstance(value, list):
        return ['"model-index" must be an array']
    errors: list[str] = []
    for i, model in enumerate(value):
        where = f"model-index[{i}]"
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            errors.append(f'"{where}.name" is required and must be a string')
            continue
        results = model.get("results", [])
        if not isinstance(results, list):
            errors.append(f'"{where}.results" must be an array')
            continue
        for j, result in enumerate(results):
            at = f"{where}.results[{j}]"
            if not isinstance(result, dict):
                errors.append(f'"{at}" must be an object')
                continue
            task, dataset, metrics = result.get("task"), result.get("dataset"), result.get("metrics")
            if not isinstance(task, dict) or not isinstance(task.get("type"), str):
                errors.append(f'"{at}.task.type" is required and must be a string')
            if (
                not isinstance(dataset, dict)
                or not isinstance(dataset.get("name"), str)
                or not isinstance(dataset.get("type"), str)
            ):
                errors.append(f'"{at}.dataset" must have a string "name" and "type"')
            if not isinstance(metrics, list) or not all(
                isinstance(m, dict) and isinstance(m.get("type"), str) and "value" in m for m in metrics
            ):
                errors.append(f'"{at}.metrics" must be an array of objects with "type" and "value"')
    return errors


def validate_metadata(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a card's metadata ``data`` ({} when it has none)."""
    if not data:
        return [], [EMPTY_WARNING]
    errors: list[str] = []
    if "model-index" in data:
        errors += _model_index(data["model-index"])
    if "license" in data:
        licenses = data["license"] if isinstance(data["license"], list) else [data["license"]]
        bad = [x for x in licenses if not isinstance(x, str) or x not in LICENSES]
        if bad:
            errors.append(
                f'"license" must be one of the Hub\'s license ids or "other" (got {str(bad[0])[:60]!r}); '
                "see https://huggingface.co/docs/hub/repositories-licenses"
            )
    for key in _STRING_OR_LIST:
        if key in data and data[key] is not None and not _strings(data[key]):
            errors.append(f'"{key}" must be a string or an array of strings')
    for key in ("pipeline_tag", "library_name", "license_name", "license_link", "pretty_name"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            errors.append(f'"{key}" must be a string')
    return errors, []
