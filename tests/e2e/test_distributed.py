"""One run on several processes (``--gpus-per-run N``): torchrun launches the worker, the Trainer
trains with DDP (gloo on this CPU-only machine), each global batch split over the ranks."""

from __future__ import annotations

import pytest
import yaml
from helpers import dropout_free_minilm, fsdp_on_cpu_env, stored_runs, tiny_causal_spec, tiny_spec, tunelab


@pytest.mark.slow
def test_two_processes_give_the_metrics_of_one_and_the_run_is_recorded_once(tmp_path):
    """Full fine-tuning of a dropout-free MiniLM (so that 1 and 2 processes draw no different random
    numbers), 24 validation examples in batches of 16 (the last one partial, split over the ranks)."""
    model = dropout_free_minilm(tmp_path / "model")
    results = {}
    for processes in (1, 2):
        workdir = tmp_path / f"p{processes}"
        spec = tmp_path / f"p{processes}.yaml"
        spec.write_text(yaml.safe_dump({**tiny_spec(workdir, ["full"], max_steps=6, eval_every=3), "model": str(model)}))
        out = tunelab("compare", str(spec), "--gpus-per-run", str(processes))
        assert out.returncode == 0, out.stderr
        (run,) = stored_runs(workdir).values()  # one record, however many processes trained it
        results[processes] = run
    one, two = results[1], results[2]
    assert two.status == "done", f"{two.error}\n{(two.spec.run_dir / 'run.log').read_text()[-4000:]}"
    # the ranks trained together (on a machine without GPUs accelerate once left each to train alone)
    assert (two.environment["processes"], two.environment["parallel"]) == (2, "ddp")
    assert one.key == two.key
    assert set(one.metrics) == set(two.metrics) and "test_accuracy" in two.metrics
    for name, value in one.metrics.items():  # the same batches and steps; only float reduction order differs
        assert two.metrics[name] == pytest.approx(value, abs=1e-5), name
    assert (two.costs.steps, two.costs.train_tokens) == (one.costs.steps, one.costs.train_tokens)
    assert len(list(two.spec.run_dir.glob("artifact-*"))) == 1  # written once, by rank 0
    assert len((two.spec.run_dir / "predictions.jsonl").read_text().splitlines()) == 24


# `tunelab compare` on 2 processes, through the API. compare refuses train.fsdp where the executor trains
# on this machine and it has no GPU (accelerate would quietly train with DDP); here tests/fsdp_on_cpu makes
# the ranks shard over gloo, so the executor says its devices are not this machine's CUDA to judge by.
_COMPARE_ON_TWO = ("import sys; from tunelab.experiment import compare; from tunelab.run.launch import LocalExecutor\n"
                   "class ShardsOnCpu(LocalExecutor):\n    local = False\n"
                   "from tunelab.spec import load_spec; compare(load_spec(sys.argv[1]), executor=ShardsOnCpu(gpus_per_run=2))")


_NATIVE_ABORT = "double free or corruption"  # glibc's abort message, printed by the rank that died


