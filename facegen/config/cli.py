"""The command line of every entry point: Hydra overrides and Lightning-CLI-style flags side by side.

``python -m facegen.train model=facetunegan trainer.max_epochs=3`` (Hydra) and
``python -m facegen.train --model facetunegan --trainer.max_epochs 3`` (LightningCLI style, also
``--trainer.max_epochs=3``) give the same config: :func:`prepare` translates the flags into Hydra overrides
before Hydra reads ``sys.argv``, so there is one config and one run folder. A flag naming a config group
(``--model stylegan2``) selects an option; a flag naming a key under a node that builds something
(``--trainer.*``, ``--model.*``, ``--data.*``, ...) sets it, or adds it when the config does not list it yet
(LightningCLI accepts every argument of the class; :mod:`facegen.config.schema` then checks it against the
class's signature, with a "did you mean" for a misspelt one); other keys must exist.

Also (as LightningCLI): ``--print_config`` prints the resolved config as YAML and exits 0; ``--help`` lists
each config group's options with a one-line description (the first comment line of
``conf/<group>/<option>.yaml``) and the most used keys with their meaning and units (their comments in the
YAML files). A misspelt group option (``model=facetunegna``) or key is refused before anything runs, with a
difflib "did you mean". Hydra's own flags (``-m``, ``--cfg``, ``--hydra-help``, ...) pass through unchanged.
"""
from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from facegen.config.blocks import did_you_mean
from facegen.config.schema import signature_of
from facegen.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
# Hydra's flags that take a value, and those that take none (``--info`` takes an optional one)
HYDRA_VALUE_FLAGS = frozenset({"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                               "--config-dir", "-cd", "--experimental-rerun"})
HYDRA_FLAGS = frozenset({"--hydra-help", "--version", "-m", "--multirun", "--resolve", "--info", "-i", "--run",
                         "-r", "--shell-completion", "-sc"})
# Hydra modes in which facegen adds nothing (Hydra composes or sweeps itself)
PASS_THROUGH = frozenset({"--cfg", "-c", "--info", "-i", "--hydra-help", "--version", "-m", "--multirun",
                          "--shell-completion", "-sc", "--experimental-rerun"})
# groups whose selected option's commented keys ``--help`` lists (the rest are listed by option only)
HELP_KEY_GROUPS = ("trainer", "data", "model")
_OVERRIDE = re.compile(r"^(?P<prefix>[+~]*)(?P<key>[\w./@-]+?)(?P<eq>=)(?P<value>.*)$", re.S)


def groups() -> list[str]:
    """The config groups: the sub-folders of ``conf/`` (``model``, ``data``, ``trainer``, ...)."""
    return sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def options(group: str) -> list[str]:
    """The options of a config group (``conf/<group>/<option>.yaml``), sorted."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def description(path: Path) -> str:
    """The first comment line of a YAML file (``# @package`` lines skipped), or ``""``."""
    for line in path.read_text().splitlines():
        text = line.strip()
        if not text.startswith("#"):
            if text:
                break
            continue
        text = text.lstrip("#").strip()
        if text and not text.startswith("@package"):
            return text
    return ""


def check_group_choices(overrides: Sequence[str]) -> None:
    """Refuse ``group=option`` overrides naming an option that has no ``conf/<group>/<option>.yaml``.

    Raises:
        ConfigError: ``model=facetunegna: no such option; did you mean 'facetunegan'? (options: ...)``.
    """
    known = set(groups())
    for override in overrides:
        match = _OVERRIDE.match(override)
        if not match or match["key"] not in known or "~" in match["prefix"]:
            continue
        value = match["value"].strip()
        if value in ("null", "") or any(c in value for c in ",[]()*$"):  # none, sweeps, interpolations
            continue
        if not (CONF_DIR / match["key"] / f"{value}.yaml").is_file():
            choices = options(match["key"])
            raise ConfigError(f"{match['key']}={value}: no such option{did_you_mean(value, choices)} "
                              f"(options: {', '.join(choices)})")


def _compose(config_name: str, overrides: Sequence[str], hydra: bool = False) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=config_name):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=hydra)


def _unknown_key_error(config_name: str, overrides: list[str], key: str, error: Exception) -> ConfigError:
    """A did-you-mean for ``key``, from the keys of its parent node in the config composed without it."""
    others = [o for o in overrides if (m := _OVERRIDE.match(o)) is None or m["key"] != key]
    parent, _, leaf = key.rpartition(".")
    try:
        node = _compose(config_name, others)
        node = OmegaConf.select(node, parent) if parent else node
    except Exception:
        node = None
    if not isinstance(node, DictConfig):
        return ConfigError(f"{key}: {str(error).splitlines()[0]}")
    candidates = [str(k) for k in node.keys()]
    if "_target_" in node:  # a node that builds something: its target's arguments count too
        try:
            candidates += list(signature_of(str(node["_target_"])).parameters)
        except ConfigError:
            pass
    hint = did_you_mean(leaf, candidates)
    value = next((m["value"] for o in overrides if (m := _OVERRIDE.match(o)) and m["key"] == key), "...")
    return ConfigError(f"{key}: unknown key{hint} (keys of {parent or 'the config'}: {', '.join(map(str, node))}; "
                       f"to add a new key: +{key}={value})")


def compose_checked(config_name: str, overrides: Sequence[str], hydra: bool = False) -> DictConfig:
    """The composed config, with Hydra's composition errors turned into :class:`ConfigError` with a "did you mean".

    Raises:
        ConfigError: an unknown group option or key, or an override Hydra cannot parse.
    """
    overrides = list(overrides)
    check_group_choices(overrides)
    try:
        return _compose(config_name, overrides, hydra)
    except HydraException as error:
        text = str(error)
        if match := re.search(r"Could not override '([^']+)'", text):
            raise _unknown_key_error(config_name, overrides, match[1], error) from None
        if match := re.search(r"Could not find '([^']+)/([^'/]+)'", text):
            group, option = match[1], match[2]
            choices = options(group) if (CONF_DIR / group).is_dir() else []
            raise ConfigError(f"{group}={option}: no such option{did_you_mean(option, choices)} "
                              f"(options: {', '.join(choices)})") from None
        raise ConfigError(" ".join(text.split())) from None


def _is_built_node(cfg: DictConfig, key: str) -> bool:
    """True when the parent of ``key`` is a config node with a ``_target_`` (its keys are checked by the schema)."""
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent) if parent else None
    return isinstance(node, DictConfig) and "_target_" in node


