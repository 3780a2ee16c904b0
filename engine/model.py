"""TabularResNet, its self-supervised heads and input masking (Part 2 of the tutorial series).

Written in the style of rtdl-revisiting-models: keyword-only constructors, ``d_*`` sizes and
``n_*`` counts, a ``Shape:`` note per module, and ``# NOTE[DIFF]`` where we depart from the
tutorial's published snippets (see DESIGN.md "Model" for the defects they had).

Inputs are what ``FeatureEncoder.model_inputs`` returns: ``x_num`` float32 [N, n_num] (standardised,
0 = the column mean) and ``x_cat`` int64 [N, n_cat] vocabulary indices, where index 0 is reserved
for MASK/PAD and 1 for UNKNOWN, so real categories start at 2. A table without numeric (or without
categorical) columns passes an [N, 0] tensor for that side.
"""
from __future__ import annotations

import itertools
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.config import NORMS, ModelConfig
from engine.errors import require

MASK_INDEX = 0  # the reserved categorical index for "masked / padding"; 1 is UNKNOWN, real categories start at 2

# Dropout draws 16 random bits per cell (see _dropout_multipliers): the drop probability is
# rounded to a multiple of 2**-16 (0.1 becomes 0.100006), far below anything training can notice.
_DROPOUT_LEVELS = 1 << 16


def _make_norm(norm: str, d: int) -> nn.Module:
    return nn.BatchNorm1d(d) if norm == "batch" else nn.LayerNorm(d)


class ResidualBlock(nn.Module):
    """One residual block of the tutorial's TabularResNet (a ResNet-style MLP block, He et al. 2016).

    Shape:
        x: (N, d_model) -> (N, d_model)
    """

    def __init__(self, *, d_model: int, norm: str) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_model)
        self.norm1 = _make_norm(norm, d_model)
        self.fc2 = nn.Linear(d_model, d_model)
        self.norm2 = _make_norm(norm, d_model)

    def forward(self, x: Tensor, keep_hidden: Tensor | None = None, keep_out: Tensor | None = None) -> Tensor:
        """``keep_*`` are inverted-dropout multipliers (0 or 1 / (1 - p)); None means no dropout."""
        h = F.relu(self.norm1(self.fc1(x)))
        if keep_hidden is not None:
            h = h * keep_hidden
        h = self.norm2(self.fc2(h))
        x = F.relu(x + h)
        if keep_out is not None:
            x = x * keep_out
        return x