@pytest.mark.slow
def test_fsdp_on_two_processes_resumes_after_a_kill_and_matches_one_process(tmp_path):
    """train.fsdp: weights, gradients and optimizer state sharded over 2 gloo processes (FSDP2).
    accelerate shards only over GPUs; tests/fsdp_on_cpu lifts that gate in the ranks, so the real
    FSDP path runs: sharded training, checkpoints, each rank's shard of the best weights gathered
    into them and taken back on resume, the whole model gathered into the artifact. The kill comes
    inside the second epoch (48 examples in batches of 8: 6 steps an epoch), so the resumed run skips
    the batches it trained of an epoch whose order is not the first's."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    from tunelab.experiment import compare
    from tunelab.predict import Classifier
    from tunelab.spec import build_spec

    model = dropout_free_minilm(tmp_path / "model")
    train = {"max_steps": 12, "eval_every": 3}
    compare(build_spec({**tiny_spec(tmp_path / "one", ["full"], **train), "model": str(model)}))
    spec = tmp_path / "fsdp.yaml"
    spec.write_text(yaml.safe_dump({**tiny_spec(tmp_path / "fsdp", ["full"], **train, fsdp=True), "model": str(model)}))
    command = [sys.executable, "-c", _COMPARE_ON_TWO, str(spec)]
    env = fsdp_on_cpu_env()
    killed = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list((tmp_path / "fsdp" / "runs").glob("*/checkpoints/checkpoint-9/best.safetensors")):
        assert killed.poll() is None and time.time() < deadline, killed.communicate()
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)  # the experiment, torchrun and both ranks, mid-training
    killed.wait()
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    (sharded,) = stored_runs(tmp_path / "fsdp").values()
    if sharded.status == "failed" and _NATIVE_ABORT in (sharded.spec.run_dir / "run.log").read_text():
        # torch's gloo collectives on CPU once freed a buffer twice while gathering the final checkpoint
        # (1 clean-clone CI run in 5): the run failed cleanly, and running the experiment again, as a
        # user would, resumes it from its last checkpoint; the exactness below still has to hold
        resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert resumed.returncode == 0, resumed.stderr

    (one,), (sharded,) = stored_runs(tmp_path / "one").values(), stored_runs(tmp_path / "fsdp").values()
    log = (sharded.spec.run_dir / "run.log").read_text()
    assert sharded.status == "done", f"{sharded.error}\n{log[-4000:]}"
    assert "tunelab: resuming from" in log and "checkpoint-9" in log.split("tunelab: resuming from", 1)[1].split("\n")[0]
    assert (sharded.environment["processes"], sharded.environment["parallel"]) == (2, "fsdp")
    assert set(one.metrics) == set(sharded.metrics)
    for name, value in one.metrics.items():
        assert sharded.metrics[name] == pytest.approx(value, abs=1e-5), name
    assert (sharded.costs.steps, sharded.costs.best_step, sharded.costs.train_tokens) == (
        one.costs.steps, one.costs.best_step, one.costs.train_tokens)
    # the artifact: the whole model at the best step, gathered from both shards (the parameters an
    # evaluation leaves gathered included), and it reloads for prediction
    weights = [load_file(Path(run.artifact) / "model.safetensors") for run in (one, sharded)]
    assert weights[0].keys() == weights[1].keys()
    for name, tensor in weights[0].items():
        assert torch.allclose(weights[1][name], tensor, atol=1e-5), name
    texts = ["a gripping, beautifully acted film", "dull and far too long"]
    assert Classifier.load(sharded.artifact).predict(texts) == Classifier.load(one.artifact).predict(texts)


@pytest.mark.slow
def test_a_decoder_sharded_on_two_processes_scores_and_generates_as_on_one(tmp_path):
    """Causal-LM full fine-tuning of SmolLM2 (no dropout) with FSDP on 2 gloo processes: its loss,
    which counts tokens over both ranks, and generation, which runs on both (each forward gathers
    the shards), give what one process gives."""
    import subprocess
    import sys

    from tunelab.experiment import compare
    from tunelab.spec import build_spec

    compare(build_spec(tiny_causal_spec(tmp_path / "one", ["full"])))
    spec = tmp_path / "fsdp.yaml"
    spec.write_text(yaml.safe_dump(tiny_causal_spec(tmp_path / "fsdp", ["full"], fsdp=True)))
    env = fsdp_on_cpu_env()
    sharded = subprocess.run([sys.executable, "-c", _COMPARE_ON_TWO, str(spec)], env=env, capture_output=True,
                             text=True, timeout=600)
    assert sharded.returncode == 0, sharded.stderr
    (one,), (two,) = ([run for run in stored_runs(tmp_path / where).values() if run.method == "full"]
                      for where in ("one", "fsdp"))
    assert two.status == "done", f"{two.error}\n{(two.spec.run_dir / 'run.log').read_text()[-4000:]}"
    assert two.environment["parallel"] == "fsdp"
    base = [run for run in stored_runs(tmp_path / "fsdp").values() if run.method == "base-model"]
    assert [run.status for run in base] == ["done"]  # the untuned row, evaluated on both processes too
    assert {"validation_loss", "test_rouge_l", "forgetting"} <= set(one.metrics) == set(two.metrics)
    for name, value in one.metrics.items():
        assert two.metrics[name] == pytest.approx(value, abs=1e-4), name


_TAIL = """
import torch, torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import LlamaConfig, LlamaForCausalLM
from tunelab.run.distributed import local_tensor, resharded
dist.init_process_group("gloo")
model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))
for layer in model.model.layers:
    fully_shard(layer)
