"""The `vesalius` command line: ask, chat, export, trace, demo, inspect, classify, anomaly, tools, train, kb, schema."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vesalius import __version__
from vesalius.agent.errors import AgentError
from vesalius.agent.kb_cli import kb
from vesalius.agent.terminal import echo, echo_json, printable
from vesalius.agent.user_text import lines
from vesalius.errors import VesaliusError
from vesalius.vision.window_presets import PRESETS

if TYPE_CHECKING:
    from vesalius.agent.answer import Answer
    from vesalius.agent.service import Vesalius

# The command line parses and presents; everything it does is a `Vesalius` method. Imports of the agent, torch,
# FAISS and pydicom happen inside the commands that need them, so `--help` and `schema` start at once.
DEMO_QUESTION = "Is there a pleural effusion on this CT, and what is the attenuation of the tissue?"


def _agent(require_model: bool = False) -> Vesalius:
    from vesalius.agent.config import load_settings
    from vesalius.agent.service import Vesalius

    return Vesalius(load_settings(require_model=True if require_model else None))


def _emit(answer: Answer, as_json: bool, *, one_line: bool = False) -> None:
    """Text for people; JSON for scripts (one document per line in a conversation, so it streams as JSON Lines)."""
    if as_json:
        echo_json(answer.model_dump_json(indent=None if one_line else 2))
    else:
        from vesalius.agent.render import render_text

        echo(render_text(answer))


def _say(exc: VesaliusError) -> None:
    echo(f"error: {exc.one_line()}", err=True)


def _fail(exc: VesaliusError) -> None:
    _say(exc)
    sys.exit(2)


def one_line(text: str) -> str:
    """An error is one line, whatever a file name or header value inside it holds."""
    return " ".join(text.split())


def _warn(agent: Vesalius) -> None:
    for problem in agent.warnings:
        echo(f"warning: {problem}", err=True)


_STEP_DONE = {
    "ingest": "study loaded",
    "route": "tools chosen",
    "tools": "image tools done",
    "retrieve": "knowledge searched",
    "reason": "model answered",
}


def _progress():
    """Progress on stderr while a question runs, only for a person at a terminal (never in pipes or logs)."""
    if not sys.stderr.isatty():
        return None

    def show(node: str) -> None:
        text = "" if node == "compose" else f"… {_STEP_DONE.get(node, node)}"  # the answer replaces the line
        click.echo(f"\r\033[K{text}", err=True, nl=False)

    return show


def _tokens():
    """The model's text as it is generated, on the progress line (its last words), only at a terminal."""
    if not sys.stderr.isatty():
        return None
    said: list[str] = []

    def show(text: str) -> None:
        said.append(text)
        tail = " ".join("".join(said).split())[-60:]
        click.echo(f"\r\033[K… the model: {printable(tail)}", err=True, nl=False)

    return show


