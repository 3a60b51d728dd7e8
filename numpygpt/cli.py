"""The `numpygpt` command (also `python -m numpygpt`).

    numpygpt generate "Hello, I am" --max-new-tokens 6 --seed 123
    numpygpt generate --weights DIR "Alan Turing theorized" --temperature 0.8 --top-k 40
    numpygpt info --config gpt2-small
    numpygpt tour [SECTION]
    numpygpt train [--text FILE]
    numpygpt reference out.safetensors --config gpt2-small --seed 0 --prompt "Hello, I am"
    numpygpt compare theirs.safetensors ours.safetensors    (or one bundle against a live run)
    numpygpt precision --config gpt2-small
    numpygpt llmc write gpt2_124M.bin --weights DIR --debug-state gpt2_124M_debug_state.bin --batch 4
    numpygpt graph --example gpt --out graph.svg
    numpygpt gradflow [--out DIR]
    numpygpt attention --weights DIR "The cat sat on the mat"

Errors, the same for every command. Anything that goes wrong (a bad option,
a missing file, a value the library refuses) prints one line on stderr,

    numpygpt generate: error: argument --max-new-tokens: must be a non-negative integer, got '-1'

and exits with status 2 (a closed pipe on stdout, as in `numpygpt tour |
head`, ends the command quietly with status 141); `--debug` (before or after the command's name) adds
the traceback, and NumPy's warnings, which are otherwise silenced (the one
line says what went wrong). Ctrl-C prints `numpygpt <command>: interrupted`
and exits 130; SIGTERM prints `numpygpt <command>: terminated (SIGTERM)` and
exits 143 (numpygpt._signals). `numpygpt train` writes its checkpoint on both
before exiting, and says once where the state is kept.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

import numpy as np

from . import _signals, reference
from .checkpoint import load_model
from .compare import compare
from .files import read_json
from .generate import check_sampling, generate, generate_stream
from .model import GPTModel, count_parameters, get_config, validate_config
from .precision import format_table, measure
from .random import manual_seed
from .recipe import TRAIN_CONFIGS, run_training
from .tokenizer import get_encoding
from .tour import SECTIONS, show_generate
from .tour import run as run_tour


def _cmd_generate(args: argparse.Namespace) -> int:
    tokenizer = get_encoding("gpt2")
    encoded = tokenizer.encode(args.prompt, allowed_special={"<|endoftext|>"})
    if not encoded:
        raise ValueError("the prompt encodes to no tokens; give some text")
    check_sampling(args.temperature, args.top_k, args.top_p)  # before anything is printed
    if args.weights or args.checkpoint:
        return _generate_trained(args, tokenizer, encoded)
    cfg = get_config(args.config)
    _note_cropped(len(encoded), cfg["context_length"])
    _status(f"building an untrained {args.config} ({count_parameters(cfg)['total']:,} parameters)...")

    # the seed's demo: an untrained GPT, seeded, continuing the prompt
    def run(model: GPTModel, ids: np.ndarray, max_new_tokens: int, context_size: int) -> np.ndarray:
        return generate(model, ids, max_new_tokens, context_size, temperature=args.temperature,
                        top_k=args.top_k, top_p=args.top_p, use_cache=not args.no_cache, seed=args.seed)

    max_new_tokens = 6 if args.max_new_tokens is None else args.max_new_tokens  # 0 is allowed
    show_generate(args.prompt, max_new_tokens, args.seed, cfg, run)
    return 0


def _status(message: str) -> None:
    """A line on stderr about something slow, so stdout stays the command's output."""
    print(message, file=sys.stderr, flush=True)


def _note_cropped(n_tokens: int, context_length: int) -> None:
    """Say on stderr that a prompt longer than the context loses its first tokens (generate keeps the last ones)."""
    if n_tokens > context_length:
        _status(f"numpygpt generate: note: the prompt has {n_tokens} tokens, more than the model's context of "
                f"{context_length}; its first {n_tokens - context_length} are dropped")


