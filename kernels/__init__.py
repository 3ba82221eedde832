"""Kernels for the denoising step, each with a torch reference and a dispatch (kernels.dispatch).

- masked_head: fused LM head over still-masked positions -> argmax token and max-softmax
  probability, online softmax over vocabulary tiles, no [n, V] logits in memory.
- block_attention: each row's block queries against that row's cached K/V (prefix, block,
  suffix), ragged key lengths across the batch, bidirectional, grouped KV heads.
- reference: the torch paths; checks: argument validation; head_plan: tile sizes and memory.

Only kernels.masked_head and kernels.block_attention import triton, and only when the dispatch
picks the Triton path (CUDA, or DILASERVE_KERNELS=triton under TRITON_INTERPRET=1).
"""