class _Group(click.Group):
    """Turns every user-facing error into one line and exit code 2, and anything else into a short report."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VesaliusError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader went away (`| head`): nothing left to say, and not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except click.UsageError as exc:  # a mistyped option: one line as well, with where to look
            where = exc.ctx.command_path if exc.ctx else "vesalius"
            echo(one_line(f"error: {exc.format_message().rstrip('.')}. See: {where} --help"), err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: say so in one line; VESALIUS_DEBUG=1 shows the traceback
            if os.environ.get("VESALIUS_DEBUG"):
                raise
            echo(
                one_line(f"internal error: {type(exc).__name__}: {exc}. Rerun with VESALIUS_DEBUG=1 and report it"),
                err=True,
            )
            sys.exit(1)


_study = click.option(
    "--study", type=click.Path(path_type=Path), help="DICOM file, folder or zip of slices, DICOMDIR, PNG, JPEG or TIFF"
)
_thread = click.option("--thread", "thread_id", help="continue a conversation by its id")
_modality = click.option("--modality", help="modality code for plain images (CR, DX, CT, MR, US ...)")
_require = click.option("--require-model", is_flag=True, help="fail rather than answer without the model server")
_json = click.option("--json", "as_json", is_flag=True, help="print the answer as one JSON document")
_heatmaps = click.option("--heatmaps", type=click.Path(path_type=Path), help="folder for heatmap PNGs")
_series = click.option("--series", type=int, help="series number, when a folder, zip or DICOMDIR holds several")
_audience = click.option(
    "--audience",
    type=click.Choice(["clinician", "patient"]),
    help="answer for a clinician or a patient, whatever the wording (default: read from each question); kept by the thread",
)
_window = click.option(
    "--window", help=f"display window: {', '.join(PRESETS)}, auto, or CENTER,WIDTH (default: from the question)"
)


def _study_options(fn):
    """The options shared by `ask` and `chat`."""
    for option in reversed((_study, _thread, _modality, _series, _window, _audience, _require, _json, _heatmaps)):
        fn = option(fn)
    return fn


def _context_text(value: str | None) -> str | None:
    """--context TEXT, or @FILE: a text report, a FHIR R4 report (JSON) or a DICOM SR, read bounded."""
    if value is None or not value.startswith("@"):
        return value
    from vesalius.agent.context_files import read_context_file

    return read_context_file(Path(value[1:]))


_context = click.option(
    "--context",
    "context",
    help="clinical context: history, indication or an earlier report as text; @FILE reads a text report, a FHIR "
    "R4 report (JSON) or a DICOM SR (de-identified before use; kept by the thread)",
)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="vesalius")
def main() -> None:
    """Vesalius: ask questions about a medical image and get cited answers."""


@main.command()
@_study_options
@click.option(
    "--prior",
    type=click.Path(path_type=Path),
    help="an earlier study of the same patient: the answer compares it with --study, tool by tool",
)
@_context
@click.argument("question")
def ask(
    study, thread_id, modality, series, window, audience, require_model, as_json, heatmaps, prior, context, question
) -> None:
    """Answer QUESTION about a study (or about the study of --thread, or with no study, a question about medicine).
    --study with --thread opens a second study in the thread, compared with the first."""
    with _agent(require_model) as agent:
        options = {"modality": modality, "heatmap_dir": heatmaps, "series": series, "window": window}
        options["audience"] = audience
        options["prior"] = prior
        options["context"] = _context_text(context)
        _emit(
            agent.ask(question, study=study, thread_id=thread_id, on_step=_progress(), on_token=_tokens(), **options),
            as_json,
        )


@main.command()
@_study_options
@_context
def chat(study, thread_id, modality, series, window, audience, require_model, as_json, heatmaps, context) -> None:
    """A conversation about one study (or about medicine, without --study): one question per line; an empty line
    or EOF ends it."""
    options = {"modality": modality, "heatmap_dir": heatmaps, "series": series, "window": window}
    options["audience"] = audience
    options["context"] = _context_text(context)  # given with the first question; the thread keeps it
    with _agent(require_model) as agent:
        if thread_id and (earlier := agent.history(thread_id)):
            echo(f"resuming conversation {thread_id} ({len(earlier)} earlier turns)", err=True)
        for line in _lines(sys.stdin.isatty()):
            if isinstance(line, AgentError):  # a line that could not be read is refused on its own
                _say(line)
                continue
            if not line.strip() or line.strip().lower() in ("exit", "quit"):
                break
            try:
                answer = agent.ask(
                    line, study=study, thread_id=thread_id, on_step=_progress(), on_token=_tokens(), **options
                )
            except VesaliusError as exc:  # one failed turn (the model server, say) does not end the conversation
                _say(exc)
                continue
            if thread_id is None:
                thread_id = answer.thread_id
                echo(f"conversation {thread_id} (resume with: vesalius chat --thread {thread_id})", err=True)
            study = options["context"] = None  # later turns use the thread's study and context
            _emit(answer, as_json, one_line=True)
            if not as_json:
                echo("")


def _lines(interactive: bool) -> Iterator[str | AgentError]:
    """Questions, one per line, or the reason a line could not be read: a line that is not UTF-8 (named by the
    question check) or endless is refused on its own instead of ending the conversation or filling memory."""
    if interactive:
        while True:
            try:
                yield input("you> ")
            except EOFError:
                return
            except UnicodeDecodeError:
                yield AgentError("the line is not UTF-8 text", "Type it again in a UTF-8 terminal")
    yield from lines(sys.stdin.buffer)


@main.command()
@click.argument("thread_id")
@click.option("--turn", type=int, help="one turn only (1 is the first)")
@_json
def trace(thread_id, turn, as_json) -> None:
    """What happened in each turn of a conversation: step times, route, tools, model use (--json: and the prompt)."""
    from vesalius.agent.trace import render

    with _agent() as agent:
        traces = agent.traces(thread_id)
        if not traces and not agent.thread(thread_id):
            raise AgentError(f"there is no conversation {thread_id!r}", "Use the id `vesalius chat` printed")
        if turn is not None:
            traces = [t for t in traces if t.turn == turn]
            if not traces:
                raise AgentError(f"conversation {thread_id} has no traced turn {turn}", "Leave out --turn to see all")
        for t in traces:
            if as_json:
                echo_json(t.model_dump_json())
            else:
                echo(render(t))


@main.command()
@click.argument("thread_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "fhir", "dicom-sr"]),
    default="json",
    show_default=True,
    help="fhir: a FHIR R4 Bundle (DiagnosticReport and Observations); dicom-sr: a DICOM SR measurement report "
    "(TID 1500) citing the de-identified study; json: the findings as Vesalius records them",
)
@click.option("--out", type=click.Path(path_type=Path), help="write to this file (default: standard output)")
def export(thread_id, fmt, out) -> None:
    """The findings of conversation THREAD_ID's latest answer (probabilities, anomaly regions, the direct answer,
    codes), for a hospital system."""
    if out is None and fmt == "dicom-sr" and sys.stdout.isatty():
        raise AgentError("a DICOM SR is binary and would garble the terminal", "Give --out FILE.dcm, or pipe it")
    with _agent() as agent:
        result = agent.export(thread_id, fmt)
    if out is None:
        sys.stdout.buffer.write(result.data)
        sys.stdout.flush()
        return
    _write_whole(Path(out), result.data)
    echo(f"wrote {out} ({fmt}, {len(result.data):,} bytes)", err=True)


def _write_whole(path: Path, data: bytes) -> None:
    """Written beside `path` and renamed over it, so a reader never sees half a report and a failed write leaves
    what was there."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise AgentError(f"cannot write {path}: {exc.strerror or exc}", "Choose a file you can write to") from exc


