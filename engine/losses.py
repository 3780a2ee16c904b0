"""Self-supervised losses: SimCLR NT-Xent and masked feature prediction (MFP), plus collapse diagnostics.

In the style of lightly's losses: plain functions over tensors, each tested against a slow NumPy
reference written from its paper (tests/engine/test_losses.py).
"""
from __future__ import annotations

import functools
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.config import OBJECTIVES
from engine.errors import require

def nt_xent(z1: Tensor, z2: Tensor, temperature: float) -> Tensor:
    """NT-Xent (Chen et al. 2020, SimCLR eq. 1) averaged over all 2N anchors.

    Row i of ``z1`` and row i of ``z2`` are two views of one record: each view's positive is the
    other view, its negatives are the other 2N - 2 views. The loss is computed in float32 even
    under autocast: exp(sim / t) at t = 0.07 reaches 1.6e6, past float16's range, and bfloat16
    blurs the small similarity gaps the loss is made of. Only its backward products run in
    bfloat16 when the views come in bfloat16 (see _SimilarityLogits).

    Shape:
        z1, z2: (N, d) -> scalar
    """
    require(z1.shape == z2.shape and z1.dim() == 2, f"z1 and z2 must both be [N, d], got {list(z1.shape)} and {list(z2.shape)}")
    require(temperature > 0, f"temperature must be positive, got temperature={temperature!r}")
    n = z1.shape[0]
    backward_dtype = torch.bfloat16 if z1.dtype == torch.bfloat16 else torch.float32
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = _SimilarityLogits.apply(z, temperature, backward_dtype)
        index = torch.arange(n, device=z.device)
        positives = torch.cat([index + n, index])
        return F.cross_entropy(logits, positives)


