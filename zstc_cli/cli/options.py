"""What the commands share: options declared once (the model options as one ModelSpec), turning user errors
into one line, and reading ``--labels``."""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import signal
import sys
import traceback
import typing
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from zstc_cli.engines.run import DEFAULT_SAMPLE, AdaptOptions
from zstc_cli.errors import Interrupted, Terminated, ZstcError, exit_code
from zstc_cli.labels_file import parse_label_lines
from zstc_cli.models.catalog import DEFAULT_MODEL
from zstc_cli.records import RecordDefaults, check_templates, parse_labels


class OnError(str, Enum):
    """``--on-error``: stop at the first bad record, or log it to ``--errors`` and go on."""

    fail = "fail"
    skip = "skip"


class InputFormat(str, Enum):
    """``--input-format``: how INPUT is read, when its extension does not say (or says wrong)."""

    jsonl = "jsonl"
    csv = "csv"
    tsv = "tsv"
    parquet = "parquet"
    text = "text"


class EngineKind(str, Enum):
    """``--engine``: this process, or a Ray cluster."""

    local = "local"
    ray = "ray"


class Dtype(str, Enum):
    """``--dtype``: what the weights compute in (auto: float16 on CUDA, else float32)."""

    auto = "auto"
    float32 = "float32"
    float16 = "float16"
    bfloat16 = "bfloat16"


class ScorerKind(str, Enum):
    """``--scorer``: chosen from the model, or forced."""

    auto = "auto"
    nli = "nli"
    embedding = "embedding"


class Quantize(str, Enum):
    """``--quantize``: exact weights, or ONNX Runtime int8 (CPU only)."""

    none = "none"
    int8 = "int8"


# Library settings the CLI names otherwise than by the parameter's name with dashes.
FLAGS = {
    "template": "--hypothesis-template", "skip_errors": "--on-error",
    "source": "INPUT", "target": "OUTPUT", "address": "--ray-address", "data": "DATA", "from_": "--from",
    "candidates": "--labels",
}  # fmt: skip


def flag(setting: str) -> str:
    """What sets a library setting in the CLI (``dtype/quantize``: both), the name a
    :class:`~zstc_cli.errors.ZstcError` gives it for CLI users (see ``ZstcError.naming``)."""
    return "/".join(FLAGS.get(name, "--" + name.replace("_", "-")) for name in setting.split("/"))


@contextlib.contextmanager
def user_errors(debug: bool, data_on_stdout: bool = False) -> Iterator[None]:
    """Turn expected failures into one line on stderr and their exit code (see :mod:`zstc_cli.errors`: 2 for
    bad input or options, 1 for a failure of the model, device, disk or zstc itself); ``--debug`` adds the
    traceback.

    ``data_on_stdout``: the results go to stdout, so a reader closing it early (`| head`) is the user's
    choice and the run stops silently; otherwise a closed stdout loses output files, which is said."""
    try:
        yield
    except Interrupted as exc:
        print(f"zstc: {exc.naming(flag)}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except ZstcError as exc:
        if debug:
            traceback.print_exc()
        print(f"zstc: error: {exc.naming(flag)}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as stop:
        print("zstc: interrupted; no output file was written", file=sys.stderr)
        raise typer.Exit(exit_code(stop)) from None
    except BrokenPipeError:  # stdout's reader went away (`| head`): stop with SIGPIPE's status, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush into the closed pipe
        if not data_on_stdout:  # only bad records went there: the output files were not finished, so say it
            print("zstc: stdout was closed before the run ended; no output file was written", file=sys.stderr)
        raise typer.Exit(128 + signal.SIGPIPE) from None
    except Exception as exc:  # a failure of the model, device or zstc itself: say what, not where
        if debug:
            traceback.print_exc()
        print(f"zstc: error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        raise typer.Exit(1) from None


def terminate_as_interrupt(signum: int, frame: object) -> None:
    raise Terminated


def read_labels_option(value: str | None) -> tuple[tuple[str, ...] | None, dict[str, str]]:
    """``--labels a,b,c`` or ``--labels @file`` (one label a line, ``name`` or ``name: description``; see
    :func:`~zstc_cli.labels_file.parse_label_lines`): the label names and the descriptions given."""
    if value is None:
        return None, {}
    try:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a byte-order mark is not a label
            except OSError as exc:
                raise ZstcError(f"--labels {value}: cannot read {path}: {exc.strerror}") from None
            return parse_label_lines(lines, str(path))
        return parse_labels(value, "--labels"), {}
    except ValueError as exc:
        raise ZstcError(str(exc)) from None


def record_defaults(
    labels: str | None,
    multi_label: bool,
    templates: list[str] | None,
    text_field: str | None,
    labels_field: str | None,
    descriptions: dict[str, str] | None = None,
    input_format: InputFormat | None = None,
    none_label: str | None = None,
) -> RecordDefaults:
    """The defaults the options give; ``templates`` None (no ``-t``) leaves the scorer's default, and
    ``descriptions`` adds to those of a ``--labels @file``."""
    try:
        template = check_templates(templates or None)
    except ValueError as exc:
        raise ZstcError(f"--hypothesis-template: {exc}") from None
    names, described = read_labels_option(labels)
    described = {**described, **(descriptions or {})}
    kind = None if input_format is None else InputFormat(input_format).value
    return RecordDefaults(names, multi_label, template, text_field, labels_field, descriptions=described or None,
                          input_format=kind, none_label=none_label)  # fmt: skip


# The help's panels: at 80 columns one table of every option leaves its descriptions ~18 characters wide, as
# each panel sizes its columns to its own options; options without a panel go under "Options".
MODEL = "Model and batching"
LABELS = "Labels"
INPUT = "Input"
OUTPUT = "Output and errors"
RAY = "Ray engine"
ADAPT = "Adaptation"

# Options shared by the commands that classify (classify, evaluate, serve), each declared once.
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", "-m", metavar="NAME", rich_help_panel=MODEL, help="Hub id or local directory of the model."
    ),
]

LabelsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--labels",
        "-l",
        metavar="LABELS",
        rich_help_panel=LABELS,
        help='Labels for records without their own: "a,b,c" or @file.',
    ),
]