@main.command()
@_json
def demo(as_json) -> None:
    """Ask a real question about the CT slice that ships inside pydicom (no download, no model server needed)."""
    from pydicom.data import get_testdata_file

    path = str(get_testdata_file("CT_small.dcm"))
    echo(f"vesalius ask --study {path} {DEMO_QUESTION!r}\n", err=True)
    with _agent() as agent:
        _emit(agent.ask(DEMO_QUESTION, study=path), as_json)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@_modality
@_series
@_window
@click.option("--out", type=click.Path(path_type=Path), help="write rendered images and study.json to this folder")
@click.option("--images", default=8, show_default=True, help="images of a stack to write with --out (0: all)")
@_json
def inspect(path, modality, series, window, out, images, as_json) -> None:
    """Load PATH as Vesalius would (de-identified) and describe it; --out writes what a model would see."""
    if images < 0:
        raise AgentError(f"--images {images} is negative", "Give 0 (all images) or a positive number")
    with _agent() as agent:
        report = agent.inspect(path, modality=modality, series=series, window=window, out=out, images=images)
    if as_json:
        echo_json(report.model_dump_json(indent=2))
    else:
        from vesalius.agent.render import render_inspection

        echo(render_inspection(report))


def _batch(paths, modality, heatmaps, as_json, outputs: str) -> None:
    from vesalius.agent.render import record_line

    failed = 0
    with _agent() as agent:
        run = agent.classify if outputs == "classify" else agent.anomaly
        for record in run(paths, modality=modality, heatmaps=heatmaps):
            failed += record.error is not None
            if as_json:
                echo_json(record.model_dump_json())
            else:
                echo(record_line(record))
        _warn(agent)
    if failed:
        echo(f"{failed} of {len(paths)} file(s) could not be read (see their records)", err=True)
        sys.exit(1)


_paths = click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
_json_lines = click.option("--json", "as_json", is_flag=True, help="one JSON record per image (JSON Lines)")


@main.command()
@_paths
@_modality
@_heatmaps
@_json_lines
def classify(paths, modality, heatmaps, as_json) -> None:
    """Run every trained model that applies to each of PATHS: calibrated probabilities and anomaly scores."""
    _batch(paths, modality, heatmaps, as_json, "classify")


@main.command()
@_paths
@_modality
@click.option("--heatmaps", type=click.Path(path_type=Path), help="folder for heatmap overlay PNGs")
@_json_lines
def anomaly(paths, modality, heatmaps, as_json) -> None:
    """Anomaly score, regions and (with --heatmaps) a heatmap overlay for each of PATHS."""
    _batch(paths, modality, heatmaps, as_json, "anomaly")


@main.command()
@_json
def tools(as_json) -> None:
    """List the vision tools (built-in and plugins): what each answers, applies to and outputs."""
    with _agent() as agent:
        declarations = agent.tools()
        if as_json:
            echo_json(json.dumps([d.model_dump() for d in declarations], indent=2))
        else:
            from vesalius.agent.render import render_tool

            for d in declarations:
                echo(render_tool(d))
        _warn(agent)


@main.command()
@click.argument("model")
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    help="the shared data folder",
    default=lambda: str(Path.cwd().parent / "shared" / "data"),
    show_default="../shared/data",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="where to write the bundle, card and plots (default: the installed weights folder)",
)
@click.option("--seed", default=0, show_default=True)
@click.option("--epochs", type=int, help="override the recipe's epochs (quick checks)")
@click.option(
    "--holdout",
    type=click.Choice(["none", "image", "question"]),
    default="none",
    show_default=True,
    help="vqa: ship the twin trained without the by-image or by-question development fifth, to evaluate it",
)
def train(model, data, out, seed, epochs, holdout) -> None:
    """Rebuild MODEL from the shared data with a fixed seed: pneumonia, pneumoniamnist, breastmnist,
    modality_gate, chest_anomaly (which reads the pneumonia network: train that first), or vqa (which reads the
    modality gate's network: train that first)."""
    from vesalius.vision.train.recipes import train as run

    card = run(model, Path(data), out, seed, epochs, holdout)
    echo_json(json.dumps({"model": card.name, "version": card.version, "metrics": card.metrics}, indent=2))


@main.command()
def schema() -> None:
    """Print the JSON schema of `--json` answers (the committed file of this schema version)."""
    from vesalius.agent.schema import committed_schema

    echo_json(json.dumps(committed_schema(), indent=2))


main.add_command(kb)
