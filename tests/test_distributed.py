"""Training, generation and evaluation on several processes equal one process (CPU processes, gloo).

Every multi-process run here is a real launch, as a user types it: ``torchrun`` or ``accelerate launch`` in a
subprocess, two CPU processes joined by the gloo backend (the code paths of NCCL on GPUs), on tiny models.
The one-process reference runs in this process with the same settings.

Tolerance of the adapters (``ATOL``/``RTOL``, ``|two - one| <= ATOL + RTOL |one|`` per element): two processes
average their gradients by an all-reduce where one process sums four micro-batches, so the float32 sums are
added in another order; Adam then carries those rounding differences through the steps. Measured on these
settings (tiny Qwen3, 32 pairs, 4 steps of 16, lr 5e-3): max |difference| 1.0e-7 for DPO and 3.0e-8 for
``dpo_norm`` (LoRA B factors of max |B| 1.0e-2), i.e. at most 2% of what the tolerance allows; a global batch
of 8 instead of 16 (what an accumulation that ignored the processes would give) lands 7,700 times beyond it,
another seed 110,000 times (test_the_tolerance_separates_runs_that_differ).
LoRA dropout is 0 in these runs: each process draws its own dropout masks, so with dropout the runs are
equal in distribution only. The training pairs fill whole global batches (32 pairs, batch 16): the last,
partial batch of an epoch is split differently (accelerate pads a process's share with the epoch's first
pairs), so there one and several processes differ by design of the engines.
"""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_toy import srt_world  # noqa: F401  (a fixture)
from test_train import separable_pairs, write_jsonl

from deltahub.cli import main

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ATOL, RTOL = 1e-6, 1e-4

# the launch forms of docs/scale-out.md, exactly (test_readme_commands_are_these checks it)
TORCHRUN = "torchrun --standalone --nproc_per_node 2"
ACCELERATE_CPU = "accelerate launch --config_file recipes/accelerate/cpu.yaml"
ACCELERATE_ONE = "accelerate launch --cpu --num_processes 2"  # what silently ran one process before

SETTINGS = {
    "rank": 4,
    "alpha": 8,
    "dropout": 0.0,
    "batch_size": 16,
    "micro_batch_size": 4,
    "max_steps": 4,
    "learning_rate": 5e-3,
    "eval_fraction": 0.0,
    "save_steps": 2,
}


def flags(settings: dict) -> list[str]:
    """``deltahub train`` flags for a settings dict (``--lr`` is learning_rate's flag)."""
    out = []
    for k, v in settings.items():
        out += ["--lr" if k == "learning_rate" else "--" + k.replace("_", "-"), str(v)]
    return out