def translate(config_name: str, argv: Sequence[str]) -> tuple[list[str], list[str], dict[str, bool]]:
    """``(hydra_flags, overrides, flags)``: ``argv`` with its Lightning-CLI-style flags rewritten as Hydra
    overrides; the new command line is ``hydra_flags + overrides``.

    ``flags`` has ``help``, ``print_config`` and ``hydra_mode`` (one of Hydra's own mode flags such as ``--cfg``
    or ``-m`` is present: facegen then checks nothing and Hydra composes or sweeps as it does).

    Raises:
        ConfigError: a flag without a value, or (composing to see which keys exist) an unknown option or key.
    """
    argv = list(argv)
    flags = {"help": False, "print_config": False, "hydra_mode": False}
    hydra_flags: list[str] = []
    plain: list[str] = []          # Hydra-form overrides, in order
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        name, eq, value = token.partition("=")
        if token in ("--help", "-h"):
            flags["help"] = True
        elif name == "--print_config":
            flags["print_config"] = True
        elif name in HYDRA_VALUE_FLAGS or token in HYDRA_FLAGS:
            flags["hydra_mode"] |= name in PASS_THROUGH
            hydra_flags.append(token)
            if name in HYDRA_VALUE_FLAGS and not eq and i < len(argv):
                hydra_flags.append(argv[i])
                i += 1
        elif token.startswith("--") and len(token) > 2:
            key = name[2:]
            if not eq:
                if i >= len(argv) or argv[i].startswith("--"):
                    raise ConfigError(f"--{key}: needs a value (--{key} <value> or --{key}=<value>)")
                value = argv[i]
                i += 1
            pairs.append((key, value))
        else:
            plain.append(token)
    group_names = set(groups())
    overrides = plain + [f"{key}={value}" for key, value in pairs if key in group_names]
    keys = [(key, value) for key, value in pairs if key not in group_names]
    base = compose_checked(config_name, overrides) if keys and not flags["hydra_mode"] else None
    for key, value in keys:
        prefix = ""
        if base is not None and OmegaConf.select(base, key, default=_ABSENT, throw_on_missing=False) is _ABSENT:
            prefix = "++" if _is_built_node(base, key) else ""
        overrides.append(f"{prefix}{key}={value}")
    return hydra_flags, overrides, flags


_ABSENT = object()


def resolved_config(config_name: str, overrides: Sequence[str]) -> DictConfig:
    """The config a run with ``overrides`` would get, resolved, without the ``hydra`` node (``--print_config``).

    Hydra's run-time values are filled in as a run would have them (``hydra:runtime.output_dir`` = the run
    folder it would create, not created here)."""
    cfg = compose_checked(config_name, overrides, hydra=True)
    previous = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(cfg)
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = os.path.abspath(str(OmegaConf.select(cfg, "hydra.run.dir")))
        HydraConfig.instance().set_config(cfg)
        with read_write(cfg), open_dict(cfg):
            del cfg["hydra"]
        return OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))
    finally:
        HydraConfig.instance().cfg = previous


