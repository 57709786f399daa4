"""The ``modelpress`` command: a group that turns every ModelpressError into one clean line.

Each command group lives in its own module and imports TensorFlow only inside its commands, so
``modelpress serve`` and ``modelpress profiles`` work on a device that has no TensorFlow.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import logging
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import click

from modelpress import __version__
from modelpress.errors import ModelpressError

# command name -> (module, attribute); loaded when the command runs or --help lists it
COMMANDS = {
    "profiles": ("modelpress.cli.profiles", "profiles"),
    "convert": ("modelpress.cli.convert", "convert"),
    "inspect": ("modelpress.cli.convert", "inspect_cmd"),
    "compress": ("modelpress.cli.compress", "compress"),
    "evaluate": ("modelpress.cli.compress", "evaluate"),
    "serve": ("modelpress.cli.serve", "serve"),
    "deploy": ("modelpress.cli.deploy", "deploy"),
    "press": ("modelpress.cli.press", "press"),
    "report": ("modelpress.cli.report", "report"),
    "demo": ("modelpress.cli.demo", "demo"),
    "package": ("modelpress.cli.package", "package"),
    "sign": ("modelpress.cli.sign", "sign"),
}
#: exit code of an unexpected failure (a bug, or a case modelpress does not handle yet): BSD's EX_SOFTWARE
UNEXPECTED_EXIT = 70


def _where(err: BaseException) -> str:
    """``file:line in function`` of the innermost modelpress frame the exception passed through."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "modelpress" in Path(f.filename).parts] or frames
    if not ours:
        return "an unknown place"
    frame = ours[-1]
    path = Path(frame.filename)
    short = "/".join(path.parts[path.parts.index("modelpress"):]) if "modelpress" in path.parts else path.name
    return f"{short}:{frame.lineno} in {frame.name}"


def report_unexpected(err: BaseException, command: str, verbose: bool) -> str:
    """One line for a user about an exception modelpress did not expect; the full traceback goes to a file
    (and to the terminal with ``-v``). Returns the line."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = Path(tempfile.gettempdir()) / f"modelpress-error-{stamp}-{os.getpid()}.txt"
    try:
        log_path.write_text(f"modelpress {__version__}, command: {command}\n{text}", encoding="utf-8")
        saved = f"the full traceback is in {log_path}"
    except OSError:
        saved = "the traceback could not be saved"
    message = str(err).strip().splitlines()[0] if str(err).strip() else "(no message)"
    line = (f"Error: unexpected {type(err).__name__} in `modelpress {command}` at {_where(err)}: {message}. "
            f"This is a modelpress bug or an unsupported case: {saved}"
            + ("" if verbose else "; run with -v to show it") + ".")
    if verbose:
        click.echo(text, err=True)
    return line


class ModelpressGroup(click.Group):
    """Lazy subcommands, and expected failures printed as ``Error: ...`` with the error's exit code."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name, (module, _) in COMMANDS.items() if importlib.util.find_spec(module))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        try:
            module = importlib.import_module(entry[0])
        except ModuleNotFoundError:
            return None
        return getattr(module, entry[1])

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ModelpressError as err:
            click.secho(f"Error: {err}", fg="red", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing half-written was left behind.", err=True)
            ctx.exit(130)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:  # noqa: BLE001 - no traceback ever reaches a user
            command = ctx.invoked_subcommand or "?"
            click.secho(report_unexpected(err, command, bool(ctx.params.get("verbose"))), fg="red", err=True)
            ctx.exit(UNEXPECTED_EXIT)


#: what TensorFlow's and Keras's Python loggers say that asks nothing of the user: a Keras 2 .h5 saved without an
#: optimizer ("... was *not* compiled. Compile it manually.") or with one today's Keras cannot restore (modelpress
#: never resumes a loaded model's optimizer: fine-tuning builds its own, and reloading a fine-tuned tf_keras
#: candidate from press's cache, "compiled metrics have yet to be built", asks for no metrics it uses), and
#: AutoGraph declining to convert a function that then runs as plain Python, as it was meant to
HARMLESS_LOGS = ("No training configuration found in the save file", "AutoGraph could not transform",
                 "Error in loading the saved optimizer state", "the compiled metrics have yet to be built")


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(words in text for words in HARMLESS_LOGS)


def quiet_tensorflow() -> None:
    """Keep TensorFlow's C++ start-up chatter, and Keras warnings that need no action, off the terminal."""
    for name in ("absl", "tensorflow"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropHarmless) for f in logger.filters):
            logger.addFilter(_DropHarmless())
    # a compiled model saved after fine-tuning reloads without its optimizer slots: harmless for inference
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")


def silence_native_stderr() -> None:
    """Send what C++ libraries write to file descriptor 2 (TensorFlow's CUDA probing, LiteRT's
    "Created XNNPACK delegate", MLIR converter logs) to /dev/null, while Python's ``sys.stderr``
    (errors, warnings, progress bars) keeps writing to the terminal. ``-v`` keeps both."""
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return  # stderr is captured (tests, CliRunner): leave it alone
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


@click.group(cls=ModelpressGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelpress")
@click.option("-v", "--verbose", is_flag=True,
              help="Log what modelpress does (INFO level), with TensorFlow's and LiteRT's own native logs.")
def cli(verbose: bool) -> None:
    """Compress, convert and serve TensorFlow/Keras models on edge devices and GPU servers.

    \b
    A typical trip:
      modelpress profiles list
      modelpress convert model.keras --profile raspberry-pi-4 --calibration calib.npz --out build/rpi
      modelpress inspect build/rpi
      modelpress serve repo/ --port 8500

    Run `modelpress COMMAND --help` for each command's options and examples.
    """
    quiet_tensorflow()
    if not verbose:
        silence_native_stderr()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


if __name__ == "__main__":  # pragma: no cover
    cli()
