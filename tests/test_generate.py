"""deltahub generate / agreement on tiny local models (transformers backend)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from deltahub.errors import InputError
from deltahub.generate import (
    FilterSettings,
    GenerationSettings,
    agreement,
    apply_filters,
    exact_match,
    generate_pairs,
    load_pairs,
    load_prompts,
    record_agreement,
)
from deltahub.generate.pairs import write_pairs_folder

N_PROMPTS = 10
SAMPLED = dict(temperature=1.0, top_p=0.9, max_new_tokens=8, seed=7, batch_size=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A weak (hidden 128) and a weaker (hidden 64, 1 layer) model of one family, and a prompts file with answers."""
    from deltahub.tiny import build_tiny_model

    d = tmp_path_factory.mktemp("gen")
    weak = build_tiny_model(d / "weak", hidden_size=128, num_layers=2, seed=1)
    weaker = build_tiny_model(d / "weaker", hidden_size=64, num_layers=1, seed=2)
    prompts = d / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"question": f"what is {i} + {i}?", "answer": str(2 * i), "skill": "add"}) + "\n"
            for i in range(N_PROMPTS)
        )
    )
    return d, str(weak), str(weaker), prompts


@pytest.fixture(scope="module")
def sampled(world):
    d, weak, weaker, prompts = world
    return generate_pairs(weak, weaker, str(prompts), d / "sampled", GenerationSettings(**SAMPLED), progress=False)


def test_schema_and_provenance(world, sampled):
    d, weak, weaker, prompts = world
    ds = load_pairs(sampled)
    assert len(ds) == N_PROMPTS
    for col in (
        "prompt",
        "chosen",
        "rejected",
        "chosen_model",
        "rejected_model",
        "chosen_revision",
        "rejected_revision",
        "chosen_finish_reason",
        "rejected_finish_reason",
        "chosen_tokens",
        "rejected_tokens",
        "answer",
        "skill",
    ):
        assert col in ds.column_names
    row = ds[3]
    assert row["prompt"] == [{"role": "user", "content": "what is 3 + 3?"}]
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    assert row["answer"] == "6" and row["chosen_model"] == weak and row["rejected_model"] == weaker
    assert all(1 <= n <= SAMPLED["max_new_tokens"] for n in list(ds["chosen_tokens"]) + list(ds["rejected_tokens"]))
    prov = json.loads((sampled / "deltahub.json").read_text())
    assert prov["kind"] == "dataset" and prov["schema_version"] == 1 and prov["pairs"] == N_PROMPTS
    assert prov["chosen"]["params"] > prov["rejected"]["params"] > 0
    assert prov["prompts"] == {
        "dataset": str(prompts),
        "split": None,
        "revision": None,
        "column": "question",
        "count": N_PROMPTS,
    }
    assert prov["generation"]["backend"] == "transformers" and prov["generation"]["seed"] == 7
    assert prov["generation"]["device"] == "auto"  # the setting; each model records where it actually ran
    assert (
        (prov["chosen"]["device"], prov["chosen"]["dtype"])
        == (prov["rejected"]["device"], "float32")
        == ("cpu", "float32")
    )
    assert (sampled / "README.md").exists()
    assert not (d / ".sampled.work").exists(), "work folder is removed after success"


def test_trl_reads_pairs(sampled):
    """TRL's own format check accepts the rows as conversational preference data."""
    from trl.data_utils import is_conversational

    ds = load_pairs(sampled)
    assert is_conversational(ds[0])