MultiLabelOpt = Annotated[
    bool,
    typer.Option("--multi-label/--single-label", metavar="", help="Default when a record does not say."),
]

NoneLabelOpt = Annotated[
    Optional[str],
    typer.Option(
        metavar="LABEL",
        rich_help_panel=LABELS,
        help='A label meaning "none of the others" (other, none): not scored, ranked at 1 - the top score, '
        "so given when no other label applies. Needs multi-label scoring.",
    ),
]

TemplateOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--hypothesis-template",
        "-t",
        metavar="TEXT",
        rich_help_panel=LABELS,
        help="Hypothesis with {} for the label; repeat for several (scores combined) "
        '[default: NLI "This example is {}.", embedding "This text is about {}."].',
    ),
]

InputFormatOpt = Annotated[
    Optional[InputFormat],
    typer.Option(
        metavar="FORMAT",
        rich_help_panel=INPUT,
        help="jsonl, csv/tsv (header row), parquet, or text (one text a line) "
        "[default: from the extension; stdin: jsonl].",
    ),
]

TextFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        metavar="FIELD", rich_help_panel=INPUT, help="Field holding the text [default: text|inputs|sequence]."
    ),
]

LabelsFieldOpt = Annotated[
    Optional[str],
    typer.Option(
        metavar="FIELD",
        rich_help_panel=INPUT,
        help="Field holding the labels [default: categories|candidate_labels].",
    ),
]

MaxTokensOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        metavar="N",
        rich_help_panel=MODEL,
        help="Token budget per batch (pairs x longest pair) [default: 2048 on CPU, else 8192].",
    ),
]

BatchSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        metavar="N",
        rich_help_panel=MODEL,
        help="At most this many pairs per batch [default: 64 on CPU, else 128].",
    ),
]

WindowOpt = Annotated[
    int,
    typer.Option(min=1, metavar="N", rich_help_panel=MODEL, help="Records sorted by length together; bounds memory."),
]

DeviceOpt = Annotated[
    str, typer.Option(metavar="DEVICE", rich_help_panel=MODEL, help="auto, cpu, cuda, cuda:N or mps.")
]

DtypeOpt = Annotated[
    Dtype,
    typer.Option(
        metavar="DTYPE", rich_help_panel=MODEL, help="auto (float16 on CUDA, else float32), float32, float16, bfloat16."
    ),
]

ScorerOpt = Annotated[
    ScorerKind,
    typer.Option(
        metavar="KIND",
        rich_help_panel=MODEL,
        help="auto (from the model), nli (cross-encoder, NxL passes) or embedding (bi-encoder, N+L).",
    ),
]

AdaptOpt = Annotated[
    bool,
    typer.Option(
        metavar="",
        rich_help_panel=ADAPT,
        help="Fit the scorer to a seeded sample of the input (no labels) before classifying it all; read twice.",
    ),
]