def _generate_trained(args: argparse.Namespace, tokenizer, encoded: list[int]) -> int:
    """Stream a continuation from real weights (a Hugging Face directory) or a training checkpoint."""
    model = load_model(args.weights, args.checkpoint, restore_rng=True,
                       follow_symlinks=args.follow_symlinks).eval()
    ctx = model.cfg["context_length"]
    _note_cropped(len(encoded), ctx)
    eos = tokenizer.eot_token if args.stop_at_eos else None
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # tokens may split a character
    sys.stdout.write(args.prompt)
    sys.stdout.flush()
    for idx_next in generate_stream(model, np.array(encoded)[None, :],
                                    50 if args.max_new_tokens is None else args.max_new_tokens, ctx,
                                    temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                    eos_id=eos, use_cache=not args.no_cache, seed=args.seed):
        if eos is not None and idx_next[0] == eos:
            break
        sys.stdout.write(decoder.decode(tokenizer.decode_single_token_bytes(int(idx_next[0]))))
        sys.stdout.flush()
    sys.stdout.write(decoder.decode(b"", final=True) + "\n")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    cfg = get_config(args.config)
    counts = count_parameters(cfg)
    print(f"{args.config}: emb_dim {cfg['emb_dim']}, n_layers {cfg['n_layers']}, n_heads {cfg['n_heads']}, "
          f"context_length {cfg['context_length']}, vocab_size {cfg['vocab_size']}, qkv_bias {cfg['qkv_bias']}")
    print()
    print(f"{'module':<40}{'parameters':>16}")
    for name, n in counts["rows"]:
        print(f"{name:<40}{n:>16,}")
    print()
    print(f"{'total':<40}{counts['total']:>16,}")
    print(f"{'total with out_head tied to tok_emb':<40}{counts['total_tied']:>16,}")
    print(f"{'memory in float32':<40}{counts['size_mb_float32']:>13.2f} MB")
    return 0


def _cmd_tour(args: argparse.Namespace) -> int:
    run_tour(args.section, out_dir=args.out)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for key in (
        "epochs", "batch_size", "context_length", "stride", "lr", "weight_decay", "max_grad_norm",
        "warmup_steps", "eval_freq", "eval_iter", "seed", "start_context")}
    history = run_training(text_path=args.text, preset=args.config, out_dir=args.out, resume=args.resume,
                           progress=not args.no_progress, checkpoint_every=args.checkpoint_every,
                           max_steps=args.max_steps, overwrite=args.overwrite, **overrides)
    if not history.interrupted:
        return 0
    # stopped by Ctrl-C or SIGTERM, the checkpoint written and reported by train_model
    return _signals.EXIT_TERMINATED if history.terminated else _signals.EXIT_INTERRUPTED


# ----------------------------------------------------------------------------- cross-checking


def _model(args: argparse.Namespace) -> GPTModel:
    """The model a cross-checking command works on: real weights, a checkpoint, or a seeded config."""
    if args.weights or args.checkpoint:
        model = load_model(args.weights, args.checkpoint, restore_rng=True, follow_symlinks=args.follow_symlinks)
    else:
        cfg = validate_config(read_json(args.config, "config")) if args.config.endswith(".json") \
            else get_config(args.config)
        _status(f"building {args.config} ({count_parameters(cfg)['total']:,} parameters)...")
        manual_seed(args.seed)
        model = GPTModel(cfg)
    model = model.double() if args.dtype == "float64" else model.float()
    return model.eval()