def test_greedy_matches_unbatched_reference(world, tmp_path):
    """Batched, left-padded greedy answers equal a plain one-prompt generate of each model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d, weak, weaker, prompts = world
    out = generate_pairs(
        weak,
        weaker,
        str(prompts),
        tmp_path / "greedy",
        GenerationSettings(max_new_tokens=6, batch_size=4),
        limit=4,
        progress=False,
    )
    ds = load_pairs(out)
    for side, model in (("chosen", weak), ("rejected", weaker)):
        tok, m = AutoTokenizer.from_pretrained(model), AutoModelForCausalLM.from_pretrained(model)
        for row in ds:
            ids = tok.apply_chat_template(
                row["prompt"], add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            with torch.inference_mode():
                seq = m.generate(**ids, do_sample=False, max_new_tokens=6)[0, ids["input_ids"].shape[1] :].tolist()
            if tok.eos_token_id in seq:
                seq = seq[: seq.index(tok.eos_token_id)]
            assert row[side][0]["content"] == tok.decode(seq, skip_special_tokens=True)


def test_device_cpu_and_auto_agree_here(world, tmp_path, capsys):
    """No GPU here: --device auto resolves to the CPU and gives exactly the pairs of --device cpu."""
    from deltahub.cli import main

    d, weak, weaker, prompts = world
    outs = {}
    for device in ("cpu", "auto"):
        outs[device] = tmp_path / device
        main(
            [
                "generate",
                "--chosen",
                weak,
                "--rejected",
                weaker,
                "--prompts",
                str(prompts),
                "--out",
                str(outs[device]),
                "--limit",
                "3",
                "--max-new-tokens",
                "4",
                "--device",
                device,
                "--no-progress",
            ]
        )
    assert load_pairs(outs["cpu"]).to_list() == load_pairs(outs["auto"]).to_list()
    prov = json.loads((outs["cpu"] / "deltahub.json").read_text())
    assert prov["generation"]["device"] == "cpu" and prov["chosen"]["device"] == "cpu"
    with pytest.raises(SystemExit):
        main(
            [
                "generate",
                "--chosen",
                weak,
                "--rejected",
                weaker,
                "--prompts",
                str(prompts),
                "--out",
                str(tmp_path / "gpu"),
                "--device",
                "cuda",
            ]
        )
    assert "device is 'cuda' but no GPU is visible here" in capsys.readouterr().err
    assert not list(tmp_path.glob("*gpu*"))


@pytest.mark.parametrize(
    "device, dtype, gpus, bf16, expected",
    [
        ("auto", "auto", 0, False, ("cpu", None, "auto")),
        ("cpu", "auto", 2, True, ("cpu", None, "auto")),
        ("auto", "auto", 1, True, ("cuda", "cuda:0", "bfloat16")),
        ("cuda", "auto", 1, False, ("cuda", "cuda:0", "float16")),
        ("auto", "float32", 1, True, ("cuda", "cuda:0", "float32")),
        ("auto", "auto", 4, True, ("cuda:auto", "auto", "bfloat16")),
    ],
)
def test_placement(device, dtype, gpus, bf16, expected):
    """One GPU: the model on it in bf16 (fp16 without bf16); several: device_map='auto'; CPU: as stored."""
    from deltahub.generate.backends.transformers import placement

    p = placement(device, dtype, gpus, bf16)
    assert (p.device, p.device_map, p.dtype) == expected


def test_same_seed_same_pairs_other_seed_differs(world, sampled, tmp_path):
    d, weak, weaker, prompts = world
    again = generate_pairs(
        weak, weaker, str(prompts), tmp_path / "again", GenerationSettings(**SAMPLED), limit=4, progress=False
    )
    other = generate_pairs(
        weak,
        weaker,
        str(prompts),
        tmp_path / "other",
        GenerationSettings(**{**SAMPLED, "seed": 8}),
        limit=4,
        progress=False,
    )
    base = load_pairs(sampled).select(range(4))
    assert load_pairs(again).to_list() == base.to_list()
    assert list(load_pairs(other)["chosen"]) != list(base["chosen"])


def test_kill_and_resume_equals_uninterrupted(world, sampled, tmp_path):
    """SIGKILL a CLI run after its first shard, restart it: the pairs equal the uninterrupted run's exactly."""
    d, weak, weaker, prompts = world
    out = tmp_path / "resumed"
    work = tmp_path / ".resumed.work"
    args = [
        sys.executable,
        "-m",
        "deltahub.cli",
        "generate",
        "--chosen",
        weak,
        "--rejected",
        weaker,
        "--prompts",
        str(prompts),
        "--out",
        str(out),
        "--no-progress",
        "--temperature",
        "1.0",
        "--top-p",
        "0.9",
        "--max-new-tokens",
        "8",
        "--seed",
        "7",
        "--batch-size",
        "1",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(work.glob("chosen/shard-*.jsonl")):
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "no shard appeared"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shards = len(list(work.glob("*/shard-*.jsonl")))
    assert 1 <= shards < 2 * N_PROMPTS, "the run was killed mid-way"
    assert not out.exists(), "no partial output folder"
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    resumed, full = load_pairs(out), load_pairs(sampled)
    assert resumed.to_list() == full.to_list()
    assert not work.exists()


def test_filters_counted_in_card(world, tmp_path):
    """Greedy random models give repetitive answers: counts equal those computed from the unfiltered pairs."""
    d, weak, weaker, prompts = world
    settings = GenerationSettings(max_new_tokens=4, batch_size=5)
    raw = generate_pairs(weak, weaker, str(prompts), tmp_path / "raw", settings, progress=False)
    rows = load_pairs(raw).to_list()
    filt = generate_pairs(
        weak,
        weaker,
        str(prompts),
        tmp_path / "filtered",
        settings,
        FilterSettings(identical=True, empty=True, truncated=True),
        progress=False,
    )
    same = [r["chosen"][0]["content"].strip() == r["rejected"][0]["content"].strip() for r in rows]
    empty = [not s and not r["chosen"][0]["content"].strip() for s, r in zip(same, rows, strict=True)]
    truncated = [
        not s and not e and r["chosen_finish_reason"] == "length" for s, e, r in zip(same, empty, rows, strict=True)
    ]
    prov = json.loads((filt / "deltahub.json").read_text())
    assert prov["filters"] == {"identical": sum(same), "empty_chosen": sum(empty), "truncated_chosen": sum(truncated)}
    assert prov["pairs"] == len(load_pairs(filt)) == N_PROMPTS - sum(same) - sum(empty) - sum(truncated)
    assert sum(same) + sum(truncated) > 0


def _row(c, r, finish="stop"):
    return {"chosen_text": c, "rejected_text": r, "chosen_finish_reason": finish}


def test_apply_filters_each_counted_once():
    rows = [
        _row("a #### 4", "a #### 4"),
        _row("", "x"),
        _row("long #### 3", "y", "length"),
        _row("no answer", "z"),
        _row("x" * 50 + " #### 1", "y"),
        _row("fine #### 2", "bad format"),
    ]
    kept, counts = apply_filters(
        rows, FilterSettings(identical=True, empty=True, truncated=True, format="gsm8k", max_length_ratio=20)
    )
    assert counts == {"identical": 1, "empty_chosen": 1, "truncated_chosen": 1, "format:gsm8k": 1, "length_ratio": 1}
    assert kept == [rows[5]], "the format check looks at the chosen side only"
    kept, counts = apply_filters(rows, FilterSettings())
    assert kept == rows and counts == {}
    kept, counts = apply_filters(rows, FilterSettings(format=r"^fine"))
    assert counts == {"format:^fine": 5}
    with pytest.raises(InputError):
        FilterSettings(format="([")
    with pytest.raises(InputError):
        FilterSettings(max_length_ratio=0.5)


def test_prompt_loading_columns_messages_system(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        json.dumps(
            {
                "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "drop"}],
                "text": "t",
                "id": 1,
            }
        )
        + "\n"
    )
    p = load_prompts(str(f), system_prompt="be brief")
    assert p.conversations == [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]]
    assert p.extras == [{"text": "t", "id": 1}] and p.source["column"] == "messages"
    p = load_prompts(str(f), prompt_column="text")
    assert p.conversations == [[{"role": "user", "content": "t"}]]
    with pytest.raises(InputError, match="unknown column 'nope'"):
        load_prompts(str(f), prompt_column="nope")
    with pytest.raises(InputError, match="not a list of"):
        load_prompts(str(f), messages_column="text")
    import datasets

    pq = tmp_path / "p.parquet"
    datasets.Dataset.from_list([{"question": "q1", "answer": "1"}]).to_parquet(str(pq))
    p = load_prompts(str(pq))
    assert p.conversations == [[{"role": "user", "content": "q1"}]] and p.extras == [{"answer": "1"}]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match="not valid JSONL"):
        load_prompts(str(bad))
    with pytest.raises(InputError, match="not found"):
        load_prompts(str(tmp_path / "missing.jsonl"))