AdaptSampleOpt = Annotated[
    int,
    typer.Option(
        min=2,
        metavar="N",
        rich_help_panel=ADAPT,
        help="With --adapt: records sampled to fit on (accuracy is stable from ~1000; fitting 2000 takes ~3 s).",
    ),
]

SaveAdaptationOpt = Annotated[
    Optional[str],
    typer.Option(metavar="PATH", rich_help_panel=ADAPT, help="With --adapt: write the fitted state (JSON) here."),
]

AdaptationOpt = Annotated[
    Optional[str],
    typer.Option(
        metavar="PATH",
        rich_help_panel=ADAPT,
        help="Score with a state saved by --save-adaptation (same model, labels, template).",
    ),
]

QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", metavar="", help="No progress bar or summary on stderr.")]

DebugOpt = Annotated[bool, typer.Option(metavar="", help="Show tracebacks.")]

QuantizeOpt = Annotated[
    Quantize,
    typer.Option(
        metavar="KIND",
        rich_help_panel=MODEL,
        help="none (exact), or int8: ONNX Runtime int8, CPU only, ~1.8x faster with VNNI, changes some top labels.",
    ),
]

ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        metavar="N",
        rich_help_panel=MODEL,
        help="CPU threads of torch and ONNX Runtime [default: one per core; Ray: 1 per worker].",
    ),
]

# An option group: (parameter name, annotation, default) of each option, in the order build() takes them.
OptionGroup = tuple[tuple[str, Any, Any], ...]
Command = Callable[..., None]

# The options that make a ModelSpec, in its field order.
MODEL_OPTIONS: OptionGroup = (
    ("model", ModelOpt, DEFAULT_MODEL), ("device", DeviceOpt, "auto"), ("dtype", DtypeOpt, Dtype.auto),
    ("max_tokens", MaxTokensOpt, None), ("batch_size", BatchSizeOpt, None), ("scorer", ScorerOpt, ScorerKind.auto),
    ("quantize", QuantizeOpt, Quantize.none), ("threads", ThreadsOpt, None),
)  # fmt: skip

# The options that make an AdaptOptions, in its field order.
ADAPT_OPTIONS: OptionGroup = (
    ("adapt", AdaptOpt, False), ("adapt_sample", AdaptSampleOpt, DEFAULT_SAMPLE),
    ("save_adaptation", SaveAdaptationOpt, None), ("adaptation", AdaptationOpt, None),
)  # fmt: skip


def option_group(parameter: str, options: OptionGroup, build: Callable[..., Any]) -> Callable[[Command], Command]:
    """A decorator that declares ``options`` on a command once: typer sees them in place of the command's
    ``parameter``, and the command receives ``build(*values)`` there (enum values as their strings)."""

    def declare(command: Command) -> Command:
        # The group's type is annotated under TYPE_CHECKING (ModelSpec's module is not imported for --help)
        hints = typing.get_type_hints(command, localns=dict.fromkeys(GROUP_TYPES, object), include_extras=True)
        signature = inspect.signature(command)
        parameters: list[inspect.Parameter] = []
        for declared in signature.parameters.values():
            if declared.name == parameter:
                parameters += [
                    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
                    for name, annotation, default in options
                ]
            else:
                parameters.append(
                    declared.replace(annotation=hints[declared.name], kind=inspect.Parameter.KEYWORD_ONLY)
                )

        @functools.wraps(command)
        def run(**values: Any) -> None:
            group = (values.pop(name) for name, _, _ in options)
            command(**{parameter: build(*(value.value if isinstance(value, Enum) else value for value in group))},
                    **values)  # fmt: skip

        run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        run.__annotations__ = {declared.name: declared.annotation for declared in parameters}
        return run

    return declare


def _model_spec(*values: Any) -> Any:
    from zstc_cli.models.spec import ModelSpec  # torch-free; loading imports torch when a command loads

    return ModelSpec(*values)


GROUP_TYPES = ("ModelSpec", "AdaptOptions")  # what the commands annotate the groups' parameters with

# The eight model options, received as one ModelSpec in the command's ``spec``.
model_options = option_group("spec", MODEL_OPTIONS, _model_spec)

# --adapt, --adapt-sample, --save-adaptation and --adaptation, received as one AdaptOptions in ``adapt``.
adapt_options = option_group("adapt", ADAPT_OPTIONS, AdaptOptions)