def _ids(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    """(inputs, targets) of shape (1, T): the prompt's tokens and the same shifted by one."""
    tokens = ([int(t) for t in args.ids.split(",")] if args.ids
              else get_encoding("gpt2").encode(args.prompt, allowed_special={"<|endoftext|>"}))
    if len(tokens) < 2:
        raise ValueError("give at least two tokens (the inputs and, shifted by one, the targets)")
    ids = np.array(tokens, dtype=np.int64)[None, :]
    return ids[:, :-1], (None if args.no_backward else ids[:, 1:])


def _recording(args: argparse.Namespace, model: GPTModel, ids: np.ndarray, targets: np.ndarray | None) -> dict:
    rec = reference.record(model, ids, targets, names=args.names)
    rec["inputs"] = ids
    if targets is not None:
        rec["targets"] = targets
    if args.adamw_steps:
        from .optim import AdamW
        from .train import calc_loss_batch
        optimizer, losses = AdamW(model.parameters(), lr=args.lr, weight_decay=0.1), []
        model.zero_grad()
        for _ in range(args.adamw_steps):
            loss = calc_loss_batch(ids, targets, model)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        rec["adamw.losses"] = np.array(losses, dtype=np.float64)
    return rec


def _cmd_reference(args: argparse.Namespace) -> int:
    model = _model(args)
    ids, targets = _ids(args)
    rec = _recording(args, model, ids, targets)
    reference.save(rec, args.out, config=model.cfg, names=args.names)
    print(f"wrote {len(rec)} tensors to {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    theirs = reference.load(args.bundle)
    meta = theirs.metadata
    if args.other:
        ours = reference.load(args.other)
        model = None
    else:  # a live numpygpt run on the bundle's own inputs
        if "inputs" not in theirs:
            raise ValueError(f"{args.bundle} holds no 'inputs' (token ids); compare it with a second bundle")
        model = _model(args)
        ids, targets = theirs["inputs"], theirs.get("targets")
        ours = reference.record(model, ids, targets, names=meta.get("names", "numpygpt"))
    result = compare({k: v for k, v in ours.items() if v.dtype.kind == "f"},
                     {k: v for k, v in theirs.items() if v.dtype.kind == "f"}, args.rtol, args.atol)
    if model is not None and result.first is not None and meta.get("names", "numpygpt") == "numpygpt":
        from .bugs import diagnose
        fresh = _model(args)
        matches = diagnose(fresh, theirs["inputs"], theirs.get("targets"), theirs, rtol=args.rtol, atol=args.atol)
        result.looks_like = [b.description for b in matches]
    print(result.report(all_rows=args.all))
    return 0 if result.ok else 1


def _cmd_precision(args: argparse.Namespace) -> int:
    cfg = read_json(args.config, "config") if args.config.endswith(".json") else args.config
    print(format_table(measure(cfg, seed=args.seed, batch=args.batch, tokens=args.tokens)))
    return 0


def _cmd_llmc(args: argparse.Namespace) -> int:
    from . import llmc
    if args.action == "write":
        model = _model(args)
        llmc.write_model(model, args.file, dtype=args.llmc_dtype)
        print(f"wrote {args.file}: {llmc.read_model_header(args.file)}")
        if args.debug_state:
            if args.batch:
                rng = np.random.default_rng(args.seed)
                ids = rng.integers(0, model.cfg["vocab_size"], (args.batch, args.tokens + 1))
                idx, targets = ids[:, :-1], ids[:, 1:]
            else:
                args.no_backward = False
                idx, targets = _ids(args)
            state = llmc.write_debug_state(model, idx, targets, args.debug_state)
            print(f"wrote {args.debug_state}: B={idx.shape[0]}, T={idx.shape[1]}, loss {float(state['loss']):.6f}")
        return 0
    model = llmc.load_model(args.file)
    print(f"{args.file}: {llmc.read_model_header(args.file)}")
    if args.out:
        from .hf import write_directory
        write_directory(args.out, model.cfg, model.state_dict())
        print(f"wrote a Hugging Face GPT-2 directory to {args.out} (numpygpt generate --weights {args.out})")
    return 0


def _add_model_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="DIR", help="a Hugging Face GPT-2 directory")
    src.add_argument("--checkpoint", metavar="FILE", help="a numpygpt training checkpoint")
    src.add_argument("--config", default="gpt2-small",
                     help="a randomly initialised GPT of this size, or a config .json file (default gpt2-small)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the random initialisation (default 0)")
    p.add_argument("--follow-symlinks", action="store_true",
                   help="let the --weights directory's files be symlinks to places outside it (refused by default)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")


def _add_crosscheck_commands(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("reference", help="record every tensor of one run into a reference bundle (safetensors)")
    r.add_argument("out", help="the bundle to write (.safetensors)")
    _add_model_source(r)
    src = r.add_mutually_exclusive_group()
    src.add_argument("--prompt", default="Hello, I am a language model", help="the text to run on")
    src.add_argument("--ids", help="token ids instead, comma separated")
    r.add_argument("--names", choices=("numpygpt", "hf"), default="numpygpt", help="the naming scheme")
    r.add_argument("--no-backward", action="store_true", help="forward only (no targets, no gradients)")
    r.add_argument("--adamw-steps", type=int, default=0, help="also record this many AdamW steps' losses")
    r.add_argument("--lr", type=float, default=1e-4, help="learning rate of those steps")
    r.set_defaults(func=_cmd_reference)

    c = sub.add_parser("compare", help="compare two bundles, or a bundle against a live numpygpt run; "
                                       "names the first tensor that disagrees (exit status 1 if one does)")
    c.add_argument("bundle", help="a reference bundle (from your implementation)")
    c.add_argument("other", nargs="?", help="a second bundle (default: run numpygpt live on the bundle's inputs)")
    _add_model_source(c)
    c.add_argument("--rtol", type=float, help="relative tolerance (default: measured, see numpygpt precision)")
    c.add_argument("--atol", type=float, help="absolute tolerance")
    c.add_argument("--all", action="store_true", help="every row, not only those up to the first divergence")
    c.set_defaults(func=_cmd_compare)

    p = sub.add_parser("precision", help="numpygpt's own float32 error per tensor: how close is close enough")
    p.add_argument("--config", default="gpt2-small", help="the model size, or a config .json file (default gpt2-small)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--tokens", type=int, default=16)
    p.set_defaults(func=_cmd_precision)

    m = sub.add_parser("llmc", help="llm.c's files: write a GPT as gpt2_124M.bin (and a debug state), or read one")
    m.add_argument("action", choices=("write", "read"))
    m.add_argument("file", help="the llm.c model file (gpt2_124M.bin layout)")
    _add_model_source(m)
    m.add_argument("--llmc-dtype", choices=("float32", "bfloat16"), default="float32",
                   help="write version 3 (float32, default) or 5 (bfloat16)")
    m.add_argument("--debug-state", metavar="FILE", help="with write: also a debug state (gpt2_124M_debug_state.bin)")
    src = m.add_mutually_exclusive_group()
    src.add_argument("--prompt", default="Hello, I am a language model", help="the debug state's text")
    src.add_argument("--ids", help="token ids instead, comma separated")
    m.add_argument("--batch", type=int, help="random token ids: B sequences (llm.c's test_gpt2 reads B=4) ...")
    m.add_argument("--tokens", type=int, default=64, help="... of T tokens each (default 64)")
    m.add_argument("--out", metavar="DIR", help="with read: write the model as a Hugging Face directory")
    m.set_defaults(func=_cmd_llmc, no_backward=False)


# ----------------------------------------------------------------------------- seeing backprop


def _cmd_gradflow(args: argparse.Namespace) -> int:
    from .gradflow import main as gradflow_main
    return gradflow_main(out=args.out, plot=args.plot)


def _cmd_attention(args: argparse.Namespace) -> int:
    from .attention import main as attention_main
    return attention_main(args.text, weights=args.weights, checkpoint=args.checkpoint, out=args.out,
                          layers=args.layers, heads=args.heads, follow_symlinks=args.follow_symlinks)


def _cmd_graph(args: argparse.Namespace) -> int:
    from .graph import main as graph_main
    return graph_main(args.example, args.out, grads=not args.no_grads, values=args.values,
                      clusters=not args.no_clusters, max_nodes=args.max_nodes)


def _add_seeing_commands(sub: argparse._SubParsersAction) -> None:
    d = sub.add_parser("graph", help="draw the autograd graph of a built-in example, with each gradient's norm "
                                     "(SVG/PNG with Graphviz, else DOT)")
    d.add_argument("--example", choices=["scalar", "matrix", "gpt"], default="gpt",
                   help="a micrograd-style scalar expression, a 2x3 matrix one, or a tiny GPT's loss (default)")
    d.add_argument("--out", default="graph.svg", help=".svg, .png or .pdf (needs Graphviz's dot), or .dot")
    d.add_argument("--no-grads", action="store_true", help="draw the graph before backward: no gradient norms")
    d.add_argument("--values", choices=["none", "small", "all"], default="small",
                   help="show values and gradients of small tensors (default), of all, or none")
    d.add_argument("--no-clusters", action="store_true", help="no box per module")
    d.add_argument("--max-nodes", type=int, default=5000)
    d.set_defaults(func=_cmd_graph)

    g = sub.add_parser("gradflow", help="gradient sizes layer by layer, with and without shortcut connections "
                                        "(the seed's experiment, and a small GPT with and without residuals)")
    g.add_argument("--out", metavar="DIR", help="write gradflow.png there (needs matplotlib)")
    g.add_argument("--plot", metavar="FILE", help="write the plot to this PNG instead")
    g.set_defaults(func=_cmd_gradflow)

    a = sub.add_parser("attention", help="the attention weights of every layer and head for a text, as a heatmap grid")
    a.add_argument("text", help="the text whose tokens label the axes")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", metavar="DIR", help="a Hugging Face GPT-2 directory")
    src.add_argument("--checkpoint", metavar="FILE", help="a numpygpt training checkpoint")
    a.add_argument("--out", default="attention.png", help="the PNG to write (default attention.png)")
    a.add_argument("--follow-symlinks", action="store_true",
                   help="let the --weights directory's files be symlinks to places outside it (refused by default)")
    a.add_argument("--layers", help="only these layers, comma separated (e.g. 0,5,11)")
    a.add_argument("--heads", help="only these heads, comma separated")
    a.set_defaults(func=_cmd_attention)


# ----------------------------------------------------------------------------- the parser


class _UsageError(Exception):
    """A command line argparse cannot parse: reported in one line like any other error."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse's parser, except that a usage error raises `_UsageError` instead of printing the
    whole usage and exiting, so `main` reports it as it reports every error."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(self.prog, message)


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum` (0 or 1). argparse puts the option's name
    before the message, so a refused value reads "argument --max-new-tokens: must be a
    non-negative integer, got '-1'"."""
    wanted = "a positive integer" if minimum == 1 else "a non-negative integer"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value
    return parse


_POSITIVE, _NON_NEGATIVE = _count(1), _count(0)


def _gpt2_config(name: str) -> str:
    """An argparse type: any name `get_config` accepts (gpt2-small, gpt2, 124M, gpt2-medium, ...)."""
    try:
        get_config(name)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return name


def _add_generate_commands(sub: argparse._SubParsersAction) -> None:
    g = sub.add_parser("generate", help="continue a prompt with a GPT (the seed's demo: untrained 124M, greedy)")
    g.add_argument("prompt", nargs="?", default="Hello, I am", help='the text to continue (default "Hello, I am")')
    g.add_argument("--config", default="gpt2-small", type=_gpt2_config,
                   help="size of the untrained demo model (default gpt2-small; also gpt2-medium, 124M, ...)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--weights", metavar="DIR", help="a Hugging Face GPT-2 directory (config.json + model.safetensors)")
    src.add_argument("--checkpoint", metavar="PATH", help="a numpygpt training checkpoint")
    g.add_argument("--follow-symlinks", action="store_true",
                   help="let the --weights directory's files be symlinks to places outside it (refused by default)")
    g.add_argument("--max-new-tokens", type=_NON_NEGATIVE, default=None,
                   help="tokens to generate (default 6 for the demo, 50 with --weights/--checkpoint)")
    g.add_argument("--seed", type=_NON_NEGATIVE, default=123,
                   help="seed for the demo's weights and for sampling (default 123)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default); > 0 samples")
    g.add_argument("--top-k", type=_POSITIVE, default=None, help="sample only among the k most likely tokens")
    g.add_argument("--top-p", type=float, default=None, help="sample only within the nucleus of probability p")
    g.add_argument("--no-cache", action="store_true", help="re-run the whole context each step (no KV cache)")
    g.add_argument("--stop-at-eos", action="store_true", help="stop at <|endoftext|>")
    g.set_defaults(func=_cmd_generate)

    i = sub.add_parser("info", help="parameter counts and memory of a GPT-2 size")
    i.add_argument("--config", default="gpt2-small", type=_gpt2_config,
                   help="gpt2-small (default), gpt2-medium, gpt2-large, gpt2-xl, or an alias (gpt2, 124M, ...)")
    i.set_defaults(func=_cmd_info)

    t = sub.add_parser("tour", help="walk the seed's sections, computed by numpygpt")
    t.add_argument("section", nargs="?", choices=list(SECTIONS), help="one section (default: all, in order)")
    t.add_argument("--out", default=".", help="where the GELU/ReLU plot goes when matplotlib is installed")
    t.set_defaults(func=_cmd_tour)


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("train", help="train a GPT on a text (default: a small GPT on the Zen of Python), "
                                     "with checkpoints and exact resume")
    r.add_argument("--text", metavar="FILE", help="UTF-8 text to train on (default: the Zen of Python); "
                                                 "the first 90%% trains, the rest validates")
    r.add_argument("--config", default=None, choices=list(TRAIN_CONFIGS),
                   help="model and training preset (default tiny: 2 blocks, emb_dim 64, context 16)")
    r.add_argument("--epochs", type=_POSITIVE, help="passes over the training text (with --resume: the new "
                   "total; the extra epochs run at the schedule's final learning rate)")
    r.add_argument("--batch-size", type=_POSITIVE, help="windows per batch")
    r.add_argument("--context-length", type=_POSITIVE, help="tokens per window (and the model's context length)")
    r.add_argument("--stride", type=_POSITIVE, help="tokens between the starts of consecutive windows")
    r.add_argument("--lr", type=float, help="peak learning rate of AdamW")
    r.add_argument("--weight-decay", type=float, help="AdamW weight decay of the Linear weights")
    r.add_argument("--max-grad-norm", type=float, help="clip the gradient norm to this (0: no clipping)")
    r.add_argument("--warmup-steps", type=_NON_NEGATIVE,
                   help="linear warmup, then cosine decay to lr/10 (0: constant lr)")
    r.add_argument("--eval-freq", type=_POSITIVE, help="evaluate every this many steps")
    r.add_argument("--eval-iter", type=_POSITIVE, help="batches per evaluation")
    r.add_argument("--seed", type=_NON_NEGATIVE, help="seed for the initial weights, dropout and shuffling")
    r.add_argument("--start-context", metavar="TEXT", help="the text each epoch's sample continues")
    r.add_argument("--out", metavar="DIR", default=None,
                   help="where checkpoint.safetensors, history.json and loss.png go "
                        "(default ./runs/numpygpt-train, or the resumed checkpoint's directory)")
    r.add_argument("--resume", metavar="PATH", help="continue exactly from a checkpoint written by numpygpt train "
                   "(a finished run is not trained again: give a larger --epochs)")
    r.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    r.add_argument("--checkpoint-every", type=_POSITIVE, metavar="N", help="also write the checkpoint every N steps")
    r.add_argument("--max-steps", type=_POSITIVE, metavar="N", help="stop after N steps in all (with a checkpoint)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_train)


_DEBUG_HELP = "on an error, also print the traceback (and NumPy's warnings)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="numpygpt", description="GPT-2 from scratch on NumPy.")
    parser.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate_commands(sub)
    _add_train_command(sub)
    _add_crosscheck_commands(sub)
    _add_seeing_commands(sub)
    for command in sub.choices.values():
        # --debug after the command's name too. Each command has its own, so that argparse never
        # takes it for an abbreviation of a longer option (llmc's --debug-state).
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return parser


# ----------------------------------------------------------------------------- the error policy


def _one_line(error: BaseException) -> str:
    """An exception as one line: its message (lines joined), with its type's name where the
    message alone would not say what happened (a KeyError's bare key, an empty message)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    familiar = (ValueError, TypeError, IndexError, RuntimeError, OSError, MemoryError)
    if not text or not isinstance(error, familiar):
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text


def _end_progress_bars() -> None:
    """Close any progress bar still on screen, so that a message starts on a line of its own."""
    from tqdm import tqdm
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def _report(command: str, message: str, debug: bool, status: int = _signals.EXIT_ERROR) -> int:
    """Print `command: message` on stderr (after the traceback, with --debug); return `status`."""
    _end_progress_bars()
    with contextlib.suppress(OSError):  # what was printed comes first (unless stdout itself is broken)
        sys.stdout.flush()
    if debug:
        traceback.print_exc()
    print(f"{command}: {message}", file=sys.stderr, flush=True)
    return status


def _parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line; an unknown option is an error of the command it was given to."""
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        raise _UsageError(f"numpygpt {args.command}", f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return its exit status: 0, 1 for
    `compare` finding a divergence, 2 for an error, 130 after Ctrl-C, 143 after SIGTERM (141 when
    stdout is a pipe closed by its reader).
    Errors are reported in one line; see the module docstring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command, debug = "numpygpt", "--debug" in argv      # until the command line is parsed
    with _signals.command_signals(), warnings.catch_warnings():
        try:
            args = _parse(argv)
            command, debug = f"numpygpt {args.command}", args.debug
            if not debug:  # NumPy's overflow warnings (with file paths): the error line says what went wrong
                warnings.simplefilter("ignore", RuntimeWarning)
            return args.func(args)
        except _UsageError as error:
            return _report(error.prog, f"error: {error} (see {error.prog} --help)", debug=False)
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM (_signals.Terminated)
            return _report(command, _signals.describe(interrupt), debug, _signals.exit_status(interrupt))
        except BrokenPipeError:  # whoever read stdout has stopped (numpygpt tour | head): end quietly
            with contextlib.suppress(OSError, ValueError):  # (a stdout without a file descriptor)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the final flush fails no more
            return _signals.EXIT_BROKEN_PIPE
        except Exception as error:  # noqa: BLE001 -- the policy: any error is one line, status 2
            return _report(command, f"error: {_one_line(error)}", debug)


if __name__ == "__main__":
    raise SystemExit(main())