def test_enable_thinking_reaches_the_chat_template(world):
    """With TRL's Qwen3 template, enable_thinking=False adds the empty think block to the prompt."""
    from pathlib import Path as P

    import trl

    from deltahub.generate.backends.transformers import TransformersBackend

    d, weak, _, _ = world
    model = d / "qwen3-template"
    if not model.exists():
        import shutil

        shutil.copytree(weak, model)
        (model / "chat_template.jinja").write_text(
            (P(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text()
        )
    conv = [[{"role": "user", "content": "hi"}]]
    from transformers import AutoTokenizer

    think = len(AutoTokenizer.from_pretrained(str(model))("<think>\n\n</think>\n\n")["input_ids"])
    counts = {}
    for flag in (None, False):
        b = TransformersBackend(GenerationSettings(max_new_tokens=1, enable_thinking=flag))
        b.load(str(model))
        counts[flag] = b.generate(conv, 0)[0].prompt_tokens
        b.close()
    assert counts[False] - counts[None] == think > 0


def test_bad_input_errors(world, tmp_path):
    from deltahub.tiny import build_tiny_model

    d, weak, weaker, prompts = world
    s = GenerationSettings(max_new_tokens=2)
    with pytest.raises(InputError, match="unknown column"):
        generate_pairs(weak, weaker, str(prompts), tmp_path / "o", s, prompt_column="prompt_text", progress=False)
    notemplate = build_tiny_model(tmp_path / "nt", hidden_size=64, num_layers=1)
    (notemplate / "chat_template.jinja").unlink()
    with pytest.raises(InputError, match="no chat template"):
        generate_pairs(str(notemplate), weaker, str(prompts), tmp_path / "o", s, progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    with pytest.raises(InputError, match="cannot load"):
        generate_pairs(str(broken), weaker, str(prompts), tmp_path / "o", s, progress=False)
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"question": "x" * 300}) + "\n")
    with pytest.raises(InputError, match="exceeds .* context of 256"):
        generate_pairs(weak, weaker, str(long), tmp_path / "o", s, progress=False)
    assert not (tmp_path / "o").exists()
    (tmp_path / "exists").mkdir()
    with pytest.raises(InputError, match="already exists"):
        generate_pairs(weak, weaker, str(prompts), tmp_path / "exists", s, progress=False)