def _commented_keys(path: Path, group: str, seen: set[Path] | None = None) -> list[tuple[str, str, str]]:
    """``(dotted key, value, comment)`` of the lines ``key: value  # comment`` of a config file, following the
    ``defaults`` entries that name options of the same group (``trainer/gpu`` -> ``trainer/cpu``)."""
    seen = set() if seen is None else seen
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    text = path.read_text()
    package_global = "@package _global_" in text
    rows: list[tuple[str, str, str]] = []
    try:
        defaults = (yaml.safe_load(text) or {}).get("defaults", []) if path.suffix == ".yaml" else []
    except yaml.YAMLError:
        defaults = []
    for entry in defaults if isinstance(defaults, list) else []:
        if isinstance(entry, str) and entry != "_self_" and "/" not in entry:
            rows += _commented_keys(path.parent / f"{entry}.yaml", group, seen)
    stack: list[tuple[int, str]] = []
    for line in text.splitlines():
        match = re.match(r"^(\s*)([A-Za-z_][\w]*):\s*(.*?)\s*(?:#\s*(.*))?$", line)
        if not match or line.lstrip().startswith("#"):
            continue
        indent, key, value, comment = len(match[1]), match[2], match[3], match[4]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if key in ("defaults", "_target_") or not comment or value.startswith("#"):
            continue
        full = dotted if package_global else f"{group}.{dotted}"
        rows = [r for r in rows if r[0] != full] + [(full, value.split("#")[0].strip(), comment)]
    return rows


def help_text(config_name: str, overrides: Sequence[str], prog: str) -> str:
    """The ``--help`` page of an entry point (see the module docstring)."""
    primary = CONF_DIR / f"{config_name}.yaml"
    lines = [f"usage: {prog} [group=option ...] [key=value ...] [--key value ...] [--print_config] [--help]", ""]
    head = []
    for line in primary.read_text().splitlines():
        if not line.startswith("#"):
            break
        head.append(line.lstrip("#").rstrip()[1:] if line.startswith("# ") else line.lstrip("#"))
    lines += head + [""] if head else []
    choices: dict[str, str] = {}
    try:
        cfg = compose_checked(config_name, overrides, hydra=True)
        choices = {k: v for k, v in OmegaConf.to_container(cfg.hydra.runtime.choices).items()
                   if not k.startswith("hydra") and k in groups()}
    except ConfigError as error:
        lines += [f"(config not composed: {error})", ""]
    if choices:
        lines.append("Config groups (group=option or --group option; * = selected):")
        for group in sorted(choices):
            lines.append(f"  {group}")
            width = max(len(o) for o in options(group)) + 2
            for option in options(group):
                mark = "*" if option == choices[group] else " "
                lines.append(f"    {mark} {option:<{width}}{description(CONF_DIR / group / f'{option}.yaml')}")
        lines.append("")
    rows = [(k, v, c) for k, v, c in _commented_keys(primary, "")]
    rows = [(k.lstrip("."), v, c) for k, v, c in rows]
    for group in HELP_KEY_GROUPS:
        if choices.get(group) not in (None, "null"):
            rows += _commented_keys(CONF_DIR / group / f"{choices[group]}.yaml", group)
    if rows:
        lines.append("Keys (key=value, --key value or --key=value; units in the comments; --print_config shows all):")
        width = min(34, max(len(k) for k, _, _ in rows) + 1)
        for key, value, comment in rows:
            lines.append(f"  {key:<{width}} {value:<11} {comment}")
        lines.append("")
    lines += ["Flags: --print_config (print the resolved config as YAML and exit), --help; Hydra's own: "
              "-m/--multirun, --cfg job, --hydra-help."]
    return "\n".join(lines)


def prepare(config_name: str, argv: Sequence[str] | None = None, prog: str | None = None) -> list[str]:
    """Translate an entry point's command line into Hydra's (see the module docstring); returns the new argv.

    ``--help`` and ``--print_config`` print to stdout and exit 0; a bad flag, group option or key prints one
    line to stderr and exits 2 (nothing has been created).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = prog or f"python -m facegen.{config_name}"
    try:
        hydra_flags, overrides, flags = translate(config_name, argv)
        if flags["help"]:
            print(help_text(config_name, overrides, prog))
            raise SystemExit(0)
        if flags["print_config"]:
            print(OmegaConf.to_yaml(resolved_config(config_name, overrides)), end="")
            raise SystemExit(0)
        if not flags["hydra_mode"]:
            compose_checked(config_name, overrides)
    except ConfigError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return hydra_flags + overrides