class TabularResNet(nn.Module):
    """The tutorial series' TabularResNet (Part 2): embedded columns -> residual MLP -> embedding.

    Each categorical column gets an embedding of size d_model // 4, all numeric columns together
    one Linear to d_model // 2; the concatenation goes through Linear -> Norm -> ReLU, ``n_blocks``
    residual blocks (fc1 -> Norm -> ReLU -> Dropout -> fc2 -> Norm, + input, ReLU, Dropout) and a
    final LayerNorm. ``norm="batch"`` (BatchNorm1d, the tutorial's choice and our default) needs
    batches of more than one row in training (the trainer drops the last partial batch) and
    ``eval()`` for embeddings; ``norm="layer"`` has neither constraint.

    Shape:
        x_num: (N, n_num) float; x_cat: (N, len(cardinalities)) int64; num_mask: (N, n_num) bool
        output: (N, d_model)
    """

    def __init__(
        self,
        *,
        n_num: int,
        cardinalities: Sequence[int],
        d_model: int = 256,
        n_blocks: int = 6,
        dropout: float = 0.1,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        cardinalities = [int(c) for c in cardinalities]
        require(n_num >= 0, f"n_num must be >= 0, got n_num={n_num!r}")
        require(n_num > 0 or len(cardinalities) > 0, "the model has no inputs: n_num=0 and no categorical columns")
        require(all(c >= 2 for c in cardinalities), f"every cardinality must be >= 2 (MASK and UNKNOWN are reserved), got cardinalities={cardinalities}")
        require(d_model >= 4 and d_model % 4 == 0, f"d_model must be a positive multiple of 4, got d_model={d_model!r}")
        require(n_blocks >= 0, f"n_blocks must be >= 0, got n_blocks={n_blocks!r}")
        require(0.0 <= dropout < 1.0, f"dropout must be in [0, 1), got dropout={dropout!r}")
        require(norm in NORMS, f"norm must be one of {NORMS}, got norm={norm!r}")

        # NOTE[DIFF]: the tutorial never set self.d_model although later code reads it.
        self.d_model = d_model
        self.n_num = n_num
        self.cardinalities = tuple(cardinalities)
        self.dropout = dropout
        self.norm = norm

        d_cat = d_model // 4
        d_num = d_model // 2
        # NOTE[DIFF]: with no numeric (or no categorical) columns the matching branch is absent,
        # instead of a Linear(0, ...) or an empty tensor built on the CPU whatever the device.
        self.num_linear = nn.Linear(n_num, d_num) if n_num > 0 else None
        # NOTE[DIFF]: a learned stand-in for masked numeric cells, as index 0 is for categorical ones: a
        # masked 0 would otherwise be indistinguishable from a true column mean.
        self.num_mask_value = nn.Parameter(torch.zeros(n_num)) if n_num > 0 else None
        # NOTE[DIFF]: one table for all categorical columns instead of one nn.Embedding each: column
        # i owns rows cat_offsets[i] .. cat_offsets[i] + cardinalities[i] - 1 (its own MASK, UNKNOWN
        # and categories, d_model // 4 wide, initialised N(0, 1) as nn.Embedding is), so one gather
        # serves all columns instead of ~50 small lookups (see _input_layer).
        self.cat_embedding = nn.Embedding(sum(cardinalities), d_cat) if cardinalities else None
        offsets = [0, *itertools.accumulate(cardinalities)][: len(cardinalities)]
        self.register_buffer("cat_offsets", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        d_in = (d_num if n_num > 0 else 0) + d_cat * len(cardinalities)
        self.input_linear = nn.Linear(d_in, d_model)
        self.input_norm = _make_norm(norm, d_model)
        self.blocks = nn.ModuleList(ResidualBlock(d_model=d_model, norm=norm) for _ in range(n_blocks))
        self.output_norm = nn.LayerNorm(d_model)

    @classmethod
    def from_config(cls, model_cfg: ModelConfig, *, n_num: int, cardinalities: Sequence[int]) -> "TabularResNet":
        return cls(
            n_num=n_num,
            cardinalities=cardinalities,
            d_model=model_cfg.d_model,
            n_blocks=model_cfg.n_blocks,
            dropout=model_cfg.dropout,
            norm=model_cfg.norm,
        )

    def forward(
        self,
        x_num: Tensor,
        x_cat: Tensor,
        *,
        num_mask: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Embed a batch. ``num_mask`` marks numeric cells masked for MFP (they take a learned value);
        ``generator`` (on the inputs' device) draws the dropout masks; None uses torch's default one."""
        self._check_inputs(x_num, x_cat)
        x = F.relu(self.input_norm(self._input_layer(x_num, x_cat, num_mask)))
        keep = self._dropout_multipliers(x, generator)
        for i, block in enumerate(self.blocks):
            x = block(x) if keep is None else block(x, keep[2 * i], keep[2 * i + 1])
        return self.output_norm(x)

    def _check_inputs(self, x_num: Tensor, x_cat: Tensor) -> None:
        require(x_num.dim() == 2 and x_num.shape[1] == self.n_num, f"x_num must have shape [N, {self.n_num}], got {list(x_num.shape)}")
        require(x_cat.dim() == 2 and x_cat.shape[1] == len(self.cardinalities), f"x_cat must have shape [N, {len(self.cardinalities)}], got {list(x_cat.shape)}")
        require(x_num.shape[0] == x_cat.shape[0], f"x_num and x_cat must have the same rows, got {x_num.shape[0]} and {x_cat.shape[0]}")

    def _input_layer(self, x_num: Tensor, x_cat: Tensor, num_mask: Tensor | None) -> Tensor:
        """``input_linear(cat([num_linear(x_num), emb_1(x_cat[:, 0]), ..., emb_k(x_cat[:, k - 1])]))``.

        NOTE[DIFF]: the tutorial builds that [N, d_model // 2 + k * d_model // 4] concatenation and
        multiplies it by input_linear's weight. A linear map of a concatenation is the sum of each
        part times its block of the weight, so we compute the same function of the same parameters
        piece by piece, where each piece is cheapest: the numeric Linear is folded into its weight
        block (two small matrices multiplied once per call), and each categorical column's table is
        multiplied by its block once per call, after which a row's contribution is a sum of k
        looked-up rows (see _categorical_part). At d_model 256 with the demo's 52 columns this
        removes a [1024, 3456] x [3456, 256] product, its two backward products and 52 lookups:
        forward + backward of this layer at 1,024 rows under bf16 autocast, one CPU thread, 19 -> 10 ms.
        Computed in float32 (the parts are small) and handed on in the autocast dtype, as before.
        """
        device_type = x_num.device.type
        out_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else torch.float32
        with torch.autocast(device_type=device_type, enabled=False):
            weight, out = self.input_linear.weight, self.input_linear.bias
            d_cat_total = self.d_model // 4 * len(self.cardinalities)
            w_num, w_cat = weight.split([weight.shape[1] - d_cat_total, d_cat_total], dim=1)
            if self.num_linear is not None:
                if num_mask is not None:
                    x_num = torch.where(num_mask, self.num_mask_value, x_num)
                # W_num (A x + a) + b = (W_num A) x + (W_num a + b)
                out = F.linear(x_num, w_num @ self.num_linear.weight, torch.addmv(out, w_num, self.num_linear.bias))
            if self.cat_embedding is not None:
                out = out + _categorical_part(x_cat + self.cat_offsets, self.cat_embedding.weight, self.cardinalities, w_cat)
        return out.to(out_dtype)

    def _dropout_multipliers(self, x: Tensor, generator: torch.Generator | None) -> Tensor | None:
        if not self.training or self.dropout == 0.0 or not self.blocks:
            return None
        return _dropout_multipliers(2 * len(self.blocks), x.shape, self.dropout, like=x, generator=generator)


def _categorical_part(index: Tensor, table: Tensor, cardinalities: Sequence[int], w_cat: Tensor) -> Tensor:
    """``cat([table[index[:, 0]], ..., table[index[:, k - 1]]], dim=1) @ w_cat.T`` for a stacked table.

    ``index`` holds rows of ``table`` (column i's indices already moved by its offset). Two ways to
    the same sum, chosen by their multiply count: when the table has fewer rows than the batch has
    cells, first project each column's rows by its [d_model, d_cat] block of ``w_cat`` (a
    [rows, d_model] table), then sum each row's k projected rows; otherwise look the rows up and
    multiply the [N, k * d_cat] concatenation, as the tutorial does.

    Shape:
        index: (N, k) int64; table: (sum(cardinalities), d_cat); w_cat: (d_model, k * d_cat) -> (N, d_model)
    """
    n_rows, n_columns = index.shape
    d_cat = table.shape[1]
    if table.shape[0] < n_rows * n_columns:
        blocks = zip(table.split(list(cardinalities)), w_cat.split(d_cat, dim=1))
        projected = torch.cat([rows @ block.T for rows, block in blocks])
        return _SumOfRows.apply(projected, index)
    return F.embedding(index, table).flatten(1) @ w_cat.T


class _SumOfRows(torch.autograd.Function):
    """``out[n] = sum_i table[index[n, i]]``: F.embedding_bag's sum, with a cheaper backward on the CPU.

    embedding_bag's backward sorts all N * k indices; accumulating the gradient one column at a
    time with index_add_ gives the same sums (2.3 ms instead of 5.9 ms at N 1024, k 52, d 256,
    one CPU thread).
    """

    @staticmethod
    def forward(ctx: Any, table: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.n_table_rows = table.shape[0]
        return _row_sums(table, index, use_embedding_bag=table.device.type in _EMBEDDING_BAG_DEVICES)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        grad_table = grad.new_zeros(ctx.n_table_rows, grad.shape[1])
        for column in index.T.contiguous():
            grad_table.index_add_(0, column, grad)
        return grad_table, None


# F.embedding_bag has no MPS kernel (pytorch/pytorch#162270); there the rows are gathered, then summed.
_EMBEDDING_BAG_DEVICES = ("cpu", "cuda")


def _row_sums(table: Tensor, index: Tensor, *, use_embedding_bag: bool) -> Tensor:
    """``out[n] = sum_i table[index[n, i]]`` without autograd (for _SumOfRows.forward)."""
    if use_embedding_bag:
        return F.embedding_bag(index, table, mode="sum")
    return F.embedding(index, table).sum(dim=1)


def _dropout_multipliers(n_masks: int, shape: torch.Size, p: float, *, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Inverted-dropout multipliers for every dropout site of one forward pass: [n_masks, *shape].

    NOTE[DIFF]: the tutorial used nn.Dropout twice per block. Same semantics here (each cell of each
    site is dropped independently with probability p, survivors are scaled by 1 / (1 - p)), but all
    masks come from one ``random_`` call filling 64-bit words, each read as four 16-bit lanes:
    a quarter of the generator calls of a float draw, and no Bernoulli sampling, which was most of
    torch's CPU dropout cost. Forward + backward at batch 1024, d_model 256, 6 blocks, one CPU
    thread: no dropout 73 ms, nn.Dropout 97 ms, this 86 ms (dropout's share 25% -> 16%).
    """
    n_cells = n_masks * shape.numel()
    words = torch.empty((n_cells + 3) // 4, dtype=torch.int64, device=like.device)
    # from = int64 min with no upper bound asks for all 64 bits, so every int16 lane is uniform
    # over [-32768, 32767] (the default range, [0, 2**63), would leave one lane without its sign bit).
    words.random_(torch.iinfo(torch.int64).min, None, generator=generator)
    lanes = words.view(torch.int16)[:n_cells].view(n_masks, *shape)
    n_dropped_levels = round(p * _DROPOUT_LEVELS)
    # Compared straight into the output dtype (1.0 kept, 0.0 dropped): a bool mask converted
    # afterwards costs three times as much (1.5 + 2.8 ms against 0.9 ms for 12 x 1024 x 256 bf16).
    kept = torch.empty(lanes.shape, dtype=like.dtype, device=like.device)
    torch.ge(lanes, torch.iinfo(torch.int16).min + n_dropped_levels, out=kept)
    scale = 1.0 / (1.0 - n_dropped_levels / _DROPOUT_LEVELS)
    return kept.mul_(scale)


class MFPHeads(nn.Module):
    """Masked feature prediction heads (tutorial Part 3): one classifier per categorical column, one regressor for all numeric.

    Shape:
        embedding: (N, d_model)
        output: ([(N, card_i) for each categorical column], (N, n_num) or None when n_num == 0)
    """

    def __init__(self, *, d_model: int, n_num: int, cardinalities: Sequence[int]) -> None:
        super().__init__()
        self.cardinalities = tuple(int(card) for card in cardinalities)
        # NOTE[DIFF]: the tutorial stacked the per-column logits into one tensor, which fails as
        # soon as two columns have different vocabulary sizes; we return a list. The classifiers
        # themselves are one Linear to all columns' vocabularies laid end to end (column i's are
        # rows cardinalities[:i].sum() onwards of its weight), so all logits come from one product
        # instead of one small product per column (~50 on the demo data) forward and backward.
        self.cat_head = nn.Linear(d_model, sum(self.cardinalities)) if self.cardinalities else None
        self.num_head = nn.Linear(d_model, n_num) if n_num > 0 else None

    def forward(self, embedding: Tensor) -> tuple[list[Tensor], Tensor | None]:
        cat_logits: list[Tensor] = []
        if self.cat_head is not None:
            # Computed as [sum(card), N] so each column's logits are a contiguous block, which is
            # the layout engine.losses stacks them back into; the list holds [N, card_i] views.
            stacked = torch.addmm(self.cat_head.bias[:, None], self.cat_head.weight, embedding.T)
            cat_logits = [block.T for block in stacked.split(self.cardinalities)]
        num_pred = self.num_head(embedding) if self.num_head is not None else None
        return cat_logits, num_pred


class ProjectionHead(nn.Module):
    """SimCLR's nonlinear projection head g(h) = W2 ReLU(W1 h) (Chen et al. 2020, section 2.1).

    NOTE[DIFF]: the tutorial applies NT-Xent to the embedding itself (DESIGN.md names no head).
    SimCLR found the loss works better on a projection and the representation *before* it is the
    better one downstream, so the contrastive loss sees this head's output while embeddings for
    UMAP, evaluation and export are taken from TabularResNet, before it.

    Shape:
        embedding: (N, d_model) -> (N, d_out)
    """

    def __init__(self, *, d_model: int, d_out: int = 128) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_model)
        self.fc2 = nn.Linear(d_model, d_out)

    def forward(self, embedding: Tensor) -> Tensor:
        return self.fc2(F.relu(self.fc1(embedding)))


def mask_inputs(
    x_num: Tensor, x_cat: Tensor, mask_ratio: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Mask each cell independently with probability ``mask_ratio`` for masked feature prediction.

    Masked categorical cells become MASK_INDEX (0, never a real category); masked numeric cells
    become 0, the standardised column mean. ``generator`` must live on the inputs' device.
    Returns (x_num_masked, x_cat_masked, num_mask bool [N, n_num], cat_mask bool [N, n_cat]).
    """
    require(0.0 <= mask_ratio < 1.0, f"mask_ratio must be in [0, 1), got mask_ratio={mask_ratio!r}")
    n_rows, n_num = x_num.shape
    # One draw for both blocks of columns: one generator call per batch.
    masked = torch.rand(n_rows, n_num + x_cat.shape[1], generator=generator, device=x_num.device) < mask_ratio
    num_mask, cat_mask = masked[:, :n_num], masked[:, n_num:]
    return x_num.masked_fill(num_mask, 0.0), x_cat.masked_fill(cat_mask, MASK_INDEX), num_mask, cat_mask