# as accelerate shards a decoder's tail: kept gathered after a forward
fully_shard([model.model.norm, model.model.embed_tokens, model.lm_head], reshard_after_forward=False)
fully_shard(model)
with torch.no_grad():
    model(input_ids=torch.tensor([[1, 2, 3]]))  # an evaluation
    print("gathered after a forward:", type(model.model.norm.weight).__name__)
    for name, param in resharded(model).named_parameters():
        local_tensor(param).fill_(0.5)  # as the best weights are put back
print("written:", all(float(local_tensor(v).float().mean()) == 0.5 for v in model.state_dict().values()))
"""


def test_the_best_weights_are_written_into_the_shards_fsdp_keeps_not_into_a_gathered_copy(tmp_path):
    """After an evaluation FSDP2 leaves some units gathered (accelerate keeps a decoder's norm and
    embeddings so): weights written into those whole tensors would be dropped at the next reshard,
    and the artifact would hold the last step's instead of the best's. ``resharded`` first."""
    import subprocess
    import sys

    script = tmp_path / "tail.py"
    script.write_text(_TAIL)
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1",
                          str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "gathered after a forward: Parameter" in out.stdout  # the case this guards against arises
    assert "written: True" in out.stdout, out.stdout


@pytest.mark.parametrize("space, expected", [
    ({}, "error: the sweep's batch size for head (train.batch_size halved or doubled) 1 does not split over 2 GPUs "
         "per run (use a multiple of 2: each batch is split evenly over the run's processes)"),
    ({"train": {"batch_size": [2, 3]}}, "error: sweep.space.train.batch_size (head) 3 does not split over 2 GPUs per "
                                        "run (use a multiple of 2: each batch is split evenly over the run's processes)"),
    ({"train": {"batch_size": {"low": 2, "high": 8}}}, "error: sweep.space.train.batch_size (head): a range samples "
                                                       "sizes that may not split over 2 GPUs per run (give a list of "
                                                       "multiples of 2)"),
])
def test_a_sweep_whose_batch_sizes_cannot_split_over_its_gpus_gets_one_line_and_exit_2(tmp_path, space, expected):
    spec = tmp_path / "experiment.yaml"
    spec.write_text(yaml.safe_dump({**tiny_spec(tmp_path / "work", ["head"], batch_size=2),
                                    "sweep": {"trials": 2, "space": space}}))
    out = tunelab("sweep", str(spec), "--gpus-per-run", "2")
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [expected], out.stderr
    assert not (tmp_path / "work" / "tunelab.db").exists()


@pytest.mark.parametrize("methods, flags, expected", [
    (["full", "lora"], [], "error: train.fsdp (full) shards the model over each run's GPUs (run with "
                           "--gpus-per-run 2 or more)"),
    (["lora", "head"], ["--gpus-per-run", "2"], "error: train.fsdp: none of this experiment's methods trains the "
                                                "whole model (full, llrd), so nothing would be sharded (drop "
                                                "train.fsdp, or add one of those methods)"),
    (["full", "lora"], ["--gpus-per-run", "2"], "error: train.fsdp (full): this machine has no GPU, and FSDP "
                                                "shards over GPUs (drop train.fsdp: the run then trains with DDP on "
                                                "its --gpus-per-run processes)"),
])
def test_fsdp_that_cannot_shard_gets_one_line_and_exit_2(tmp_path, methods, flags, expected):
    spec = tmp_path / "experiment.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "work", methods, fsdp=True)))
    out = tunelab("compare", str(spec), *flags)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [expected], out.stderr
    assert not (tmp_path / "work" / "tunelab.db").exists()


def test_fsdp_shards_only_the_methods_that_train_the_whole_model_and_keys_stay_without_it(tmp_path):
    from tunelab.spec import build_spec
    from tunelab.spec.run import RunSpec

    plain = build_spec(tiny_spec(tmp_path, ["full", "llrd", "lora"]))
    sharded = build_spec(tiny_spec(tmp_path, ["full", "llrd", "lora"], fsdp=True))
    assert {m.name: sharded.train_for(m).fsdp for m in sharded.methods} == {"full": True, "llrd": True, "lora": False}
    assert not any(plain.train_for(m).fsdp for m in plain.methods)

    def key(spec, method):
        return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                       data_fingerprint="g", labels=["0", "1"], method=method.name, options=method.options,
                       train=spec.train_for(method), seed=0, workdir=str(tmp_path)).key

    keys = {m.name: (key(plain, m), key(sharded, m)) for m in plain.methods}
    assert keys["lora"][0] == keys["lora"][1] and keys["full"][0] != keys["full"][1]  # a sharded run is its own


@pytest.mark.parametrize("flags, expected", [
    (["--gpus-per-run", "1.5"], "error: --gpus-per-run 1.5: a run on several GPUs takes a whole number of them "
                                "(use 2, 4, 8...)"),
    (["--gpus-per-run", "3"], "error: train.batch_size (head) 8 does not split over 3 GPUs per run (use a multiple "
                              "of 3: each batch is split evenly over the run's processes)"),
])
def test_a_run_that_cannot_split_over_its_gpus_gets_one_line_and_exit_2(tmp_path, flags, expected):
    spec = tmp_path / "experiment.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "work", ["head"])))
    out = tunelab("compare", str(spec), *flags)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [expected], out.stderr
    assert not (tmp_path / "work" / "tunelab.db").exists()


@pytest.mark.slow
def test_a_sweep_trial_on_two_processes_is_reported_once_and_pruned_on_every_rank(tmp_path):
    """Rank 0 alone reports to the study; its pruner's word stops both ranks at the same step."""
    optuna = pytest.importorskip("optuna")
    from tunelab.run.launch import LocalExecutor
    from tunelab.spec import build_spec
    from tunelab.sweeps import default_storage, study_names, sweep

    workdir = tmp_path / "work"
    raw = tiny_spec(workdir, ["head"], early_stopping_patience=None)
    spec = build_spec({**raw, "sweep": {"trials": 2, "pruner": {"name": "median", "startup_trials": 1},
                                        "space": {"train": {"batch_size": 8}}}})
    storage, names = default_storage(str(workdir)), study_names(spec)
    seeded = optuna.create_study(storage=storage, study_name=names["head"], direction="maximize")
    seeded.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={2: 1.0, 4: 1.0}))  # unbeatable

    sweep(spec, resume=True, executor=LocalExecutor(gpus_per_run=2))

    trial = optuna.load_study(storage=storage, study_name=names["head"]).trials[1]
    assert trial.state == optuna.trial.TrialState.PRUNED and list(trial.intermediate_values) == [2]
    run = stored_runs(workdir)[trial.user_attrs["run_key"]]
    assert run.status == "pruned" and run.costs.steps == 2  # of 4: both ranks stopped there (else a hang)
    assert run.environment["processes"] == 2


