"""The `neuromas` command: a thin shell over the library (parse, build the config, call).

Every command validates its whole config first, prints the resolved config and saves it in the
run directory before any model is loaded. A user error (`NeuromasError`) prints one line and
exits with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from neuromas.config import RunConfig
from neuromas.configfile import load_config
from neuromas.errors import NeuromasError
from neuromas.files import disk_error, disk_message

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
console = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="YAML config (see configs/).", show_default=False)]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config value: key.path=value (YAML), e.g. network.layers=[1,1,1]."),
]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory (default runs/<config>-<time>).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


class Terminated(BaseException):
    """SIGTERM outside training (which stops after its step: rl/trainer.py's StopSignals), e.g.
    during the evaluation before it: without a handler Python would end with no word at all. A
    BaseException, as KeyboardInterrupt is, so that no `except Exception` on the way swallows it."""


def _terminated(signum, frame) -> None:
    raise Terminated


def user_errors(command):
    """Turn NeuromasError into one red line and exit status 2 (a stopped training run: 130 or
    143, as the signal's); Ctrl-C, SIGTERM and a disk that refuses a write get one line too.
    `serve` keeps SIGTERM for its server, which shuts down gracefully on it."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        own_sigterm = command.__name__ != "serve" and threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminated) if own_sigterm else None
        try:
            return command(*args, **kwargs)
        except Terminated:
            console.print("[bold red]stopped[/] by SIGTERM (a training run continues from its last checkpoint with "
                          "--resume RUN_DIR)", highlight=False, soft_wrap=True)
            raise typer.Exit(128 + signal.SIGTERM) from None
        except NeuromasError as error:
            message = str(error)
            if getattr(error, "run_dir", None) is not None:  # a stopped training run: the same command resumes it
                message += f"; continue with: neuromas {command.__name__} --resume {error.run_dir}"
            # escaped: a message may hold brackets (".[serve]", "layers [2, 1]") that rich would read as markup
            console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
            raise typer.Exit(getattr(error, "exit_code", 2)) from None
        except KeyboardInterrupt:
            console.print("[bold red]interrupted[/] (a training run continues from its last checkpoint with "
                          "--resume RUN_DIR)", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
        except Exception as error:
            refused = disk_error(error)  # a full disk, a read-only or forbidden directory (also as wrapped by safetensors)
            if refused is None:
                raise
            console.print(f"[bold red]error:[/] {escape(disk_message(refused))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        finally:
            if own_sigterm:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def _resolve(config_path: Path, overrides: list[str] | None, out: Path | None) -> RunConfig:
    config = load_config(config_path, overrides)
    if out is not None:
        config.out_dir = str(out)
    return config


def _start(config: RunConfig, config_path: Path):
    """(run directory, task) of a new run; the task is built first, so a bad task or missing
    data fails before any directory is made or model loaded."""
    from neuromas.build import load_task

    task = load_task(config)
    from neuromas.runner import make_run_dir, save_config  # torch comes with it: only once the config is good

    run_dir = make_run_dir(config, config_path)
    text = save_config(config, run_dir)
    console.print(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    console.print(f"run directory: [bold]{run_dir}[/]")
    return run_dir, task


def _prepare(
    config_path: Path | None, overrides: list[str] | None, out: Path | None, resume: Path | None, training: bool = False,
    ray: str | None = None,
):
    """(config, run directory, task): a new run from a config, or an interrupted one to continue.
    `ray`: the --ray of a training command, checked against train.rollout_workers up front."""
    from neuromas.build import load_task

    if resume is not None and (config_path is not None or overrides or out is not None):
        raise NeuromasError("--resume continues a run with its saved config; give no config, --set or --out with it")
    if resume is None and config_path is None:
        raise NeuromasError("give a config file, or --resume RUN_DIR to continue a run")
    config = load_config(resume / "config.yaml") if resume is not None else _resolve(config_path, overrides, out)
    if training and config.train.steps == 0:
        raise NeuromasError("train.steps is 0: set it in the config or with --set train.steps=N")
    if ray is not None or (config.train.steps > 0 and config.train.rollout_workers):  # before any run directory or model
        from neuromas.runner import check_ray_training

        check_ray_training(config, ray)
    if resume is None:
        return (config, *_start(config, config_path))
    console.print(f"resuming [bold]{resume}[/]")
    return config, resume, load_task(config)


def _report(run_dir: Path, results: dict) -> None:
    typer.echo((run_dir / "results.md").read_text())
    if "after" in results:
        from neuromas.eval import before_after_line

        console.print(before_after_line(results["before"], results["after"]), highlight=False, soft_wrap=True)


def _what_next(run_dir: Path, page: Path, trained: bool) -> None:
    """The end of `neuromas run`: where the report is, how to open it, what to try next."""
    console.print(f"report: [bold]{page}[/]", soft_wrap=True)
    console.print(f"  open it in a browser: python -m webbrowser -t {page.resolve().as_uri()}  "
                  "(one self-contained file: copy it off a remote machine)", highlight=False, soft_wrap=True)
    config = run_dir / "config.yaml"
    if trained:
        console.print(f"next: neuromas serve {run_dir}   # the trained network as an OpenAI-compatible API",
                      highlight=False, soft_wrap=True)
        console.print(f"      neuromas baselines {config} --run {run_dir}   # frozen baselines on the same questions",
                      highlight=False, soft_wrap=True)
    else:
        console.print(f"next: neuromas baselines {config}   # frozen baselines on the same questions",
                      highlight=False, soft_wrap=True)
        console.print(f"      neuromas run {config} --set train.steps=10   # train it, then evaluate again",
                      highlight=False, soft_wrap=True)


RayTrainOpt = Annotated[Optional[str], typer.Option(
    help="Sample the rollouts on train.rollout_workers Ray workers: 'local' or a cluster address.")]
OptionalConfig = Annotated[Optional[Path], typer.Argument(help="YAML config (see configs/).", show_default=False)]
ResumeOpt = Annotated[Optional[Path], typer.Option("--resume", help="Continue the interrupted run in this directory.")]


@app.command()
@user_errors
def run(
    config_path: OptionalConfig = None, set: SetOpt = None, out: OutOpt = None, resume: ResumeOpt = None,
    ray: RayTrainOpt = None, quiet: QuietOpt = False,
) -> None:
    """The main job: evaluate, train (when train.steps > 0), evaluate, write a run directory."""
    config, run_dir, task = _prepare(config_path, set, out, resume, ray=ray)
    from neuromas.report import write_report
    from neuromas.runner import run_eval, run_train

    if config.train.steps > 0:
        results = run_train(config, run_dir, resume=resume is not None, progress=not quiet, task=task, ray=ray)
    else:
        results = {"eval": run_eval(config, run_dir, progress=not quiet, task=task)}
    _report(run_dir, results)
    _what_next(run_dir, write_report(run_dir), trained=config.train.steps > 0)


@app.command()
@user_errors
def train(
    config_path: OptionalConfig = None, set: SetOpt = None, out: OutOpt = None, resume: ResumeOpt = None,
    ray: RayTrainOpt = None, quiet: QuietOpt = False,
) -> None:
    """Train every node jointly from the task's reward; checkpoints allow --resume."""
    config, run_dir, task = _prepare(config_path, set, out, resume, training=True, ray=ray)
    from neuromas.runner import run_train

    _report(run_dir, run_train(config, run_dir, resume=resume is not None, progress=not quiet, task=task, ray=ray))


@app.command("eval")
@user_errors
def eval_(
    config_path: ConfigArg,
    set: SetOpt = None,
    out: OutOpt = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate the first N examples only.")] = None,
    split: Annotated[str, typer.Option(help="train or test.")] = "test",
    ray: Annotated[Optional[str], typer.Option(help="Shard over Ray workers: 'local' or a cluster address.")] = None,
    ray_workers: Annotated[int, typer.Option(help="Ray workers, each with its own backend.")] = 2,
    quiet: QuietOpt = False,
) -> None:
    """Greedy accuracy (Wilson 95% CI), LLM calls and tokens per question, time."""
    overrides = list(set or []) + [f"eval.split={split}"] + ([f"eval.limit={limit}"] if limit else [])
    config = _resolve(config_path, overrides, out)
    if ray is not None and ray_workers < 1:
        raise NeuromasError(f"--ray-workers {ray_workers}: give at least 1")
    run_dir, task = _start(config, config_path)
    from neuromas.runner import run_eval

    result = run_eval(config, run_dir, progress=not quiet, task=task, ray=ray, ray_workers=ray_workers)
    typer.echo(json.dumps(result.summary(), indent=2))


@app.command("baselines")
@user_errors
def baselines_(
    config_path: ConfigArg,
    set: SetOpt = None,
    out: OutOpt = None,
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", "-m", help="A baseline spec, e.g. cot or debate:agents=3,rounds=2; repeat; 'network' is the "
        "network itself. Default: network and every baseline, self-consistency cost-matched.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option("--run", help="Compare this trained run's network.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Evaluate the first N examples only.")] = None,
    ray: Annotated[Optional[str], typer.Option(help="Shard over Ray workers: 'local' or a cluster address.")] = None,
    ray_workers: Annotated[int, typer.Option(help="Ray workers, each with its own backend.")] = 2,
    quiet: QuietOpt = False,
) -> None:
    """The network and frozen-backbone baselines on the same test inputs: one table (MD, CSV)."""
    overrides = list(set or []) + ([f"eval.limit={limit}"] if limit else [])
    config = _resolve(config_path, overrides, out)
    from neuromas.compare import check_methods, run_baselines

    check_methods(method or [])
    if run_dir is not None and ray is not None:
        raise NeuromasError("--run with --ray: the Ray workers build the network from the config; give init_from in it")
    target, _ = _start(config, config_path)
    run_baselines(config, target, method, run_dir, progress=not quiet, ray=ray, ray_workers=ray_workers)
    typer.echo((target / "baselines.md").read_text())


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory.", show_default=False)],
    baselines: Annotated[Optional[Path], typer.Option(help="A `neuromas baselines` output directory to include.")] = None,
    ablation: Annotated[bool, typer.Option(help="Also measure each node's accuracy drop when blanked (runs the model).")] = False,
    examples: Annotated[int, typer.Option(help="Examples in the trace viewer (and the ablation).")] = 100,
) -> None:
    """Write RUN/report.html: comparison table, curves, the network graph and a trace viewer."""
    from neuromas.report import write_report

    typer.echo(write_report(run_dir, baselines, ablation=ablation, max_examples=examples))


GrowOpt = Annotated[Optional[list[str]], typer.Option(
    help="LAYER:WIDTH, layers counted from 1 as in node ids (--widen 1:2 widens the layer of L1N1); repeat for "
    "several.")]
DeepenOpt = Annotated[Optional[list[str]], typer.Option(
    help="LAYER:WIDTH[:FAN_IN], a layer of WIDTH nodes after LAYER (counted from 1), reading all of that layer's "
    "nodes or FAN_IN of them each (--deepen 1:2:1 after a width-2 layer: one-to-one, each new node reading "
    "one message); repeat for several.")]


@app.command()
@user_errors
def grow(
    run_dir: Annotated[Path, typer.Argument(
        help="A finished run (its final/ network is grown) or one of its checkpoints (RUN/checkpoints/step-N).",
        show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="New run directory to write.", show_default=False)],
    widen: GrowOpt = None,
    deepen: DeepenOpt = None,
    init: Annotated[str, typer.Option(help="New nodes' adapters: clone (a trained node's) or fresh.")] = "clone",
    ramp_steps: Annotated[int, typer.Option(help="Training steps over which the grown network fades in.")] = 10,
    keep_edges: Annotated[bool, typer.Option(
        help="With --deepen: the nodes after the new layer keep reading the layer before it, by skip edges.")] = False,
) -> None:
    """Grow a trained network wider (--widen) or deeper (--deepen) into a new run to train."""
    stage = {"at_step": 1, "widen": [_layer_width(w, "widen", "layer") for w in widen or []],
             "deepen": [_deepening(d) | {"keep_edges": keep_edges} for d in deepen or []],
             "init": init, "ramp_steps": ramp_steps}
    from neuromas.runner import run_grow

    config_path, record = run_grow(run_dir, out, stage)
    widths = " -> ".join(str(w) for w in record["widths"])
    renamed = ", ".join(f"{old} -> {new}" for old, new in record["renamed"].items())
    console.print(f"grown network {widths} in [bold]{out}[/]", soft_wrap=True)
    if renamed:  # a deepening: per-node metrics of the new run use the new ids (growth.jsonl)
        console.print(f"nodes renamed: {renamed}", soft_wrap=True)
    console.print(f"train it with: neuromas run {config_path}", soft_wrap=True)


def _layer_width(text: str, option: str, key: str) -> dict[str, int]:
    layer, sep, width = text.partition(":")
    if not sep or not layer.strip().isdigit() or not width.strip().isdigit():
        raise NeuromasError(f"--{option} {text!r}: write LAYER:WIDTH with layers counted from 1, e.g. --{option} 1:2")
    return {key: int(layer), "width": int(width)}


def _deepening(text: str) -> dict[str, int]:
    """--deepen LAYER:WIDTH[:FAN_IN] as a DeepenOp's fields."""
    head, sep, fan_in = text.rpartition(":") if text.count(":") == 2 else (text, "", "")
    if sep and not fan_in.strip().isdigit():
        raise NeuromasError(f"--deepen {text!r}: write LAYER:WIDTH or LAYER:WIDTH:FAN_IN, e.g. --deepen 1:2:1")
    return _layer_width(head, "deepen", "after_layer") | ({"fan_in": int(fan_in)} if sep else {})


@app.command()
@user_errors
def show(config_path: ConfigArg, set: SetOpt = None) -> None:
    """Validate a config and its task and print the network it builds (no model is loaded)."""
    from neuromas.build import load_task
    from neuromas.network import Network
    from neuromas.plan import plan_schedule

    config = _resolve(config_path, set, None)
    load_task(config)
    typer.echo(repr(Network.from_config(config)))
    if config.train.growth:
        for stage, plan in zip(config.train.growth, plan_schedule(config.network, config.train.growth)):
            widths = [layer.width for layer in plan.config.layers]
            typer.echo(f"grows after step {stage.at_step} to widths {widths} (fade-in {stage.ramp_steps} steps)")


@app.command()
@user_errors
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, saved network or config file.", show_default=False)],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    model_id: Annotated[Optional[str], typer.Option(help="Model name clients send (default: the run's name).")] = None,
    api_key_env: Annotated[Optional[str], typer.Option(help="Environment variable holding the API key clients must send.")] = None,
    max_batch: Annotated[int, typer.Option(help="Most questions batched into one forward pass.", min=1)] = 32,
    max_input_chars: Annotated[int, typer.Option(help="Longest user message accepted (longer: 413).", min=1)] = 8000,
    timeout: Annotated[float, typer.Option(help="Seconds before a request is answered 504.", min=0.001)] = 300.0,
) -> None:
    """Serve a (trained) network as an OpenAI-compatible /v1/chat/completions endpoint."""
    import os

    from neuromas.serve import ServeSettings, create_app, load_served_network, require_server, run_server

    require_server()
    api_key = None
    if api_key_env is not None:
        api_key = os.environ.get(api_key_env)
        if not api_key:
            raise NeuromasError(f"--api-key-env {api_key_env}: that environment variable is empty or not set")
    net, task, name = load_served_network(run_dir)
    settings = ServeSettings(model_id=model_id or name, api_key=api_key, max_batch=max_batch,
                             max_input_chars=max_input_chars, timeout_s=timeout)
    typer.echo(repr(net))
    net.backend  # load the model before accepting requests  # noqa: B018
    console.print(f"serving [bold]{settings.model_id}[/] on http://{host}:{port}/v1")
    run_server(create_app(net, task, settings), host, port, settings)


@app.command()
def tasks() -> None:
    """List the registered tasks."""
    from neuromas import tasks as registry

    typer.echo("\n".join(registry.names()))


if __name__ == "__main__":
    app()