def test_changed_settings_do_not_mix_with_unfinished_run(world, tmp_path):
    from deltahub.generate.shards import WorkDir

    w = WorkDir(tmp_path / "run", {"settings": "a"})
    assert WorkDir(tmp_path / "run", {"settings": "c"}), "nothing generated yet: a new run simply replaces it"
    w = WorkDir(tmp_path / "run", {"settings": "a"})
    w.write_shard("chosen", 0, [{"index": 0}])
    with pytest.raises(InputError, match="different settings"):
        WorkDir(tmp_path / "run", {"settings": "b"})
    w = WorkDir(tmp_path / "run", {"settings": "b"}, restart=True)
    assert json.loads((w.path / "run.json").read_text()) == {"settings": "b"}


def test_cli_error_is_one_line(world, tmp_path):
    d, weak, weaker, prompts = world
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "deltahub.cli",
            "generate",
            "--chosen",
            weak,
            "--rejected",
            weaker,
            "--prompts",
            str(prompts),
            "--out",
            str(tmp_path / "o"),
            "--prompt-column",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "unknown column 'nope'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "response,reference,ok",
    [
        ("so the answer is\n#### 42", "Natalia sold 48/2 = 24 clips.\n#### 42", True),
        ("The total is 1,234 dollars", "#### 1234", True),
        ("#### 41", "#### 42", False),
        ("abc", "abc", True),
        ("abcd", "abc", False),
        ("3.50", "#### 3.5", True),
    ],
)
def test_exact_match(response, reference, ok):
    assert exact_match(response, reference) is ok