def launch(form: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run ``form ARGS`` (a launcher from this environment) in the repository root; stdout and stderr kept."""
    argv = shlex.split(form)
    argv[0] = str(BIN / argv[0])
    return subprocess.run(
        [*argv, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


def show(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-6000:]}"


def assert_same_adapter(a: Path, b: Path) -> None:
    x, y = load_file(a / "adapter_model.safetensors"), load_file(b / "adapter_model.safetensors")
    assert x.keys() == y.keys()
    for k in x:
        torch.testing.assert_close(y[k], x[k], atol=ATOL, rtol=RTOL, msg=lambda m, k=k: f"{k}: {m}")
    assert any(x[k].abs().max() > 1e-4 for k in x if "lora_B" in k)  # it trained: B left its zero init


def losses(adapter: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (adapter / "metrics.jsonl").read_text().splitlines()]


def training(adapter: Path) -> dict:
    return json.loads((adapter / "deltahub.json").read_text())["training"]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", separable_pairs(32, seed=5))


@pytest.fixture(scope="module")
def one_process(tiny_model, pairs, tmp_path_factory):
    """The one-process adapters, by objective, through the CLI in this process."""
    made = {}

    def get(objective: str) -> Path:
        if objective not in made:
            out = tmp_path_factory.mktemp(f"one-{objective}") / "delta"
            args = ["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(out), "-q"]
            main(["train", *args, *flags({**SETTINGS, "objective": objective})])
            made[objective] = out
        return made[objective]

    return get


@pytest.mark.slow
@pytest.mark.parametrize(("objective", "form"), [("dpo", TORCHRUN), ("dpo_norm", ACCELERATE_CPU)])
def test_two_processes_train_the_adapter_of_one(objective, form, one_process, tiny_model, pairs, tmp_path):
    out = tmp_path / "delta"
    proc = launch(
        form,
        "-m",
        "deltahub.train",
        *["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(out), "-q"],
        *flags({**SETTINGS, "objective": objective}),
    )
    assert proc.returncode == 0, show(proc)
    launcher = "torchrun" if form == TORCHRUN else "accelerate launch"
    line = "training on 2 processes (gloo) via " + launcher + ": micro-batch 4 x 2 accumulation steps x 2 = batch 16"
    assert line in proc.stderr, show(proc)
    assert proc.stdout.count("adapter written to") == 1  # rank 0 reports, and writes
    reference = one_process(objective)
    assert_same_adapter(reference, out)
    assert losses(out) == pytest.approx(losses(reference), rel=1e-4)
    two, one = training(out), training(reference)
    assert (two["world_size"], two["backend"], two["launcher"], two["requested_processes"]) == (2, "gloo", launcher, 2)
    assert (two["micro_batch_size"], two["gradient_accumulation_steps"], two["batch_size"]) == (4, 2, 16)
    assert (one["world_size"], one["backend"], one["gradient_accumulation_steps"]) == (1, None, 4)
    assert two["distributed_type"] == "MULTI_CPU" and two["steps"] == one["steps"] == 4
    # one output, written whole: no work folder, no temporary siblings, the same files as one process writes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["delta"]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())
    assert "training_args.bin" not in {p.name for p in out.iterdir()}  # the Trainer's pickle stays out


@pytest.mark.slow
def test_killed_two_process_run_resumes_to_the_same_adapter(one_process, tiny_model, pairs, tmp_path, capsys):
    out = tmp_path / "delta"
    spec = tmp_path / "kill.json"
    spec.write_text(
        json.dumps(
            {
                "student": str(tiny_model),
                "pairs": str(pairs),
                "out": str(out),
                "config": {**SETTINGS, "objective": "dpo"},
                "kill_after": 2,
            }
        )
    )
    killed = launch(TORCHRUN, str(REPO / "tests" / "distributed_kill.py"), str(spec))
    assert killed.returncode != 0 and "not killed" not in killed.stderr, show(killed)
    partial = tmp_path / "delta.partial"
    assert not out.exists() and (partial / "checkpoint-2").is_dir()
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {p.name for p in (partial / "checkpoint-2").iterdir()}

    # resumed on another number of processes: refused (each process's random state and data share are its own)
    args = ["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(out), "-q"]
    with pytest.raises(SystemExit) as exc:
        main(["train", *args, *flags({**SETTINGS, "objective": "dpo"})])
    assert exc.value.code == 2 and "processes: 2 then, 1 now" in capsys.readouterr().err
    assert (partial / "checkpoint-2").is_dir()

    resumed = launch(TORCHRUN, "-m", "deltahub.train", *args, *flags({**SETTINGS, "objective": "dpo"}))
    assert resumed.returncode == 0, show(resumed)
    assert f"resuming from {partial / 'checkpoint-2'}" in resumed.stderr, show(resumed)
    assert not partial.exists()
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert_same_adapter(one_process("dpo"), out)


def test_the_tolerance_separates_runs_that_differ(one_process, tiny_model, pairs, tmp_path):
    """Half the global batch (the same pairs, in other steps) moves the adapter far outside ATOL/RTOL: the
    comparison sees a launch that got the accumulation wrong."""
    out = tmp_path / "batch8"
    args = ["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(out), "-q"]
    main(["train", *args, *flags({**SETTINGS, "objective": "dpo", "batch_size": 8})])
    with pytest.raises(AssertionError, match="Mismatched elements"):
        assert_same_adapter(one_process("dpo"), out)


@pytest.mark.slow
def test_fsdp_config_on_two_cpu_processes(one_process, tiny_model, pairs, tmp_path):
    """recipes/accelerate/fsdp.yaml on two CPU processes. torch runs FSDP2 on CPU (gloo); whether accelerate
    applies the config there is its decision, and deltahub must report what actually ran."""
    config = yaml.safe_load((REPO / "recipes" / "accelerate" / "fsdp.yaml").read_text())
    config.update(num_processes=2, main_process_port=0, mixed_precision="no", use_cpu=True)
    config["fsdp_config"]["fsdp_cpu_ram_efficient_loading"] = False
    (tmp_path / "fsdp-cpu.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "delta"
    proc = launch(
        f"accelerate launch --config_file {tmp_path / 'fsdp-cpu.yaml'}",
        "-m",
        "deltahub.train",
        *["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(out), "-q"],
        *flags({**SETTINGS, "objective": "dpo"}),
    )
    assert proc.returncode == 0, show(proc)
    assert_same_adapter(one_process("dpo"), out)
    ran = training(out)
    assert ran["requested_distributed_type"] == "FSDP" and ran["world_size"] == 2
    if ran["distributed_type"] != "FSDP":
        assert "WARNING: the accelerate config asked for FSDP, but accelerate runs MULTI_CPU here" in proc.stderr
        import accelerate

        # torch itself shards on these processes: FSDP2's fully_shard over gloo, each holds half of a 16 x 8 weight
        sharded = launch(TORCHRUN, str(REPO / "tests" / "distributed_fsdp2.py"))
        assert sharded.returncode == 0, show(sharded)
        shards = sorted(line.rsplit(" ", 1)[0] for line in sharded.stdout.splitlines())
        assert shards == ["0 (8, 8)", "1 (8, 8)"], show(sharded)
        pytest.skip(
            f"accelerate {accelerate.__version__} applies an FSDP config only to GPU-type process groups "
            "(AcceleratorState turns FSDP on for MULTI_GPU/NPU/XPU..., not MULTI_CPU), although torch "
            f"{torch.__version__} runs FSDP2 on CPU processes (fully_shard over gloo sharded a model here): "
            f"it trained as DDP ({ran['distributed_type']}), "
            "equal to one process, and said so in its line and provenance"
        )


@pytest.mark.slow
def test_batch_that_does_not_divide_is_one_line(tiny_model, pairs, tmp_path, capsys):
    args = ["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(tmp_path / "d")]
    bad = flags({**SETTINGS, "batch_size": 10, "micro_batch_size": 4})
    with pytest.raises(SystemExit) as exc:
        main(["train", *args, *bad])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: --batch-size 10 does not divide into --micro-batch-size 4 x 1 process (= 4")

    proc = launch(TORCHRUN, "-m", "deltahub.train", *args, *bad)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "[rank"))]
    assert lines == [
        "error: --batch-size 10 does not divide into --micro-batch-size 4 x 2 processes (= 8 pairs per accumulation "
        "step) (fix: choose a --batch-size that is a multiple of 8, or another --micro-batch-size)"
    ], show(proc)
    # no traceback from deltahub's processes (torchrun itself reports the failed processes, ChildFailedError)
    assert not [line for line in proc.stderr.splitlines() if line.strip().startswith("File ") and "deltahub" in line]
    assert "ChildFailedError" in proc.stderr and "exitcode  : 2" in proc.stderr
    assert not (tmp_path / "d.partial").exists()


@pytest.mark.slow
def test_a_launch_that_got_one_process_says_so(tiny_model, pairs, tmp_path):
    out = tmp_path / "delta"
    args = ["--student", str(tiny_model), "--pairs", str(pairs), "--out", str(out), "-q"]
    proc = launch(ACCELERATE_ONE, "-m", "deltahub.train", *args, *flags({**SETTINGS, "max_steps": 1}))
    assert proc.returncode == 0, show(proc)
    assert "training on 1 process (no process group) via accelerate launch" in proc.stderr
    assert "WARNING: accelerate launch was asked for 2 processes but started one" in proc.stderr
    assert "--config_file recipes/accelerate/cpu.yaml" in proc.stderr
    ran = training(out)
    assert (ran["world_size"], ran["requested_processes"], ran["launcher"]) == (1, 2, "accelerate launch")


# ------------------------------------------------------------------------------------------------
# generation and evaluation: divided across the processes, assembled in order


@pytest.fixture(scope="module")
def srt_weak(srt_world):  # noqa: F811
    """A tiny model that learned the toy skill srt (test_toy's world): its answers and verdicts vary."""
    return srt_world.model("srt-weak")


@pytest.mark.slow
def test_two_processes_generate_the_pairs_of_one(srt_weak, tiny_model, tmp_path):
    from deltahub.generate import load_pairs
    from deltahub.toy import write_prompts

    prompts = write_prompts(tmp_path / "prompts.jsonl", ["srt"], 20, split="pairs")
    args = ["--chosen", str(srt_weak), "--rejected", str(tiny_model), "--prompts", str(prompts)]
    args += ["--batch-size", "3", "--max-new-tokens", "12", "--no-progress"]  # 7 batches: 4 and 3 per process
    main(["generate", *args, "--out", str(tmp_path / "one")])
    proc = launch(TORCHRUN, "-m", "deltahub.generate", *args, "--out", str(tmp_path / "two"))
    assert proc.returncode == 0, show(proc)
    assert "generating on 2 processes (gloo) via torchrun: 7 batches of up to 3 prompts per model" in proc.stderr
    assert proc.stdout.count("wrote 20 pairs") == 1
    one, two = load_pairs(tmp_path / "one").to_list(), load_pairs(tmp_path / "two").to_list()
    assert two == one and [r["prompt_index"] for r in two] == list(range(20))
    assert len({r["chosen"][0]["content"] for r in one}) > 5  # answers differ from prompt to prompt
    p1, p2 = (json.loads((tmp_path / name / "deltahub.json").read_text()) for name in ("one", "two"))
    l1, l2 = p1["generation"].pop("launch"), p2["generation"].pop("launch")
    assert p1 == p2 and (l1["world_size"], l2["world_size"], l2["backend"]) == (1, 2, "gloo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "prompts.jsonl", "two"]  # no work folder left


@pytest.mark.slow
def test_two_processes_evaluate_like_one(srt_weak, tmp_path):
    """``deltahub eval`` under torchrun: toy questions divided by deltahub, an lm-eval task run by lm-eval in
    each process (lm-eval divides its requests across GPUs only): the scores of one process."""
    from lm_eval_tasks import write_mc_task
    from test_evaluate import DOCS

    from deltahub.evaluate import evaluate

    tasks = write_mc_task(tmp_path / "tasks", "rev_mc", DOCS)
    one = evaluate(srt_weak, ["toy:srt", "rev_mc"], limit=60, include_path=tasks, backend="hf")
    proc = launch(
        TORCHRUN,
        *["-m", "deltahub.evaluate", str(srt_weak), "--tasks", "toy:srt,rev_mc", "--limit", "60"],
        *["--include-path", str(tasks), "--backend", "hf", "--output", str(tmp_path / "two.json")],
    )
    assert proc.returncode == 0, show(proc)
    assert "evaluating on 2 processes (gloo) via torchrun: toy questions divided across processes" in proc.stderr
    assert proc.stdout.count("| model |") == 1  # one table, from rank 0
    assert json.loads((tmp_path / "two.json").read_text()) == one
    assert 0 < one["toy:srt"]["exact_match"] < 1


@pytest.mark.slow
def test_recipe_evaluation_stage_under_torchrun_keeps_question_order(srt_weak, tmp_path):
    """A recipe's toy evaluation stage (what compose and the report pair question by question): each process
    scores a contiguous share, and the gathered verdicts are those of one process, in question order."""
    from deltahub.pipeline.stage import run_stage
    from deltahub.recipe import EvalSpec

    kwargs = {"eval": EvalSpec(n=60).model_dump(), "skills": ["srt"], "model": str(srt_weak), "adapter": None}
    spec = {"stage": "eval", "kwargs": {**kwargs, "select": False}}
    (tmp_path / "spec.json").write_text(json.dumps({**spec, "result": str(tmp_path / "result.json")}))
    proc = launch(TORCHRUN, "-m", "deltahub.pipeline.stage", str(tmp_path / "spec.json"))
    assert proc.returncode == 0, show(proc)
    here = run_stage(spec)
    assert json.loads((tmp_path / "result.json").read_text())["value"] == here
    assert "0" in here["correct"]["srt"] and "1" in here["correct"]["srt"]  # so the order of verdicts is tested


# ------------------------------------------------------------------------------------------------
# recipes: the launch: section


def _recipe(student, chosen, prompts, launch: dict) -> dict:
    return {
        "name": "scale-test",
        "hub": {"publish": False},
        "student": {"model": str(student)},
        "deltas": [
            {
                "name": "srt",
                "chosen": str(chosen),
                "rejected": str(student),
                "prompts": {"source": str(prompts)},
                "generation": {"max_new_tokens": 8, "batch_size": 4},
                "train": {**SETTINGS, "max_steps": 2},
            }
        ],
        "merge": {"methods": ["average"]},
        "eval": {"kind": "toy", "tasks": ["srt"], "n": 20, "teachers": False, "sft_control": False},
        "launch": launch,
    }


@pytest.mark.slow
def test_recipe_runs_its_stages_under_the_launcher(srt_weak, tiny_model, tmp_path):
    from deltahub.pipeline.run import run_recipe
    from deltahub.recipe import parse_recipe
    from deltahub.toy import write_prompts

    prompts = write_prompts(tmp_path / "prompts.jsonl", ["srt"], 32, split="pairs")
    recipe = parse_recipe(
        _recipe(
            tiny_model, srt_weak, prompts, {"launcher": "torchrun", "processes": 2, "stages": ["generate", "train"]}
        )
    )
    said: list[str] = []
    result = run_recipe(recipe, tmp_path / "work", log=said.append)
    started = [line for line in said if line.startswith("$ ")]
    assert len(started) == 2 and all(f"{TORCHRUN} -m deltahub.pipeline.stage" in line for line in started), said
    pairs = json.loads((tmp_path / "work" / "pairs-srt" / "deltahub.json").read_text())
    assert pairs["generation"]["launch"]["world_size"] == 2 and pairs["pairs"] == 32
    trained = training(tmp_path / "work" / "delta-srt")
    assert (trained["world_size"], trained["gradient_accumulation_steps"]) == (2, 2)
    assert set(result.rows) == {"student", "+ delta srt", "merge average"}


def test_recipe_launch_section_is_validated(tiny_model, tmp_path):
    from deltahub.errors import InputError
    from deltahub.recipe import load_recipe, parse_recipe

    data = _recipe(tiny_model, tiny_model, tmp_path / "p.jsonl", {"launcher": "torchrun", "processes": 3})
    with pytest.raises(InputError, match=r"deltas\[0\]\.train: --batch-size 16 does not divide .* 3 processes"):
        parse_recipe(data)
    with pytest.raises(InputError, match="launch: .*config is an accelerate config file"):
        parse_recipe({**data, "launch": {"launcher": "torchrun", "config": "x.yaml"}})
    with pytest.raises(InputError, match=r"launch.processes: must be >= 1 \(got 0\)"):
        parse_recipe({**data, "launch": {"launcher": "torchrun", "processes": 0}})
    (tmp_path / "r.yaml").write_text(
        yaml.safe_dump({**data, "launch": {"launcher": "accelerate", "config": "no.yaml"}})
    )
    with pytest.raises(InputError, match="launch.config no.yaml not found"):
        load_recipe(tmp_path / "r.yaml")
    # the papers' recipes carry their launch: accelerate with DeepSpeed ZeRO-2, one process per GPU of resources
    for name in ("pda-reasoning.yaml", "delta-learning-tulu3.yaml"):
        recipe = load_recipe(REPO / "recipes" / name)
        assert recipe.launch.launcher == "accelerate" and recipe.launch.processes == recipe.resources.gpus
        assert Path(recipe.launch.config) == REPO / "recipes" / "accelerate" / "deepspeed_zero2.yaml"
        assert recipe.launch.runs("train") and not recipe.launch.runs("generate")  # generation: vLLM's own DP/TP


# ------------------------------------------------------------------------------------------------
# the shipped accelerate configs, the multi-node example, and the README's commands


def test_accelerate_configs_load_in_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    kinds = {}
    for path in sorted((REPO / "recipes" / "accelerate").glob("*.yaml")):
        if "train:" in path.read_text():
            continue  # a deltahub train recipe, not an accelerate config
        cfg = load_config_from_file(str(path))
        kinds[path.name] = (str(cfg.distributed_type).rsplit(".", 1)[-1], cfg.num_processes, cfg.num_machines)
    assert kinds == {
        "cpu.yaml": ("MULTI_GPU", 2, 1),  # accelerate's torchrun launcher; the processes find no GPU: gloo
        "deepspeed_zero2.yaml": ("DEEPSPEED", 8, 1),
        "deepspeed_zero3.yaml": ("DEEPSPEED", 8, 1),
        "fsdp.yaml": ("FSDP", 8, 1),
        "multi-node.yaml": ("MULTI_GPU", 16, 2),
    }


def _sbatch_launch(node: int, ip: str = "127.0.0.1") -> tuple[list[str], dict[str, int]]:
    """The accelerate command of recipes/slurm/train-multi-node.sbatch as node ``node`` runs it, and the
    script's #SBATCH resources."""
    import re

    text = (REPO / "recipes" / "slurm" / "train-multi-node.sbatch").read_text()
    res = {k: int(v) for k, v in re.findall(r"#SBATCH --(nodes|gpus-per-node)=(\d+)", text)}
    per_node = int(re.search(r"GPUS_PER_NODE=(\d+)", text).group(1))
    inner = re.search(r"srun .*bash -c '(.*)'", text).group(1)
    env = {
        "SLURM_NNODES": str(res["nodes"]),
        "NUM_PROCESSES": str(res["nodes"] * per_node),
        "SLURM_NODEID": str(node),
        "MAIN_IP": ip,
    }
    for k, v in env.items():
        inner = inner.replace(f'"${k}"', v)
    assert "$" not in inner, inner
    return shlex.split(inner), {**res, "per_node": per_node}


def test_multi_node_example_is_consistent():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    argv, res = _sbatch_launch(node=1)
    assert argv[:2] == ["accelerate", "launch"]
    args = launch_command_parser().parse_args(argv[2:])
    cfg = load_config_from_file(str(REPO / args.config_file))
    assert res["gpus-per-node"] == res["per_node"] == 8
    assert args.num_machines == cfg.num_machines == res["nodes"] == 2 and args.machine_rank == 1
    assert args.num_processes == cfg.num_processes == res["nodes"] * res["per_node"]
    assert args.module and args.training_script == "deltahub.train"
    train = args.training_script_args
    batch, micro = int(train[train.index("--batch-size") + 1]), int(train[train.index("--micro-batch-size") + 1])
    assert batch % (micro * args.num_processes) == 0  # the global batch divides over the 16 processes


@pytest.mark.slow
def test_multi_node_example_trains_across_two_machines_on_loopback(one_process, tiny_model, pairs, tmp_path):
    """The example's accelerate command, two "machines" of one CPU process each on this host (static
    rendezvous on loopback): the adapter of one process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "delta"
    procs = []
    for node in (0, 1):
        argv, _ = _sbatch_launch(node)
        argv = argv[: argv.index("-m")]  # the launch as the example has it; then the tiny run
        argv[argv.index("--num_processes") + 1] = "2"  # one process per "machine"
        argv[argv.index("--main_process_port") + 1] = str(port)
        argv += ["--mixed_precision", "no", "-m", "deltahub.train", "--student", str(tiny_model)]
        argv += ["--pairs", str(pairs), "--out", str(out), "-q", *flags({**SETTINGS, "objective": "dpo"})]
        argv[0] = str(BIN / "accelerate")
        procs.append(subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (o, e) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, f"{o}\n{e[-5000:]}"
    assert "training on 2 processes (gloo) via accelerate launch" in outputs[0][1]
    assert_same_adapter(one_process("dpo"), out)
    assert training(out)["world_size"] == 2


def test_readme_commands_are_these():
    section = (REPO / "docs" / "scale-out.md").read_text()  # the manual's "Scale out" page
    for form in (
        f"{TORCHRUN} -m deltahub.train",
        f"{ACCELERATE_CPU} -m deltahub.train",
        f"{ACCELERATE_ONE} -m deltahub.train",
        f"{TORCHRUN} -m deltahub.generate",
        f"{TORCHRUN} -m deltahub.evaluate",
        "sbatch recipes/slurm/train-multi-node.sbatch",
        "accelerate launch --config_file recipes/accelerate/fsdp.yaml -m deltahub.train",
        "accelerate launch --config_file recipes/accelerate/deepspeed_zero3.yaml -m deltahub.train",
    ):
        assert form in section, form


def test_each_launched_process_takes_a_gpu_of_its_own():
    """Generation under a launcher: the process of local rank r loads its model on GPU r, not spread over all."""
    from deltahub.generate.backends.transformers import placement

    def where(**kw):
        p = placement("auto", "auto", **kw)
        return p.device, p.device_map

    assert where(gpus=4, bf16_capable=True, local_rank=2) == ("cuda", "cuda:2")
    assert where(gpus=4, bf16_capable=True) == ("cuda:auto", "auto")  # one process: device_map=auto
    assert where(gpus=0, bf16_capable=False, local_rank=1) == ("cpu", None)  # CPU processes


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the script would run its rows")
def test_gpu_script_without_a_gpu_is_one_line():
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale_gpu.py")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: no CUDA GPU is visible")
