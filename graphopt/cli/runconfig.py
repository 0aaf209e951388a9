"""``RunConfig``: a training run described as data (command line, YAML or TOML), and building it.

A workflow is named ``path/to/file.py:name``: a function built from ``@go.op``s, a ``go.Module``
instance, or a ``go.Module`` subclass (instantiated without arguments). Its parameters are the
module-level params, trainable ops and modules of that file. Each optimizer takes the params it
names, or else every param of a kind it accepts that no earlier optimizer took.
"""

from __future__ import annotations

import difflib
import importlib.util
import inspect
import os
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PydanticSchemaGenerationError, PydanticUserError,
                      TypeAdapter, ValidationError)

from graphopt.errors import GraphoptError, ParamValidationError
from graphopt.feedback.feedback import Feedback
from graphopt.graph.module import Module
from graphopt.graph.node import Node, Param
from graphopt.graph.op import TracedFunction
from graphopt.llm.ledger import Budget
from graphopt.optim.optimizer import Optimizer
from graphopt.plugins.manager import PluginManager, get_plugin_manager
from graphopt.train.data import Example
from graphopt.train.trainer import Trainer


class OptimizerSpec(BaseModel):
    """One optimizer: its plugin name, the params it owns (default: by kind) and its options."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    params: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class RunConfig(BaseModel):
    """Everything ``graphopt run`` needs; stored in the checkpoint so ``graphopt resume`` can rebuild."""

    # Strict: a YAML ``epochs: "3"`` or ``epochs: yes`` is a mistake to name, not to coerce.
    model_config = ConfigDict(extra="forbid", strict=True)

    workflow: str
    data: str
    val: str | None = None
    metric: str = "exact"
    optimizers: list[OptimizerSpec]
    model: str | None = None
    epochs: int = Field(1, ge=0)
    batch_size: int = Field(8, ge=1)
    seed: int = 0
    concurrency: int = Field(4, ge=1)
    executor: Literal["threads", "ray"] = "threads"
    address: str | None = None
    patience: int | None = Field(None, ge=1)
    eval_every: int | None = Field(None, ge=1)
    max_calls: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=0)
    max_usd: float | None = Field(None, ge=0, allow_inf_nan=False)
    checkpoint: str | None = None
    history: str | None = None
    eval_cache: str | None = None
    target_key: str = "target"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (``.yaml``/``.yml``) or TOML (``.toml``) file as a dict."""
    file = Path(path)
    where = f"config {os.fspath(path)!r}"
    if file.suffix not in (".yaml", ".yml", ".toml"):
        raise ValueError(f"{where}: expects a .yaml, .yml or .toml file")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: expects UTF-8 text: {err}") from err
    except OSError as err:
        raise ValueError(f"{where}: cannot read it: {err.strerror or err}") from err
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"{where}: not valid {'TOML' if file.suffix == '.toml' else 'YAML'}: "
                         f"{' '.join(str(err).split())}") from err
    if data is None or data == {}:
        raise ValueError(f"{where}: is empty; expects a mapping of settings (workflow, data, optimizers, ...)")
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expects a mapping of settings, got a {type(data).__name__}")
    return data


def make_config(data: dict[str, Any], *, origin: Mapping[str, str] | None = None) -> RunConfig:
    """Validate settings, naming the first wrong field and where it came from (``origin`` maps a
    setting to e.g. ``"config 'run.yaml'"`` or ``"option --epochs"``); optimizer names may be
    plain strings."""
    data = dict(data)
    optimizers = data.get("optimizers", [])
    if isinstance(optimizers, (str, dict)):
        optimizers = [optimizers]
    if isinstance(optimizers, list):
        data["optimizers"] = [{"name": o} if isinstance(o, str) else o for o in optimizers]
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        raise ValueError(_describe(err.errors()[0], origin or {})) from err
    if not config.optimizers:
        raise ValueError("run settings need at least one optimizer (--optimizer NAME)")
    for field in ("data", "val", "checkpoint", "history", "eval_cache"):
        value = getattr(config, field)
        if value is not None:
            config = config.model_copy(update={field: os.path.abspath(value)})
    _check_paths(config, origin or {})
    path, _, name = config.workflow.partition(":")
    return config.model_copy(update={"workflow": f"{os.path.abspath(path)}:{name}"})