def test_agreement_counts_and_is_recorded(tmp_path):
    msgs = [{"role": "user", "content": "q"}]
    answers = [("4", "4", "5"), ("7", "1", "7"), ("2", "2", "2"), ("9", "#### 9", "8"), ("3", "0", "1")]
    rows = [
        {
            "prompt": msgs,
            "chosen": [{"role": "assistant", "content": c}],
            "rejected": [{"role": "assistant", "content": r}],
            "answer": a,
        }
        for a, c, r in answers
    ]
    folder = tmp_path / "pairs"
    prov = {
        "schema_version": 1,
        "kind": "dataset",
        "chosen": {"model": "w"},
        "rejected": {"model": "ww"},
        "prompts": {"dataset": "d"},
        "pairs": 5,
        "filters": {},
        "metrics": {},
    }
    write_pairs_folder(folder, rows, prov)
    res = agreement(str(folder))
    assert (res["chosen_better"], res["rejected_better"], res["ties"]) == (2, 1, 2)
    assert res["agreement"] == pytest.approx(2 / 3) and res["chosen_score"] == pytest.approx(3 / 5)
    record_agreement(folder, res)
    assert json.loads((folder / "deltahub.json").read_text())["metrics"]["agreement"] == res
    with pytest.raises(InputError, match="no reference column 'gold'"):
        agreement(str(folder), answer_column="gold")
    r = subprocess.run(
        [sys.executable, "-m", "deltahub.cli", "agreement", str(folder), "--judge", "contains", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["chosen_better"] == 2


def test_hub_dataset_prompts_and_pairs_are_pinned(tmp_path, world, sampled):
    """Prompts (NAME:SPLIT) and pairs from dataset repos on the embedded registry, through the registry
    client: each records the commit it read, and an older revision reads the older content."""
    from deltahub import endpoint as hub
    from deltahub.server import start_server

    d, weak, weaker, prompts = world
    with start_server(tmp_path / "registry") as srv:
        hub.connect(srv.url)
        api = hub.connect().api()
        api.create_repo("alice/prompts", repo_type="dataset", exist_ok=True)
        first = api.upload_file(
            path_or_fileobj=str(prompts), path_in_repo="data/train.jsonl", repo_id="alice/prompts", repo_type="dataset"
        ).oid
        p = load_prompts("alice/prompts:train")
        assert len(p) == N_PROMPTS and p.extras[2]["answer"] == "4"
        assert p.source == {
            "dataset": "alice/prompts",
            "split": "train",
            "revision": first,
            "column": "question",
            "count": N_PROMPTS,
        }
        api.upload_file(
            path_or_fileobj=b'{"question": "only one"}\n',
            path_in_repo="data/train.jsonl",
            repo_id="alice/prompts",
            repo_type="dataset",
        )
        assert len(load_prompts("alice/prompts:train")) == 1
        assert len(load_prompts(f"alice/prompts@{first}:train")) == N_PROMPTS
        from deltahub.share.publish import publish

        commit = publish(sampled, "alice/pairs")["commit"]
        assert load_pairs("alice/pairs").to_list() == load_pairs(sampled).to_list()
        from deltahub.generate.pairs import resolve_pairs

        assert resolve_pairs("alice/pairs")[1:] == ("alice/pairs", commit)
