"""Do a model's features say which shape a sprite is? A linear probe on the tokens that show a character.

For each noise level, training scenes (train split) and held-out scenes (eval split) are noised to that level
in every shot, and the video tokens' final features (what the pixel decoder reads) are collected with the
hidden shape of the character each token shows (:func:`moc.world.data.token_shapes`). A logistic regression
fitted on the training tokens is scored on the held-out ones; chance is about 1/6. It separates two reasons
a model may draw discs for diamonds: its features do not say which shape the sprite is, or they say it and
the pixels are not drawn from it.

Usage: python benchmarks/shape_probe.py CHECKPOINT [CHECKPOINT ...] [--levels 0.1,0.3,0.5,0.7]
    [--train-batches N] [--eval-batches N] [--threads N] [--tell-looks] [--intro-only] [--image PATH]
    (the image: three held-out scenes, every third frame; the truth, then for each checkpoint its one-step
    clean prediction at each level (seeded noise): what the model draws where its features name the
    shape)
"""

import argparse

import torch
import torch.nn.functional as F
from frame_quality import predict_clean, save_strips, strip

from moc.eval.memory import eval_scripts
from moc.generate.scene import script_batch
from moc.train import load_model
from moc.world.data import DataConfig, WorldStream, first_shots, token_characters, token_shapes

PROBE_SEED = 5


def intro_tokens(batch, patch_size: int) -> torch.Tensor:
    """``(B, N)`` bool in the order of :func:`token_shapes`: the token shows a character
    (:func:`token_characters`) in the shot that introduces it, where a told model is told its look."""
    characters = token_characters(batch, patch_size)
    token_shot = batch.frame_shot.repeat_interleave(characters.shape[1] // len(batch.frame_shot))
    out = torch.zeros(characters.shape, dtype=torch.bool)
    for i, script in enumerate(batch.scripts):
        for cid, shot in first_shots(script).items():
            out[i] |= (characters[i] == cid) & (token_shot == shot)
    return out


def collect(
    model,
    config: DataConfig,
    split: str,
    batches: int,
    t: float,
    tell: bool = False,
    intro_only: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features (N, width), shapes (N,))`` of the tokens that show a character, at noise level ``t``.
    A model with ``look_codes`` is told the looks only if ``tell``; ``intro_only`` keeps only the tokens of
    the shots that introduce their character (:func:`intro_tokens`)."""
    stream = WorldStream(config, seed=PROBE_SEED, split=split)
    generator = torch.Generator().manual_seed(1)
    xs, ys = [], []
    for index in range(batches):
        batch = stream.batch(index)
        x_t = (1 - t) * batch.frames + t * torch.randn(batch.frames.shape, generator=generator)
        level = torch.full((len(batch.frames), batch.num_shots), t)
        with torch.no_grad():
            ids = batch.ids.told(tell)
            _, features = model(x_t, level, batch.text, batch.layout, ids=ids, return_features=True)
        shapes = token_shapes(batch, model.config.patch_size)
        shows = shapes >= 0
        if intro_only:
            shows &= intro_tokens(batch, model.config.patch_size)
        xs.append(features[shows])
        ys.append(shapes[shows])
    return torch.cat(xs), torch.cat(ys)


def probe_accuracy(
    train: tuple[torch.Tensor, torch.Tensor], held_out: tuple[torch.Tensor, torch.Tensor]
) -> float:
    """Held-out accuracy of a logistic regression on standardised features (400 full-batch Adam steps)."""
    (x, y), (x_test, y_test) = train, held_out
    mean, std = x.mean(0), x.std(0) + 1e-5
    x, x_test = (x - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], int(max(y.max(), y_test.max())) + 1)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(400):
        loss = F.cross_entropy(linear(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float((linear(x_test).argmax(-1) == y_test).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--levels", default="0.1,0.3,0.5,0.7")
    parser.add_argument("--train-batches", type=int, default=30)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--image", default=None)
    parser.add_argument(
        "--tell-looks", action="store_true", help="tell models with model.look_codes the truth's looks"
    )
    parser.add_argument(
        "--intro-only",
        action="store_true",
        help="probe only the tokens of the shots that introduce their character (where looks are told)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    levels = [float(v) for v in args.levels.split(",")]
    print(f"| model | {' | '.join(f'probe t={t}' for t in levels)} |\n|---" + "|---" * len(levels) + "|")
    scripts, rows = eval_scripts(3, shots=8), []
    for path in args.checkpoints:
        model = load_model(path).eval()
        if args.image:
            batch = script_batch(scripts, model)
            noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
            rows += [strip(batch.frames)] if not rows else []
            rows += [strip(predict_clean(model, batch, t, noise)) for t in levels]
        config = DataConfig(batch_size=8, patch_size=model.config.patch_size)
        cells, told = [], (args.tell_looks, args.intro_only)
        for t in levels:
            train = collect(model, config, "train", args.train_batches, t, *told)
            held_out = collect(model, config, "eval", args.eval_batches, t, *told)
            cells.append(f"{probe_accuracy(train, held_out):.2f}")
        print(f"| {path} | {' | '.join(cells)} |", flush=True)
    if args.image:
        save_strips(rows, args.image)
        print(f"wrote {args.image}: the truth, then each checkpoint's one-step predictions at t = {levels}")


if __name__ == "__main__":
    main()
