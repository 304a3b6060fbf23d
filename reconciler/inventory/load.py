"""Load one inventory revision and validate all of it before anything else runs.

Parsing, per-file models and site-wide rules all report into one list of
problems; only when it is empty does an ``Inventory`` exist. Line and column are
filled in for the files that have problems, so the fast path (a valid site)
never pays for positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from reconciler.inventory.sources import InventorySource
from reconciler.inventory.yamlfile import Mark, YamlProblem, locate, parse_yaml_marked
from reconciler.model.inventory import Group, Image, Inventory, Site
from reconciler.model.problems import InventoryError, Problem
from reconciler.model.rules import site_context

if TYPE_CHECKING:
    from reconciler.inventory.load_cache import GroupFile, LoadCache

ModelT = TypeVar("ModelT", bound=BaseModel)

_HINTS = {
    "string_type": "; put the value in double quotes",
    "int_type": "; write a whole number without quotes, such as 20",
    "bool_type": "; write true or false, without quotes",
    "list_type": "; write a list: [a, b] or one '- item' line per entry",
    "model_type": "; write 'key: value' lines indented below it",
    "dict_type": "; write 'key: value' lines indented below it",
    "ip_v4_address": "; write an IPv4 address such as 10.23.45.1",
    "ip_v4_network": "; write a network such as 10.23.45.0/24 (no host bits set)",
    "too_short": "; add at least one entry",
    "extra_forbidden": "; remove it or fix its spelling (see schemas/ for the valid keys)",
    "missing": "; add it",
}
_SCALARS = (str, int, float, bool, type(None))


def _pydantic_problems(file: str, error: ValidationError) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        message = str(item["msg"])
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        elif item["type"] == "extra_forbidden":
            message = f"unknown key {item['loc'][-1]!r}"
        elif item["type"] == "missing":
            message = f"required key {item['loc'][-1]!r} is missing"
        elif item["loc"] and item["loc"][-1] == "[key]":
            message = (
                f"YAML reads this key as {type(item['input']).__name__} {item['input']!r}; "
                'put it in double quotes exactly as meant, such as "2024.10"'
            )
            problems.append(Problem(file, tuple(item["loc"][:-1]), message))
            continue
        elif isinstance(item.get("input"), _SCALARS):
            message += f" (got {item['input']!r})"
        message += _HINTS.get(item["type"], "")
        path = tuple(item["loc"])
        if item["type"] == "missing":
            path = path[:-1]
        problems.append(Problem(file, path, message))
    return problems


def _validate(file: str, data: Any, model: type[ModelT], problems: list[Problem]) -> ModelT | None:
    if data is None:
        problems.append(Problem(file, (), "the file is empty; write its keys, see INVENTORY.md"))
        return None
    if not isinstance(data, dict):
        problems.append(
            Problem(
                file,
                (),
                "must be a mapping of 'key: value' lines at the top level, "
                f"not a {type(data).__name__}",
            )
        )
        return None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems.extend(_pydantic_problems(file, error))
        return None


def _place(problems: list[Problem], raw: dict[str, bytes]) -> list[Problem]:
    """Line and column for each problem that has none yet, from its file's text."""
    texts: dict[str, str] = {}
    placed = []
    for problem in problems:
        if problem.line is None and problem.file in raw:
            if problem.file not in texts:
                texts[problem.file] = raw[problem.file].decode("utf-8", errors="replace")
            line, column = locate(texts[problem.file], problem.path)
            problem = problem.located(line, column)
        placed.append(problem)
    return placed


def load_inventory(
    source: InventorySource,
    *,
    boot_profiles: frozenset[str] | None = None,
    cache: LoadCache | None = None,
) -> Inventory:
    """Read, parse and validate every file; raise InventoryError listing all problems.

    ``boot_profiles``, when given, are the profiles a group's ``boot`` may name.
    ``cache`` (kept by a long-running process) spares parsing and checking again
    what a previous valid load already did (see ``reconciler.inventory.load_cache``).
    """
    raw = source.read_files()
    entries_key: str | None = None
    if cache is not None:
        inventory = cache.incremental(raw, boot_profiles=boot_profiles, revision=source.revision())
        if inventory is not None:
            return inventory
        # Only a kept cache cuts group files into host entries (the next load's shortcut):
        # a one-off load (validate, plan) neither notes where entries start nor imports it.
        from reconciler.inventory.host_entries import HOSTS_KEY
        from reconciler.inventory.load_cache import GroupFile, ValidLoad

        entries_key = HOSTS_KEY
    problems: list[Problem] = []
    texts: dict[str, str] = {}
    parsed: dict[str, Any] = {}
    marks: dict[str, list[Mark] | None] = {}
    cached: dict[str, BaseModel | None] = {}
    group_files: dict[str, GroupFile] = {}
    for file, content in sorted(raw.items()):
        if not file.endswith(".yaml"):
            if file.endswith(".yml") or file.startswith("site."):
                problems.append(Problem(file, (), "inventory files end in .yaml; rename it"))
            continue
        hit = cache.model(file, content) if cache is not None else None
        group_file = cache.group_file(file, content) if cache is not None else None
        if group_file is not None:
            group_files[file], hit = group_file, group_file.group
        if hit is not None:
            cached[file] = hit
            continue
        try:
            texts[file] = content.decode("utf-8")
        except UnicodeDecodeError as error:
            problems.append(Problem(file, (), f"not UTF-8 text ({error.reason})"))
            continue
        try:
            parsed[file], marks[file] = parse_yaml_marked(texts[file], entries_key)
        except YamlProblem as error:
            problems.append(Problem(file, (), error.message, error.line, error.column))

    site: Site | None = None
    if "site.yaml" not in raw:
        problems.append(
            Problem(
                "site.yaml",
                (),
                "site.yaml is missing; create it with at least 'domain: <your DNS domain>'",
            )
        )
    elif "site.yaml" in cached:
        site = cast(Site, cached["site.yaml"])
    elif "site.yaml" in parsed:
        site = _validate("site.yaml", parsed["site.yaml"], Site, problems)
        if site is not None:
            cached["site.yaml"] = site

    groups: list[tuple[str, Group]] = []
    images: list[tuple[str, Image]] = []
    images_complete = True
    for file in sorted(set(parsed) | set(cached)):
        model: BaseModel | None = cached.get(file)
        if file.startswith("groups/"):
            if model is None:
                model = cached[file] = _validate(file, parsed[file], Group, problems)
                if model is not None and cache is not None:
                    group_files[file] = GroupFile.parsed(model, texts[file], marks[file])
            if model is not None:
                groups.append((file, cast(Group, model)))
        elif file.startswith("images/"):
            if model is None:
                model = cached[file] = _validate(file, parsed[file], Image, problems)
            if model is not None:
                images.append((file, cast(Image, model)))
            else:
                images_complete = False
    if any(p.file.startswith("images/") for p in problems):
        images_complete = False

    # The rules run even when site.yaml is invalid, so every problem shows at once;
    # without a domain they skip only the FQDN length check.
    context = site_context(
        site, groups, images, check_images=images_complete, boot_profiles=boot_profiles
    )
    problems.extend(context.problems)
    if problems or site is None:
        raise InventoryError(_place(problems, raw))
    inventory = Inventory(
        site=site,
        groups=tuple(group for _, group in groups),
        images={image.name: image for _, image in images},
        revision=source.revision(),
    )
    if cache is not None:
        models = {f: m for f, m in cached.items() if m is not None}
        cache.remember(ValidLoad(raw, models, group_files, context, boot_profiles, inventory))
    return inventory
