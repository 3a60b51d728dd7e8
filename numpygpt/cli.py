"""The `numpygpt` command (also `python -m numpygpt`).

    numpygpt generate "Hello, I am" --max-new-tokens 6 --seed 123
    numpygpt info --config gpt2-small
    numpygpt tour [SECTION]
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate_text_simple
    from .model import GPTModel, get_config
    from .random import manual_seed
    from .tokenizer import get_encoding

    tokenizer = get_encoding("gpt2")
    manual_seed(args.seed)
    cfg = get_config(args.config)
    model = GPTModel(cfg)
    model.eval()  # disable dropout
    encoded = tokenizer.encode(args.prompt, allowed_special={"<|endoftext|>"})
    if not encoded:
        raise ValueError("the prompt encodes to no tokens; give some text")
    print("encoded:", encoded)
    encoded_tensor = np.array(encoded)[None, :]
    print("encoded_tensor.shape:", encoded_tensor.shape)
    out = generate_text_simple(model, encoded_tensor, max_new_tokens=args.max_new_tokens,
                               context_size=cfg["context_length"])
    print("Output:", out)
    print("Output length:", len(out[0]))
    print(tokenizer.decode(out[0].tolist()))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .model import get_config, parameter_breakdown, parameter_totals

    cfg = get_config(args.config)
    print(f"{args.config}: emb_dim {cfg['emb_dim']}, n_layers {cfg['n_layers']}, n_heads {cfg['n_heads']}, "
          f"context_length {cfg['context_length']}, vocab_size {cfg['vocab_size']}, qkv_bias {cfg['qkv_bias']}")
    print()
    print(f"{'module':<40}{'parameters':>16}")
    for name, n in parameter_breakdown(cfg):
        print(f"{name:<40}{n:>16,}")
    t = parameter_totals(cfg)
    print()
    print(f"{'total':<40}{t['total']:>16,}")
    print(f"{'total with out_head tied to tok_emb':<40}{t['total_tied']:>16,}")
    print(f"{'memory in float32':<40}{t['size_mb_float32']:>13.2f} MB")
    return 0


def _cmd_tour(args: argparse.Namespace) -> int:
    from .tour import run

    run(args.section, out_dir=args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .model import GPT2_PRESETS

    parser = argparse.ArgumentParser(prog="numpygpt", description="GPT-2 from scratch on NumPy.")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="continue a prompt with a GPT (the seed's demo: untrained 124M, greedy)")
    g.add_argument("prompt", nargs="?", default="Hello, I am", help='the text to continue (default "Hello, I am")')
    g.add_argument("--max-new-tokens", type=int, default=6, help="tokens to generate (default 6)")
    g.add_argument("--seed", type=int, default=123, help="seed for the random initial weights (default 123)")
    g.add_argument("--config", default="gpt2-small", choices=list(GPT2_PRESETS), help="model size (default gpt2-small)")
    g.set_defaults(func=_cmd_generate)

    i = sub.add_parser("info", help="parameter counts and memory of a GPT-2 size")
    i.add_argument("--config", default="gpt2-small", choices=list(GPT2_PRESETS))
    i.set_defaults(func=_cmd_info)

    from .tour import SECTIONS

    t = sub.add_parser("tour", help="walk the seed's sections, computed by numpygpt")
    t.add_argument("section", nargs="?", choices=list(SECTIONS), help="one section (default: all, in order)")
    t.add_argument("--out", default=".", help="where the GELU/ReLU plot goes when matplotlib is installed")
    t.set_defaults(func=_cmd_tour)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "max_new_tokens", 0) is not None and getattr(args, "max_new_tokens", 0) < 0:
        parser.error("--max-new-tokens must be non-negative")
    try:
        return args.func(args)
    except (ValueError, TypeError, IndexError, FileNotFoundError) as e:
        print(f"numpygpt {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