def _describe(problem: Mapping[str, Any], origin: Mapping[str, str]) -> str:
    """One line naming the setting, where it came from, what it expects and what it got."""
    loc = [str(p) for p in problem["loc"]]
    field = loc[0] if loc else "settings"
    source = origin.get(field, "run settings")
    where = ".".join(loc) or "settings"
    if problem["type"] == "missing":
        return f"{source}: setting {where!r} is missing (give it in the config file or on the command line)"
    if problem["type"] == "extra_forbidden":
        known = list(RunConfig.model_fields) if len(loc) == 1 else list(OptimizerSpec.model_fields)
        close = difflib.get_close_matches(loc[-1], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known settings: {', '.join(known)}"
        return f"{source}: unknown setting {where!r}{hint}"
    message = problem["msg"][:1].lower() + problem["msg"][1:]
    message = message.replace("input should be", "expects")
    return f"{source}: setting {where!r} {message}, got {problem['input']!r}"


def _check_paths(config: RunConfig, origin: Mapping[str, str]) -> None:
    """Input files must be files; output paths must not be directories."""
    for field in ("data", "val"):
        value = getattr(config, field)
        if value is not None and not Path(value).is_file():
            what = "is a directory" if Path(value).is_dir() else "does not exist"
            raise ValueError(f"{origin.get(field, 'run settings')}: setting {field!r} expects a JSONL file, "
                             f"{value!r} {what}")
    for field in ("checkpoint", "history", "eval_cache"):
        value = getattr(config, field)
        if value is None:
            continue
        if field != "eval_cache" and Path(value).is_dir():
            raise ValueError(f"{origin.get(field, 'run settings')}: setting {field!r} expects a file path, "
                             f"{value!r} is a directory")
        parent = Path(value).parent
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{origin.get(field, 'run settings')}: setting {field!r}: {str(parent)!r} "
                             f"is not a directory")


def load_object(spec: str, *, role: str = "object") -> tuple[Any, Any]:
    """The object named by ``file.py:name`` and the module holding it; ``role`` names it in errors."""
    path, _, name = spec.partition(":")
    if not name or not path.endswith(".py"):
        raise ValueError(f"{role} expects 'path/to/file.py:name', got {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{role} {spec!r}: no file {path!r}")
    module_name = f"graphopt_user_{file.stem}"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(file.resolve()):
        loader = importlib.util.spec_from_file_location(module_name, file.resolve())
        module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
        sys.modules[module_name] = module
        sys.path.insert(0, str(file.resolve().parent))
        try:
            loader.loader.exec_module(module)  # type: ignore[union-attr]
        except BaseException as err:
            sys.modules.pop(module_name, None)
            if not isinstance(err, Exception):
                raise
            _refuse_import(role, spec, path, file, err)
    if not hasattr(module, name):
        raise ValueError(f"{role} {spec!r}: {path} defines no {name!r}")
    return getattr(module, name), module


def _refuse_import(role: str, spec: str, path: str, file: Path, err: Exception) -> None:
    """Name the user's file and line that failed to import, not graphopt's."""
    if isinstance(err, SyntaxError) and err.filename == str(file.resolve()):
        raise ValueError(f"{role} {spec!r}: {path} has a syntax error at line {err.lineno}: "
                         f"{err.msg}") from err
    line = _user_line(err, file.resolve())
    raise ValueError(f"{role} {spec!r}: importing {path} raised {type(err).__name__}{line}: "
                     f"{err}") from err


def _user_line(err: BaseException, file: Path) -> str:
    lines = [tb.tb_lineno for tb in _frames(err.__traceback__) if tb.tb_frame.f_code.co_filename == str(file)]
    return f" at line {lines[-1]}" if lines else ""


def _frames(tb: Any) -> list[Any]:
    frames = []
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    return frames


def load_workflow(spec: str) -> tuple[Callable[..., Any] | Module, dict[str, Param]]:
    """The workflow and its parameters by name."""
    found, module = load_object(spec, role="workflow")
    if inspect.isclass(found) and issubclass(found, Module):
        try:
            found = found()
        except Exception as err:
            raise ValueError(f"workflow {spec!r}: {found.__name__}() raised {type(err).__name__}: "
                             f"{err}") from err
    if isinstance(found, Module):
        return found, dict(found.named_parameters())
    if isinstance(found, Node):
        raise ValueError(f"workflow {spec!r} is a {type(found).__name__} node ({found!r}), expects a "
                         f"function or go.Module")
    if inspect.isclass(found) or not callable(found):
        raise ValueError(f"workflow {spec!r} is a {type(found).__name__}, expects a function or go.Module")
    params: dict[str, Param] = {}
    for name, value in vars(module).items():
        if isinstance(value, Param) and value.trainable:
            params[value.name or name] = value
        elif isinstance(value, TracedFunction) and value.code is not None:
            params[value.code.name or f"{name}.code"] = value.code
        elif isinstance(value, Module):
            params.update(value.named_parameters(prefix=name))
    return found, params


def exact_match(example: Example, prediction: Any) -> Feedback:
    """Score 1 when the prediction's text equals the target's, else 0 with a critique."""
    if str(prediction).strip() == str(example.target).strip():
        return Feedback(score=1.0)
    return Feedback(score=0.0, text=f"expected {example.target!r}, got {prediction!r}")


