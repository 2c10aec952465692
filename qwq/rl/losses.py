"""Pure tensor functions for RL and preference training (no model, no state): advantages, the clipped policy
loss with its four normalisations, k3 KL, entropy, Bradley-Terry.

Policy-gradient loss per completion token t of sequence i (PPO's clipped surrogate):

    r = exp(logp - old_logp),   l_it = -min(r * A_i, clip(r, 1 - clip_low, 1 + clip_high) * A_i) + beta * k3_it

and the normalisation is what distinguishes the variants (the names TRL uses):

    grpo     mean over sequences of the per-sequence token mean       (DeepSeekMath GRPO; long answers diluted)
    dapo     sum over all tokens / number of tokens in the whole batch (DAPO token-level; with clip_high > clip_low)
    dr_grpo  sum over all tokens / (sequences * max completion length) (Dr. GRPO, a constant: no length bias)
    bnpo     sum over the tokens of each micro-batch / its token count  (batch-normalised, per micro-batch)

Each normaliser is given over the whole optimizer batch, so summing micro-batch losses equals the full-batch loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """rewards [N * G] (groups contiguous) -> advantages [N * G]: reward minus its group mean, divided by the group
    std (unbiased, as in GRPO) when `scale`. A group with equal rewards gets zero advantages."""
    if rewards.dim() != 1 or rewards.numel() % group_size:
        raise ValueError(f"rewards must be a flat tensor of whole groups of {group_size}, got {tuple(rewards.shape)}")
    grouped = rewards.view(-1, group_size).float()
    centered = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        std = grouped.std(dim=1, keepdim=True)
        centered = torch.where(std > 0, centered / (std + eps), torch.zeros_like(centered))
    return centered.reshape(-1)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) per position: logits [B, T, V], targets [B, T] -> [B, T] (computed in fp32)."""
    return torch.gather(F.log_softmax(logits.float(), dim=-1), -1, targets.unsqueeze(-1)).squeeze(-1)


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the next-token distribution per position: [B, T, V] -> [B, T]."""
    logp = F.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref) per sampled token: exp(ref - logp) - (ref - logp) - 1 (>= 0)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1.0


@dataclass(frozen=True)
class Normalizer:
    """Whole-batch quantities each loss type divides by (see the module docstring)."""

    loss_type: str
    total_sequences: int
    total_tokens: int
    max_completion_length: int
    micro_batches: int = 1

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss type {self.loss_type!r}: expected one of {', '.join(LOSS_TYPES)}")


def aggregate(per_token: torch.Tensor, mask: torch.Tensor, norm: Normalizer) -> torch.Tensor:
    """Reduce a per-token loss [B, T] over the completion mask [B, T] the way `norm.loss_type` prescribes."""
    mask = mask.to(per_token.dtype)
    masked = per_token * mask
    if norm.loss_type == "grpo":
        lengths = mask.sum(-1).clamp(min=1.0)
        return (masked.sum(-1) / lengths).sum() / max(1, norm.total_sequences)
    if norm.loss_type == "dapo":
        return masked.sum() / max(1, norm.total_tokens)
    if norm.loss_type == "dr_grpo":
        return masked.sum() / max(1, norm.total_sequences * norm.max_completion_length)
    return masked.sum() / mask.sum().clamp(min=1.0) / max(1, norm.micro_batches)  # bnpo


@dataclass
class PolicyLossStats:
    clip_low_fraction: float
    clip_high_fraction: float
    kl: float
    ratio_mean: float


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                norm: Normalizer, clip_low: float = 0.2, clip_high: float = 0.2, ref_logp: torch.Tensor | None = None,
                kl_coef: float = 0.0) -> tuple[torch.Tensor, PolicyLossStats]:
    """The clipped surrogate (+ k3 KL) over completion tokens. logp / old_logp / ref_logp / mask are [B, T],
    advantages [B] (one per sequence, broadcast over its tokens)."""
    ratio = torch.exp(logp - old_logp)
    adv = advantages.to(logp.dtype).unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    kl_mean = 0.0
    fmask = mask.to(logp.dtype)
    count = fmask.sum().clamp(min=1.0)
    if ref_logp is not None and kl_coef:
        kl = k3_kl(logp, ref_logp)
        per_token = per_token + kl_coef * kl
        kl_mean = float((kl.detach() * fmask).sum() / count)
    with torch.no_grad():
        low = ((ratio < 1.0 - clip_low) & (adv < 0)).to(logp.dtype)
        high = ((ratio > 1.0 + clip_high) & (adv > 0)).to(logp.dtype)
        stats = PolicyLossStats(float((low * fmask).sum() / count), float((high * fmask).sum() / count), kl_mean,
                                float((ratio * fmask).sum() / count))
    return aggregate(per_token, mask, norm), stats


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """-log sigmoid(r_chosen - r_rejected [- margin]), averaged over pairs (InstructGPT's reward-model loss)."""
    diff = chosen.float() - rejected.float()
    if margin is not None:
        diff = diff - margin.float()
    return -F.logsigmoid(diff).mean()


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """SFT loss: summed token cross-entropy over `mask` and the token count (caller divides, so micro-batches of
    one optimizer step weigh every token equally)."""
    losses = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    fmask = mask.reshape(-1).to(losses.dtype)
    return (losses * fmask).sum(), fmask.sum()
