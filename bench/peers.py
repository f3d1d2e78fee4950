#!/usr/bin/env python3
"""Prefill throughput and peak GPU memory of MemMamba's peers, on the GPU host (PyTorch there).

For each model and length: one forward pass over (batch, length) tokens with no gradient, timed
after a warm-up (CUDA events, the median of --repeats runs), and the peak memory PyTorch
allocated during it. Prints a markdown table; rows that do not fit say "out of memory".

  python3 bench/peers.py [--lengths 8192,32768,131072] [--batches 1,4] [--repeats 3]
      [--models transformer-bf16,transformer-f32,hf-mamba] [--budget 30]

Peers, sized like MemMamba `small` (27.2 M parameters, vocab 16,384, d 512):
- transformer: a pre-norm GPT (6 layers, d 512, 8 heads, MLP 4d, tied head; 27.3 M parameters
  without its learned position table, which grows with the longest length), attention through torch.nn.functional.scaled_dot_product_attention (FlashAttention on
  Hopper), in bf16 as a user of it would run it, and in f32 (MemMamba runs in f32; SDPA then
  uses its memory-efficient kernel).
- hf-mamba: Hugging Face transformers' MambaForCausalLM (10 layers, d 512, state 16, expand 2:
  the same Mamba-1 layers as MemMamba with notes off), f32. Without the mamba-ssm package (not on
  the host) transformers runs its sequential PyTorch scan, which is what a user without those
  kernels gets.
"""
import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 16384


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True
        )
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    def __init__(self, max_len, d=512, layers=6, heads=8):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, ids):
        x = self.emb(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        # Tied head; logits of the last position only, as a prefill before generation needs.
        return self.ln(x[:, -1]) @ self.emb.weight.t()


def hf_mamba():
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(
        vocab_size=VOCAB, hidden_size=512, state_size=16, num_hidden_layers=10, expand=2,
        conv_kernel=4, time_step_rank=32, tie_word_embeddings=True, use_cache=False,
    )
    model = MambaForCausalLM(cfg)

    class LastLogits(nn.Module):
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, ids):
            h = self.m.backbone(input_ids=ids).last_hidden_state
            return self.m.lm_head(h[:, -1])

    return LastLogits()


def params(model, skip=("pos.",)):
    return sum(p.numel() for n, p in model.named_parameters() if not n.startswith(skip))


def measure(model, batch, length, repeats):
    ids = torch.randint(1, VOCAB, (batch, length), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model(ids)  # warm-up (kernel selection, allocator)
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            model(ids)
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
    seconds = sorted(times)[len(times) // 2]
    return batch * length / seconds, torch.cuda.max_memory_allocated() / 2**30


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="8192,32768,131072")
    ap.add_argument("--batches", default="1,4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="transformer-bf16,transformer-f32,hf-mamba")
    ap.add_argument("--budget", type=float, default=30.0,
                    help="skip a model's longer lengths once one of its runs took this many seconds")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    batches = [int(x) for x in args.batches.split(",")]
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    print("| model | params | batch | length | tokens/s | peak GPU memory (GiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        if name.startswith("transformer"):
            dtype = torch.bfloat16 if name.endswith("bf16") else torch.float32
            model = Transformer(max(lengths)).to("cuda", dtype)
        else:
            model = hf_mamba().to("cuda")
        model.eval()
        count = params(model) / 1e6
        for batch in batches:
            slow = False
            for length in lengths:
                if slow:
                    print(f"| {name} | {count:.1f}M | {batch} | {length} | skipped (previous length over {args.budget:.0f} s) | |")
                    continue
                try:
                    t0 = time.time()
                    rate, peak = measure(model, batch, length, args.repeats)
                    slow = time.time() - t0 > args.budget
                    print(f"| {name} | {count:.1f}M | {batch} | {length} | {rate:,.0f} | {peak:.2f} |", flush=True)
                except torch.OutOfMemoryError:
                    print(f"| {name} | {count:.1f}M | {batch} | {length} | out of memory | |", flush=True)
                    torch.cuda.empty_cache()
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
