"""What a self-conditioned model's memory owes to its estimates: one checkpoint sampled with and without them.

Generates the held-out scenes of ``moc eval memory`` twice with one checkpoint: as the samplers run it (every
step after a shot's first reads the last step's clean estimate) and with no estimate at any step (what the
model saw in the half of its training steps that read none). Prints the world metrics of both, paired on the
same scenes and noise. ``--image`` also writes the joint samples of the first three scenes: the truth, then
with estimates, then without (every third frame).

Usage: python benchmarks/estimate_ablation.py CHECKPOINT [--scenes N] [--threads N] [--image PATH]
"""

import argparse

import torch
from frame_quality import save_strips, strip, without_estimate

from moc.eval.memory import EvalModel, Setting, eval_scripts, evaluate_memory, markdown_table
from moc.generate.scene import generate_scenes, script_batch
from moc.train import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    if not model.config.self_condition:
        raise SystemExit(f"{args.checkpoint}: the model reads no estimates (model.self_condition is off)")
    models = [
        EvalModel("with estimates", model),
        EvalModel("without", without_estimate(load_model(args.checkpoint))),
    ]
    settings = [Setting("joint", 8), Setting("autoregressive", 8)]
    print(markdown_table(evaluate_memory(models, settings, scenes=args.scenes)))
    if args.image:
        scripts = eval_scripts(3, shots=8)
        rows = [strip(script_batch(scripts, model).frames)]
        rows += [strip(generate_scenes(m.model, scripts, mode="joint", seed=0).frames) for m in models]
        save_strips(rows, args.image)
        print(f"wrote {args.image}: the truth, then joint samples with estimates, then without")


if __name__ == "__main__":
    main()