def load_metric(spec: str) -> Callable[..., Any]:
    """``exact``, or a metric function named ``file.py:name``."""
    if spec == "exact":
        return exact_match
    metric, _ = load_object(spec, role="metric")
    if isinstance(metric, Node) or inspect.isclass(metric) or not callable(metric):
        raise ValueError(f"metric {spec!r} is a {type(metric).__name__}, expects a function "
                         f"metric(example, prediction)")
    try:
        inspect.signature(metric).bind(None, None)
    except TypeError as err:
        raise ValueError(f"metric {spec!r} expects to be called as metric(example, prediction), but its "
                         f"signature is {inspect.signature(metric)}") from err
    except ValueError:  # no signature to inspect (a builtin): let the call decide
        pass
    return metric


def build_optimizers(config: RunConfig, params: dict[str, Param],
                     manager: PluginManager) -> list[Optimizer]:
    """Each optimizer over the params it names, or the unclaimed params of kinds it accepts."""
    claimed: set[str] = set()
    built = []
    for spec in config.optimizers:
        cls = manager.lookup("optimizers", spec.name)
        if spec.params is not None:
            unknown = [n for n in spec.params if n not in params]
            if unknown:
                raise ParamValidationError(f"optimizer {spec.name!r}: unknown params {unknown}; the "
                                           f"workflow has {sorted(params)}")
            names = spec.params
        else:
            names = [n for n, p in params.items() if n not in claimed and p.kind.name in cls.kinds]
        if not names:
            raise ParamValidationError(f"optimizer {spec.name!r} found no params of kinds "
                                       f"{sorted(cls.kinds)}; the workflow has "
                                       f"{ {n: p.kind.name for n, p in params.items()} }")
        options = check_options(spec.name, cls, spec.options)
        if config.model and "llm" in inspect.signature(cls).parameters and "llm" not in options:
            options["llm"] = config.model
        try:
            built.append(cls({n: params[n] for n in names}, plugin_manager=manager, **options))
        except (TypeError, ValueError) as err:
            if isinstance(err, GraphoptError):
                raise
            raise ValueError(f"optimizer {spec.name!r}: options {options} refused: {err}") from err
        claimed.update(names)
    return built


_NOT_OPTIONS = frozenset({"self", "params", "plugin_manager"})


def check_options(name: str, cls: type, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` checked against the optimizer's constructor: known names, annotated types."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return dict(options)
    accepted = {n: p for n, p in signature.parameters.items()
                if n not in _NOT_OPTIONS and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = [key for key in options if key not in accepted]
    if unknown and not open_ended:
        close = difflib.get_close_matches(unknown[0], list(accepted), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"optimizer {name!r}: unknown option {unknown[0]!r}; {hint}options: "
                         f"{', '.join(accepted) or 'none'}")
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # annotations that do not resolve here: the constructor checks its own
        hints = {}
    checked = dict(options)
    for key, value in options.items():
        hint = hints.get(key)
        if hint is None or hint is Any:
            continue
        try:
            strict = TypeAdapter(hint, config=ConfigDict(strict=True, arbitrary_types_allowed=True))
        except (PydanticSchemaGenerationError, PydanticUserError, TypeError):
            continue  # a type pydantic cannot check: the constructor checks its own
        try:
            strict.validate_python(value)
        except ValidationError as err:
            # YAML, TOML and checkpoints have lists only: a list where a tuple or set is expected is
            # converted; any other mismatch (a string for a number, a number for a bool) is refused.
            kinds = {e["type"] for e in err.errors()}
            if isinstance(value, list) and kinds and kinds <= set(_COLLECTIONS):
                try:
                    checked[key] = strict.validate_python(_COLLECTIONS[kinds.pop()](value))
                    continue
                except (ValidationError, TypeError):
                    pass
            expected = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
            raise ValueError(f"optimizer {name!r}: option {key!r} expects {expected}, got {value!r}") from err
    return checked


_COLLECTIONS: dict[str, Callable[[list[Any]], Any]] = {"tuple_type": tuple, "set_type": set,
                                                      "frozen_set_type": frozenset}


def build_trainer(config: RunConfig, *, resume: str | os.PathLike[str] | None = None,
                  quiet: bool = False, plugin_manager: PluginManager | None = None) -> Trainer:
    """The ``Trainer`` a config describes, recording the config in its checkpoints."""
    manager = plugin_manager or get_plugin_manager()
    workflow, params = load_workflow(config.workflow)
    limits = (config.max_calls, config.max_tokens, config.max_usd)
    budget = Budget(max_calls=config.max_calls, max_tokens=config.max_tokens, max_usd=config.max_usd) \
        if any(v is not None for v in limits) else None
    return Trainer(workflow, config.data, val=config.val, metric=load_metric(config.metric),
                   optimizers=build_optimizers(config, params, manager), epochs=config.epochs,
                   batch_size=config.batch_size, seed=config.seed, concurrency=config.concurrency,
                   patience=config.patience, eval_every=config.eval_every, budget=budget,
                   checkpoint=config.checkpoint, history=config.history, resume=resume,
                   cache=config.eval_cache, quiet=quiet, target_key=config.target_key,
                   config=config.model_dump(), plugin_manager=manager,
                   executor=config.executor, address=config.address)