def _rank_one_under(parent: int) -> int | None:
    """The pid of rank 1 of a run whose executor is ``parent`` (its environment names both)."""
    from pathlib import Path

    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0") if entry.name.isdigit() else []
        except OSError:
            continue
        if b"RANK=1" in environ and f"TUNELAB_PARENT_PID={parent}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_a_rank_that_dies_fails_the_run_cleanly_and_the_experiment_goes_on(tmp_path):
    """Rank 1 killed mid-training (as the kernel's OOM killer would): torchrun stops rank 0, the run
    is recorded as failed with its log, nothing hangs, and the next run trains."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = tmp_path / "experiment.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "work", ["full", "head"], max_steps=200, eval_every=100)))
    experiment = subprocess.Popen([sys.executable, "-m", "tunelab", "compare", str(spec), "--gpus-per-run", "2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    # into training: the ranks have joined (on a loaded machine that can take longer than training does
    # here), and rank 0's Trainer has begun, which opens its TensorBoard file
    while (rank_one := _rank_one_under(experiment.pid)) is None or not list(
            (tmp_path / "work" / "runs").glob("full-*/tensorboard/events.*")):
        assert experiment.poll() is None and time.time() < deadline, experiment.communicate()
        time.sleep(0.2)
    os.kill(rank_one, signal.SIGKILL)
    out, err = experiment.communicate(timeout=600)
    runs = {run.spec.method: run for run in stored_runs(tmp_path / "work").values()}
    assert runs["full"].status == "failed" and "before reporting" in runs["full"].error, runs["full"].error
    assert runs["head"].status == "done"  # the experiment went on
    assert not list(runs["full"].spec.run_dir.glob("artifact-*"))
