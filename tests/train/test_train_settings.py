"""Options from defaults, a YAML file and flags; the TRL configs built from them; where an export's splits
are found; the shipped accelerate and Critique-GRPO configs; and `rubricate --help` staying light."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT, write_jsonl

from rubricate.errors import UsageError
from rubricate.train.data import check_columns, load_splits
from rubricate.train.settings import LEARNING_RATES, read_yaml, resolve

CONFIGS = ROOT / "rubricate" / "train" / "configs"
BASE = {"data": "d", "model": "m", "output": "o"}


def test_flags_win_over_the_file_which_wins_over_defaults(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("learning-rate: 3.0e-4\nbatch_size: 16\nlora: true\nmodel: from-file\n"
                      "trl: {weight_decay: 0.1}\n")
    s = resolve("prm", {**BASE, "batch_size": 4, "lora": None}, str(config))
    assert (s.learning_rate, s.batch_size, s.lora, s.model, s.trl) == (3e-4, 4, True, "m", {"weight_decay": 0.1})
    assert s.epochs == 1.0 and s.lr == 3e-4
    assert resolve("sft", BASE).lr == LEARNING_RATES["sft"] == 2e-5
    # the file alone can name the data, model and output
    config.write_text("data: d\nmodel: m\noutput: o\n")
    assert resolve("sft", {"data": None}, str(config)).output == "o"


@pytest.mark.parametrize("text, message", [
    ("learning_rat: 1\n", "unknown option 'learning_rat'"),
    ("- a\n- b\n", "expected a mapping"),
    ("trl: 3\n", "`trl` must be a mapping"),
    ("a: [\n", "not valid YAML"),
])
def test_bad_config_files_are_usage_errors(tmp_path, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_yaml(str(config))
    with pytest.raises(UsageError, match="no such file"):
        read_yaml(str(tmp_path / "missing.yaml"))


def test_contradictions_are_caught_before_any_training():
    with pytest.raises(UsageError, match="missing --model"):
        resolve("prm", {"data": "d", "output": "o"})
    with pytest.raises(UsageError, match="not a multiple of --num-generations"):
        resolve("srl", {**BASE, "batch_size": 6, "num_generations": 4})
    with pytest.raises(UsageError, match="at least 2"):
        resolve("critique-grpo", {**BASE, "num_generations": 1, "batch_size": 1})
    with pytest.raises(UsageError, match="needs --critic-model"):
        resolve("critique-grpo", {**BASE, "critique": "cot"})
    assert resolve("critique-grpo", {**BASE, "critique": "cot", "critic_model": "openai/x"}).critic_model == "openai/x"


def test_cli_usage_errors_exit_2_without_loading_a_model(rubricate, export):
    result = rubricate("train", "srl", "data", "--model", "m", "-o", "o", "--batch-size", "6", "-n", "4")
    assert result.code == 2 and "not a multiple" in result.stderr
    pytest.importorskip("trl")
    result = rubricate("train", "prm", export("srl", 6), "--model", "no-such-model", "-o", "o")
    assert result.code == 2
    assert "completions, labels, prompt" in result.stderr and "rubricate export --to trl-stepwise" in result.stderr


def test_trl_configs_take_settings_method_fields_and_the_pass_through(tmp_path):
    pytest.importorskip("trl")
    from trl import GRPOConfig
    from trl.experimental.prm import PRMConfig

    from rubricate.train.settings import trl_config

    s = resolve("prm", {**BASE, "output": str(tmp_path), "eval_steps": 5, "report_to": "none"})
    s.trl = {"weight_decay": 0.25}
    args = trl_config(s, PRMConfig, has_eval=True, step_separator="\n\n")
    assert (args.learning_rate, args.per_device_train_batch_size, args.eval_strategy, args.eval_steps) == \
        (1e-5, 8, "steps", 5)
    import torch

    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    assert (args.step_separator, args.weight_decay, args.bf16, args.report_to) == ("\n\n", 0.25, gpu_bf16, [])
    assert args.activation_checkpointing is True  # TRL's default when the flag is not given
    s.gradient_checkpointing = False
    assert trl_config(s, PRMConfig).activation_checkpointing is False
    assert trl_config(s, PRMConfig).eval_strategy == "no"  # no held-out split, no evaluation
    s.trl = {"no_such_field": 1}
    with pytest.raises(UsageError, match="no_such_field is not a field of GRPOConfig"):
        trl_config(s, GRPOConfig)


def test_splits_are_found_where_export_writes_them(export, tmp_path):
    pytest.importorskip("datasets")
    train, held = load_splits(export("trl-stepwise", 12, 4))  # a datasets folder with train and test
    assert (len(train), len(held)) == (8, 4)
    rows = [{"prompt": "p", "completions": ["a"], "labels": [True]}] * 3
    write_jsonl(tmp_path / "x.train.jsonl", rows)
    write_jsonl(tmp_path / "x.test.jsonl", rows[:1])
    for spec in ("x.train.jsonl", "x.jsonl"):  # export's split file names, and the name given to -o
        train, held = load_splits(str(tmp_path / spec))
        assert (len(train), len(held)) == (3, 1)
    (tmp_path / "dir").mkdir()
    write_jsonl(tmp_path / "dir" / "train.jsonl", rows)
    train, held = load_splits(str(tmp_path / "dir"), eval_data=str(tmp_path / "x.test.jsonl"))
    assert (len(train), len(held)) == (3, 1)
    with pytest.raises(UsageError, match="no such file"):
        load_splits(str(tmp_path / "nothing.jsonl"))
    with pytest.raises(UsageError, match="reads the columns expert_action, prompt") as caught:
        check_columns("srl", train, "x")
    assert "rubricate export --to srl" in caught.value.hint
    check_columns("prm", train, "x")


def test_shipped_configs_load():
    pytest.importorskip("accelerate")
    from accelerate.commands.config.config_args import load_config_from_file

    zero3 = load_config_from_file(str(CONFIGS / "zero3.yaml"))
    assert zero3.distributed_type == "DEEPSPEED" and zero3.deepspeed_config["zero_stage"] == 3
    assert zero3.mixed_precision == "bf16"
    s = resolve("critique-grpo", dict(BASE), str(CONFIGS / "critique-grpo.yaml"))
    assert (s.lr, s.num_generations, s.entropy_coef, s.shaping, s.critique) == (1e-6, 8, 0.001, 0.1, "ground-truth")
    assert s.batch_size % s.num_generations == 0


def test_help_imports_no_training_library():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom rubricate.cli.main import app\n"
            "for args in (['--help'], ['train', '--help'], ['train', 'critique-grpo', '--help']):\n"
            "    assert CliRunner().invoke(app, args).exit_code == 0\n"
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'accelerate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