class _SimilarityLogits(torch.autograd.Function):
    """``z @ z.T / temperature`` in float32 with -inf on the diagonal (a view is not its own negative).

    Why a Function: (1) 1 / temperature scales the [2N, d] factor, not the [2N, 2N] product, and the
    diagonal is set in place, so no [2N, 2N] mask or quotient is built; (2) the backward's two
    [2N, 2N] x [2N, d] products run in ``backward_dtype``: bfloat16 when the views came from
    autocast, like every other backward product of the step (the loss value stays float32). On
    one CPU thread with AMX at N 512, d 128, forward + backward of nt_xent: 16 ms before,
    11 ms with (1), 7 ms with (1) and (2).
    NOTE: the forward product stays float32: a bfloat16 product is rounded to 8 bits, a logit
    error of up to ~0.03 at temperature 0.07.

    Shape:
        z: (2N, d) float32 -> (2N, 2N) float32
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, temperature: float, backward_dtype: torch.dtype) -> Tensor:
        ctx.save_for_backward(z)
        ctx.temperature, ctx.backward_dtype = temperature, backward_dtype
        logits = z @ (z.T / temperature)
        return logits.fill_diagonal_(float("-inf"))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (z,) = ctx.saved_tensors
        grad = grad.to(ctx.backward_dtype, copy=True).fill_diagonal_(0.0)  # the diagonal does not depend on z
        z_low = z.to(ctx.backward_dtype)
        # d(z z^T)/dz applied to G is G z + G^T z; the transposed operand is a view, not a copy.
        grad_z = (grad @ z_low).float() + (grad.T @ z_low).float()
        return grad_z / ctx.temperature, None, None


def _masked_cross_entropy_sum(cat_logits: list[Tensor], x_cat_true: Tensor, cat_mask: Tensor) -> Tensor:
    """Sum over masked cells (row n, column i) of ``-log softmax(cat_logits[i][n])[x_cat_true[n, i]]``, in float32.

    All columns at once: their logits are stacked into one [sum(card), N] matrix (column i's
    vocabulary a block of rows) and the log-sum-exp is taken per block, with each block's own
    maximum as the shift. One cross_entropy per column costs ~50 small ops forward and backward
    on the demo data; this is a dozen whole-matrix ops (23 -> 12 ms for heads and loss, 512 rows,
    52 columns, one CPU thread). Unmasked cells are computed and then zeroed, so they add nothing
    to the sum nor to the gradient.

    Shape:
        cat_logits: [(N, card_i)]; x_cat_true, cat_mask: (N, k) -> scalar
    """
    sizes = [logits.shape[1] for logits in cat_logits]
    column_of_row, offsets = _vocabulary_layout(tuple(sizes), x_cat_true.device)
    stacked = torch.cat([logits.T for logits in cat_logits]).float()
    with torch.no_grad():  # log-sum-exp minus a logit does not depend on the shift: no gradient needed
        shift = torch.stack([block.amax(dim=0) for block in stacked.split(sizes)])
    shifted = stacked - shift.index_select(0, column_of_row)
    sum_exp = torch.zeros_like(shift).index_add(0, column_of_row, shifted.exp())
    true_logit = shifted.gather(0, (x_cat_true + offsets).T)
    return torch.where(cat_mask.T, sum_exp.log() - true_logit, 0.0).sum()


@functools.lru_cache(maxsize=16)
def _vocabulary_layout(sizes: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """For vocabularies of ``sizes`` laid end to end: each row's column [sum(sizes)] and each column's first row [k]."""
    sizes_tensor = torch.tensor(sizes, dtype=torch.int64, device=device)
    column_of_row = torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes_tensor)
    return column_of_row, torch.cumsum(sizes_tensor, 0) - sizes_tensor


def _mfp_terms(
    cat_logits: list[Tensor],
    num_pred: Tensor | None,
    x_cat_true: Tensor,
    x_num_true: Tensor,
    cat_mask: Tensor,
    num_mask: Tensor,
    cat_weight: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """(loss, mean CE over masked categorical cells, mean squared error over masked numeric cells) as tensors."""
    require(0.0 <= cat_weight <= 1.0, f"cat_weight must be in [0, 1], got cat_weight={cat_weight!r}")
    require(len(cat_logits) == x_cat_true.shape[1], f"got {len(cat_logits)} categorical heads for {x_cat_true.shape[1]} categorical columns")
    device = x_cat_true.device
    zero = torch.zeros((), device=device)

    ce = zero
    if cat_logits:
        ce = _masked_cross_entropy_sum(cat_logits, x_cat_true, cat_mask) / cat_mask.sum().clamp(min=1)

    mse = zero
    if num_pred is not None:
        require(num_pred.shape == x_num_true.shape, f"num_pred must have shape {list(x_num_true.shape)}, got {list(num_pred.shape)}")
        error = torch.where(num_mask, num_pred.float() - x_num_true.float(), 0.0)
        mse = error.square().sum() / num_mask.sum().clamp(min=1)

    # A side with no columns at all gives its weight to the other: with only numeric columns MFP is the MSE.
    if not cat_logits:
        cat_weight = 0.0
    elif num_pred is None:
        cat_weight = 1.0
    return cat_weight * ce + (1.0 - cat_weight) * mse, ce, mse


def mfp_loss(
    cat_logits: list[Tensor],
    num_pred: Tensor | None,
    x_cat_true: Tensor,
    x_num_true: Tensor,
    cat_mask: Tensor,
    num_mask: Tensor,
    cat_weight: float = 0.5,
) -> tuple[Tensor, dict[str, float]]:
    """Masked feature prediction (tutorial Part 3, after BERT's masked LM): predict masked cells only.

    Cross-entropy over masked categorical cells (target: the true index, never MASK) and MSE over
    masked numeric cells, each averaged over its masked cells, combined as
    ``cat_weight * CE + (1 - cat_weight) * MSE``. A part with no masked cells in the batch is 0;
    when the table has no categorical (numeric) columns at all the loss is the MSE (CE) alone.

    Shape:
        cat_logits: [(N, card_i)]; num_pred: (N, n_num) or None; x_cat_true, cat_mask: (N, n_cat);
        x_num_true, num_mask: (N, n_num) -> (scalar, {"mfp_cat": float, "mfp_num": float})
    """
    loss, ce, mse = _mfp_terms(cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask, cat_weight)
    ce_value, mse_value = torch.stack([ce, mse]).tolist()
    return loss, {"mfp_cat": ce_value, "mfp_num": mse_value}


def combined_loss(
    objective: str,
    *,
    mfp_weight: float,
    temperature: float,
    z1: Tensor | None = None,
    z2: Tensor | None = None,
    cat_logits: list[Tensor] | None = None,
    num_pred: Tensor | None = None,
    x_cat_true: Tensor | None = None,
    x_num_true: Tensor | None = None,
    cat_mask: Tensor | None = None,
    num_mask: Tensor | None = None,
    cat_weight: float = 0.5,
) -> tuple[Tensor, dict[str, float]]:
    """The training objective: "contrastive", "mfp" or "both" = (1 - w) * contrastive + w * mfp.

    ``z1``/``z2`` (projection-head outputs of two views) are needed for "contrastive" and "both";
    the MFP arguments (as for ``mfp_loss``) for "mfp" and "both". Returns the loss and detached
    floats for logging: {"loss", "contrastive", "mfp", "mfp_cat", "mfp_num"}; a part the objective
    does not compute is 0.0, so every key is always present.
    """
    require(objective in OBJECTIVES, f"objective must be one of {OBJECTIVES}, got objective={objective!r}")
    require(0.0 <= mfp_weight <= 1.0, f"mfp_weight must be in [0, 1], got mfp_weight={mfp_weight!r}")
    contrastive = mfp = ce = mse = None
    if objective in ("contrastive", "both"):
        require(z1 is not None and z2 is not None, f"objective={objective!r} needs z1 and z2")
        contrastive = nt_xent(z1, z2, temperature)
    if objective in ("mfp", "both"):
        needed = (cat_logits, x_cat_true, x_num_true, cat_mask, num_mask)
        require(all(a is not None for a in needed), f"objective={objective!r} needs cat_logits, x_cat_true, x_num_true, cat_mask and num_mask")
        mfp, ce, mse = _mfp_terms(cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask, cat_weight)

    if objective == "contrastive":
        loss = contrastive
    elif objective == "mfp":
        loss = mfp
    else:
        loss = (1.0 - mfp_weight) * contrastive + mfp_weight * mfp
    # One device-to-host copy for all the logged figures.
    parts = [loss, contrastive, mfp, ce, mse]
    values = torch.stack([loss.new_zeros(()) if p is None else p.detach() for p in parts]).tolist()
    return loss, dict(zip(("loss", "contrastive", "mfp", "mfp_cat", "mfp_num"), values))


@torch.no_grad()
def collapse_diagnostics(z1: Tensor, z2: Tensor) -> dict[str, float]:
    """Figures that reveal representation collapse, for the trainer to log (SimSiam, Chen & He 2021, section 4.1).

    On L2-normalised outputs: ``std_mean`` / ``std_min`` are the per-dimension standard deviation
    over the batch averaged / minimised across dimensions (about 1/sqrt(d), reported as
    ``std_reference``, when spread out; 0 when collapsed); ``pos_cosine`` is the mean cosine of the
    two views of a record, ``neg_cosine`` the mean cosine of views of different records, and
    ``cosine_gap`` their difference (near 0 when every record maps to the same point).

    Shape:
        z1, z2: (N, d) with N >= 2 -> dict of floats
    """
    require(z1.shape == z2.shape and z1.dim() == 2 and z1.shape[0] >= 2, f"z1 and z2 must both be [N, d] with N >= 2, got {list(z1.shape)} and {list(z2.shape)}")
    n, d = z1.shape
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    std = z.std(dim=0)
    cosine = z[:n] @ z[n:].T  # [N, N]: view 1 of record i against view 2 of record j
    pos = cosine.diagonal().mean()
    neg = (cosine.sum() - cosine.diagonal().sum()) / (n * (n - 1))
    std_mean, std_min, pos_value, neg_value = torch.stack([std.mean(), std.min(), pos, neg]).tolist()
    return {
        "std_mean": std_mean,
        "std_min": std_min,
        "std_reference": d ** -0.5,
        "pos_cosine": pos_value,
        "neg_cosine": neg_value,
        "cosine_gap": pos_value - neg_value,
    }
