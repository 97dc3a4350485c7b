"""Turn a typed config into a typer command: the config's fields are the flags, their docs the --help.

Every tool's `cli.py` declares `add_command(app, "name", SomeConfig, run_fn, example=...)`;
the generated command validates the config on entry and maps failures to the exit codes of
DESIGN.md: 0 done, 1 the work failed, 2 bad input or usage.
"""

from __future__ import annotations

import enum
import inspect
import logging
import shlex
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.console import Console
from rich.markup import escape

from videotune.core.checks import check_model_dir, check_out
from videotune.core.io import InputError, WorkFailed
from videotune.core.quiet import quiet_libraries

C = TypeVar("C", bound=BaseModel)
err_console = Console(stderr=True)
log = logging.getLogger("videotune")


class CommandConfig(BaseModel):
    """Base of every command's config: unknown fields are refused, values validated on entry.

    Before the command runs, its `out` (a folder, or a file where `out_kind` says so) must not
    be an existing file of the other kind, and a `model` that names a local directory must hold
    a loadable model (`core.checks`).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    out_kind: ClassVar[Literal["folder", "file"]] = "folder"


def preflight(config: BaseModel) -> None:
    """The checks every command gets before it runs (see CommandConfig)."""
    out = getattr(config, "out", None)
    if isinstance(out, Path):
        check_out(out, kind=getattr(config, "out_kind", "folder"))
    model = getattr(config, "model", None)
    if isinstance(model, (str, Path)) and model:
        check_model_dir(Path(model))


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation) if a is not type(None))
    return False


def _cli_annotation(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """A typer-friendly annotation for a pydantic field type (+ extra typer.Option kwargs)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = [str(c) for c in typing.get_args(annotation)]
        return enum.Enum("Choice", {c: c for c in choices}, type=str), {}
    if _is_list(annotation):
        return str, {"metavar": "A,B,..."}
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            converted, extra = _cli_annotation(inner[0])
            return converted | None, extra
    return annotation, {}


def configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")


def add_command(
    app: typer.Typer,
    name: str,
    config_cls: type[C],
    run: Callable[[C], Any],
    example: str | list[str],
) -> None:
    """Register `run(config)` as `name`, with one flag per field of `config_cls`.

    `example` is one command line, or several run in order; --help prints them as pasteable shell lines.
    """
    params = []
    for field_name, field in config_cls.model_fields.items():
        annotation, extra = _cli_annotation(field.annotation)
        default = ... if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, (list, tuple)):
            default = ",".join(str(v) for v in default)
        if isinstance(default, Path):
            default = str(default)
        # A field named after a BaseModel attribute (`json`) takes its flag from its alias.
        flag_name = (field.alias or field_name).replace("_", "-")
        flag = "--" + flag_name
        decls = [flag] if annotation is not bool else [f"{flag}/--no-{flag_name}"]
        option = typer.Option(default, *decls, help=field.description or "", show_default=True, **extra)
        params.append(
            inspect.Parameter(field_name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
        )

    def command(**kwargs: Any) -> None:
        configure_logging()
        quiet_libraries()
        values = {}
        for key, value in kwargs.items():
            if isinstance(value, enum.Enum):
                value = value.value
            if _is_list(config_cls.model_fields[key].annotation) and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            values[config_cls.model_fields[key].alias or key] = value
        try:
            config = config_cls(**values)
        except ValidationError as err:
            for e in err.errors():
                where = ".".join(map(str, e["loc"])).replace("_", "-")
                message = e["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
                text = f"--{where}: {message}" if where else message  # a check across fields names its own flags
                err_console.print(f"[red]error:[/red] {escape(text)}", soft_wrap=True)
            raise typer.Exit(2) from None
        out = getattr(config, "out", None)
        new_out = isinstance(out, Path) and config.out_kind == "folder" and not out.exists()
        try:
            preflight(config)
            run(config)
        except BaseException as err:
            failed = not isinstance(err, typer.Exit) or err.exit_code != 0
            if new_out and failed:
                _remove_if_empty(out)  # a failed run leaves no empty --out folder it made
            if isinstance(err, InputError):
                # one line, as written (paths and record ids stay whole: no wrapping, no markup)
                err_console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
                raise typer.Exit(2) from None
            if isinstance(err, WorkFailed):  # a known way to fail, said in full: no traceback
                err_console.print(f"[red]failed:[/red] {escape(str(err))}", soft_wrap=True)
                raise typer.Exit(1) from None
            if isinstance(err, KeyboardInterrupt):
                err_console.print("[yellow]interrupted[/yellow]")
                raise typer.Exit(130) from None
            if isinstance(err, (typer.Exit, SystemExit)) or not isinstance(err, Exception):
                raise
            # the work failed: say what, keep the traceback for the log
            log.exception("failed")
            err_console.print(f"[red]failed:[/red] {type(err).__name__}: {escape(str(err))}", soft_wrap=True)
            raise typer.Exit(1) from None

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = name.replace("-", "_")
    doc = inspect.getdoc(config_cls) or ""
    app.command(name, help=doc, epilog=format_example(example))(command)


EXAMPLE_WIDTH = 96  # characters per printed line, before the help's own indentation


def format_example(example: str | list[str]) -> str:
    """The --help epilog: each command broken into `\\`-continued shell lines, left unwrapped by click.

    Continuation lines are indented further than the option list, so no flag of an example reads as
    one of the command's own options, and a line copied from the terminal pastes as one command.
    """
    lines: list[str] = []
    for command in [example] if isinstance(example, str) else example:
        tokens = shlex.split(command)
        line = shlex.quote(tokens[0])
        for token in tokens[1:]:
            quoted = shlex.quote(token)
            # a flag starts a new line when the current one is full; a value stays beside its flag
            if len(line) + 1 + len(quoted) > EXAMPLE_WIDTH and token.startswith("-"):
                lines.append(line + " \\")
                line = "    " + quoted
            else:
                line += " " + quoted
        lines.append(line)
    return "Example:\n\n\b\n" + "\n".join(lines)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()  # only an empty folder goes
    except OSError:
        pass


def make_app(help_text: str) -> typer.Typer:
    return typer.Typer(help=help_text, no_args_is_help=True, add_completion=False, rich_markup_mode=None)


def run_app(app: typer.Typer) -> None:
    app(prog_name=Path(sys.argv[0]).name)
