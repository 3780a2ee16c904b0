"""TabularResNet, its heads and MFP masking: shapes, edge cases, determinism, gradients, masking statistics."""
from __future__ import annotations

import pytest
import torch

from engine.config import ModelConfig
from engine.errors import UserError
from engine.model import (
    MASK_INDEX,
    MFPHeads,
    ProjectionHead,
    TabularResNet,
    _dropout_multipliers,
    _row_sums,
    mask_inputs,
)

CARDS = [4, 7, 30]
N_NUM = 5


def _inputs(n: int = 16, n_num: int = N_NUM, cards=CARDS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, n_num, generator=g)
    # Real categories start at 2; 1 (UNKNOWN) occurs too; 0 (MASK) never comes out of the encoder.
    x_cat = torch.stack([torch.randint(1, card, (n,), generator=g) for card in cards], dim=1) if cards else torch.zeros(n, 0, dtype=torch.long)
    return x_num, x_cat


def _model(**changes) -> TabularResNet:
    torch.manual_seed(0)  # parameter init only; the tests' randomness goes through generators
    args = dict(n_num=N_NUM, cardinalities=CARDS, d_model=32, n_blocks=2, dropout=0.1, norm="batch")
    args.update(changes)
    return TabularResNet(**args)


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize(
    "n_num, cards, n_blocks",
    [(N_NUM, CARDS, 2), (0, CARDS, 2), (N_NUM, [], 2), (N_NUM, CARDS, 0), (1, [2], 1)],
    ids=["both-kinds", "no-numeric", "no-categorical", "no-blocks", "one-of-each"],
)
def test_embedding_shape(norm: str, n_num: int, cards: list[int], n_blocks: int) -> None:
    model = _model(n_num=n_num, cardinalities=cards, n_blocks=n_blocks, norm=norm)
    x_num, x_cat = _inputs(n_num=n_num, cards=cards)
    for mode in (model.train, model.eval):
        mode()
        out = model(x_num, x_cat)
        assert out.shape == (16, 32)
        assert torch.isfinite(out).all()
    assert model.d_model == 32


def test_absent_column_kinds_build_no_modules_for_them() -> None:
    no_numeric = _model(n_num=0)
    assert no_numeric.num_linear is None and no_numeric.num_mask_value is None
    assert no_numeric.input_linear.in_features == len(CARDS) * 32 // 4
    no_categorical = _model(cardinalities=[])
    assert no_categorical.cat_embedding is None
    assert no_categorical.input_linear.in_features == 32 // 2


def test_embedding_tables_follow_the_cardinalities() -> None:
    model = _model()
    # One stacked table: column i owns cardinalities[i] rows (its own MASK, UNKNOWN and categories).
    assert model.cat_embedding.weight.shape == (sum(CARDS), 32 // 4)
    assert model.cat_offsets.tolist() == [0, 4, 11]
    assert "cat_offsets" not in model.state_dict()  # derived from the cardinalities, not saved
    assert model.num_linear.out_features == 32 // 2


def _tutorial_input_layer(model: TabularResNet, x_num, x_cat, num_mask=None) -> torch.Tensor:
    """The tutorial's input layer with the model's weights: one lookup per column into that column's
    own table, numeric Linear, concatenation, Linear. Written out plainly, as the reference."""
    parts = []
    if model.num_linear is not None:
        if num_mask is not None:
            x_num = torch.where(num_mask, model.num_mask_value, x_num)
        parts.append(model.num_linear(x_num))
    if model.cat_embedding is not None:
        tables = model.cat_embedding.weight.split(list(model.cardinalities))
        parts.extend(torch.nn.functional.embedding(x_cat[:, i], table) for i, table in enumerate(tables))
    return model.input_linear(torch.cat(parts, dim=1))


@pytest.mark.parametrize("n_rows", [2, 16, 300], ids=["lookup-then-multiply", "project-then-sum", "many-rows"])
@pytest.mark.parametrize("n_num, cards", [(N_NUM, CARDS), (0, CARDS), (N_NUM, [])], ids=["both", "no-numeric", "no-categorical"])
def test_stacked_table_input_layer_equals_per_column_embeddings(n_rows: int, n_num: int, cards: list[int]) -> None:
    # 2 rows x 3 columns = 6 looked-up rows < 41 table rows: the lookup path; 16 or 300 rows: the projected-table path.
    model = _model(n_num=n_num, cardinalities=cards).train()
    x_num, x_cat = _inputs(n=n_rows, n_num=n_num, cards=cards, seed=3)
    x_cat[0] = 0  # the MASK row of every column takes part too
    num_mask = torch.rand(x_num.shape, generator=torch.Generator().manual_seed(4)) < 0.3
    upstream = torch.randn(n_rows, 32, generator=torch.Generator().manual_seed(5))

    def output_and_grads(layer) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        out = layer(model, x_num, x_cat, num_mask)
        out.backward(upstream)
        return [out.detach()] + [p.grad.clone() for _, p in sorted(model.named_parameters()) if p.grad is not None]

    ours = output_and_grads(lambda m, *args: m._input_layer(*args))
    reference = output_and_grads(_tutorial_input_layer)
    assert len(ours) == len(reference) > 1
    for got, expected in zip(ours, reference):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_both_ways_of_summing_looked_up_rows_agree() -> None:
    # embedding_bag where the device has it (CPU, CUDA); gather-then-sum elsewhere (MPS).
    table = torch.randn(41, 8, generator=torch.Generator().manual_seed(0))
    index = torch.randint(0, 41, (20, 3), generator=torch.Generator().manual_seed(1))
    bag = _row_sums(table, index, use_embedding_bag=True)
    gathered = _row_sums(table, index, use_embedding_bag=False)
    assert bag.shape == (20, 8)
    assert torch.allclose(bag, gathered, atol=1e-6)
    assert torch.allclose(bag[0], table[index[0]].sum(dim=0), atol=1e-6)


def test_model_output_is_the_tutorial_stem_then_the_blocks() -> None:
    model = _model(norm="batch", n_blocks=2).eval()
    x_num, x_cat = _inputs(n=40)
    x = torch.relu(model.input_norm(_tutorial_input_layer(model, x_num, x_cat)))
    for block in model.blocks:
        x = block(x)
    assert torch.allclose(model(x_num, x_cat), model.output_norm(x), atol=1e-5)


def test_input_layer_hands_on_the_autocast_dtype() -> None:
    model = _model().eval()
    x_num, x_cat = _inputs(n=40)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model._input_layer(x_num, x_cat, None)
    assert out.dtype == torch.bfloat16
    # computed in float32 and rounded once: within bfloat16's rounding of the float32 result
    assert torch.allclose(out.float(), model._input_layer(x_num, x_cat, None), rtol=2 ** -8, atol=1e-6)


def test_eval_mode_is_deterministic_and_ignores_dropout() -> None:
    model = _model(dropout=0.5).eval()
    x_num, x_cat = _inputs()
    assert torch.equal(model(x_num, x_cat), model(x_num, x_cat))
    # In eval each row's embedding does not depend on the rest of the batch (BatchNorm uses running stats).
    assert torch.allclose(model(x_num[:3], x_cat[:3]), model(x_num, x_cat)[:3], atol=1e-6)


def test_training_dropout_comes_from_the_generator() -> None:
    model = _model(dropout=0.3).train()
    x_num, x_cat = _inputs()
    first = model(x_num, x_cat, generator=torch.Generator().manual_seed(5))
    again = model(x_num, x_cat, generator=torch.Generator().manual_seed(5))
    other = model(x_num, x_cat, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_zero_dropout_is_deterministic_in_training() -> None:
    model = _model(dropout=0.0).train()
    x_num, x_cat = _inputs()
    assert torch.equal(model(x_num, x_cat), model(x_num, x_cat))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_multipliers_drop_at_rate_p_and_keep_the_mean(p: float) -> None:
    g = torch.Generator().manual_seed(0)
    keep = _dropout_multipliers(3, torch.Size([200, 100]), p, like=torch.zeros(1), generator=g)
    assert keep.shape == (3, 200, 100)
    dropped = keep == 0
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.005)
    values = keep.unique().tolist()
    assert values[0] == 0.0 and len(values) == 2 and values[1] == pytest.approx(1 / (1 - p), rel=1e-4)
    assert keep.mean().item() == pytest.approx(1.0, abs=0.02)
    # Four cells share one 64-bit random word; each lane position must drop at the same rate.
    lanes = dropped.flatten().view(-1, 4).float().mean(dim=0)
    assert torch.allclose(lanes, torch.full((4,), p), atol=0.01)
    # The sites of one forward pass are independent draws, not one mask repeated.
    assert not torch.equal(keep[0], keep[1])


def test_dropout_multipliers_come_in_the_activation_dtype() -> None:
    like = torch.zeros(1, dtype=torch.bfloat16)
    keep = _dropout_multipliers(2, torch.Size([64, 32]), 0.1, like=like, generator=torch.Generator().manual_seed(0))
    as_float = _dropout_multipliers(2, torch.Size([64, 32]), 0.1, like=torch.zeros(1), generator=torch.Generator().manual_seed(0))
    assert keep.dtype == torch.bfloat16
    # Same generator state, same cells dropped; survivors carry 1 / (1 - p) rounded to the dtype.
    assert torch.equal(keep == 0, as_float == 0)
    assert torch.equal(keep[keep != 0].float().unique(), as_float[as_float != 0].to(torch.bfloat16).float().unique())


def test_gradients_reach_every_parameter() -> None:
    model = _model(dropout=0.1).train()
    heads = MFPHeads(d_model=32, n_num=N_NUM, cardinalities=CARDS)
    projection = ProjectionHead(d_model=32, d_out=8)
    x_num, x_cat = _inputs()
    x_num, x_cat, num_mask, cat_mask = mask_inputs(x_num, x_cat, 0.5, torch.Generator().manual_seed(0))
    embedding = model(x_num, x_cat, num_mask=num_mask, generator=torch.Generator().manual_seed(1))
    cat_logits, num_pred = heads(embedding)
    loss = projection(embedding).square().mean() + num_pred.square().mean() + sum(l.logsumexp(1).mean() for l in cat_logits)
    loss.backward()
    for name, parameter in [*model.named_parameters(), *heads.named_parameters(), *projection.named_parameters()]:
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_masked_numeric_cells_take_the_learned_mask_value() -> None:
    model = _model().eval()
    x_num, x_cat = _inputs()
    num_mask = torch.zeros_like(x_num, dtype=torch.bool)
    num_mask[:, 1] = True
    changed = x_num.clone()
    changed[:, 1] = 123.0  # whatever sits under the mask must not reach the model
    assert torch.equal(model(x_num, x_cat, num_mask=num_mask), model(changed, x_cat, num_mask=num_mask))
    assert not torch.allclose(model(x_num, x_cat), model(changed, x_cat))


def test_blocks_are_residual() -> None:
    # A block whose last norm outputs 0 passes its (non-negative, post-ReLU) input through unchanged,
    # so the model equals the same stem with no blocks.
    model = _model(norm="layer", n_blocks=2).eval()
    for block in model.blocks:
        torch.nn.init.zeros_(block.norm2.weight)
        torch.nn.init.zeros_(block.norm2.bias)
    stem_only = _model(norm="layer", n_blocks=0).eval()
    stem_only.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("blocks.")})
    x_num, x_cat = _inputs()
    assert torch.allclose(model(x_num, x_cat), stem_only(x_num, x_cat), atol=1e-6)


def test_from_config_uses_the_model_config() -> None:
    cfg = ModelConfig(d_model=64, n_blocks=3, dropout=0.2, norm="layer")
    model = TabularResNet.from_config(cfg, n_num=2, cardinalities=[5])
    assert (model.d_model, len(model.blocks), model.dropout, model.norm) == (64, 3, 0.2, "layer")
    assert isinstance(model.blocks[0].norm1, torch.nn.LayerNorm)
    assert isinstance(_model().blocks[0].norm1, torch.nn.BatchNorm1d)
    assert model(*_inputs(n=4, n_num=2, cards=[5])).shape == (4, 64)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(n_num=0, cardinalities=[]), "no inputs"),
        (dict(cardinalities=[4, 1]), "cardinality"),
        (dict(d_model=30), "d_model"),
        (dict(norm="group"), "norm"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_bad_shapes_are_rejected_with_a_message(changes: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        _model(**changes)


def test_inputs_of_the_wrong_width_are_rejected() -> None:
    model = _model()
    x_num, x_cat = _inputs()
    with pytest.raises(UserError, match="x_num"):
        model(x_num[:, :2], x_cat)
    with pytest.raises(UserError, match="x_cat"):
        model(x_num, x_cat[:, :1])


def test_mfp_heads_keep_one_head_per_column() -> None:
    heads = MFPHeads(d_model=32, n_num=N_NUM, cardinalities=CARDS)
    embedding = torch.randn(6, 32)
    cat_logits, num_pred = heads(embedding)
    assert len(cat_logits) == len(CARDS)
    assert [l.shape for l in cat_logits] == [(6, c) for c in CARDS]
    assert num_pred.shape == (6, N_NUM)
    # Column i's classifier is its block of rows of the one stacked Linear: a Linear of its own.
    weights, biases = heads.cat_head.weight.split(CARDS), heads.cat_head.bias.split(CARDS)
    for logits, weight, bias in zip(cat_logits, weights, biases):
        assert torch.allclose(logits, torch.nn.functional.linear(embedding, weight, bias), atol=1e-6)
    cat_logits, num_pred = MFPHeads(d_model=32, n_num=0, cardinalities=[3])(torch.randn(6, 32))
    assert num_pred is None and len(cat_logits) == 1
    no_categorical = MFPHeads(d_model=32, n_num=2, cardinalities=[])
    cat_logits, num_pred = no_categorical(torch.randn(6, 32))
    assert cat_logits == [] and num_pred.shape == (6, 2) and no_categorical.cat_head is None


def test_projection_head_shape() -> None:
    assert ProjectionHead(d_model=32, d_out=8)(torch.randn(5, 32)).shape == (5, 8)
    assert ProjectionHead(d_model=32)(torch.randn(5, 32)).shape == (5, 128)


# --- MFP masking ---------------------------------------------------------------------------------


def test_mask_inputs_uses_the_reserved_index_and_zero() -> None:
    x_num, x_cat = _inputs(n=200)
    masked_num, masked_cat, num_mask, cat_mask = mask_inputs(x_num, x_cat, 0.3, torch.Generator().manual_seed(0))
    assert num_mask.dtype == cat_mask.dtype == torch.bool
    assert num_mask.shape == x_num.shape and cat_mask.shape == x_cat.shape
    assert num_mask.any() and cat_mask.any()
    assert (masked_cat[cat_mask] == MASK_INDEX).all() and MASK_INDEX == 0
    assert (masked_num[num_mask] == 0).all()
    assert torch.equal(masked_cat[~cat_mask], x_cat[~cat_mask])
    assert torch.equal(masked_num[~num_mask], x_num[~num_mask])
    # The true targets never hold 0, so "is 0" and "was masked" are the same cells.
    assert (x_cat != MASK_INDEX).all()
    assert torch.equal(masked_cat == MASK_INDEX, cat_mask)
    # The inputs are left untouched.
    assert (x_cat != MASK_INDEX).all() and not torch.equal(masked_num, x_num)


@pytest.mark.parametrize("ratio", [0.05, 0.15, 0.5])
def test_mask_ratio_is_close_to_the_request(ratio: float) -> None:
    x_num, x_cat = _inputs(n=20_000)
    _, _, num_mask, cat_mask = mask_inputs(x_num, x_cat, ratio, torch.Generator().manual_seed(1))
    assert num_mask.float().mean().item() == pytest.approx(ratio, abs=0.01)
    assert cat_mask.float().mean().item() == pytest.approx(ratio, abs=0.01)
    per_column = torch.cat([num_mask, cat_mask], dim=1).float().mean(dim=0)
    assert torch.allclose(per_column, torch.full_like(per_column, ratio), atol=0.02)


def test_mask_inputs_is_reproducible_from_the_generator() -> None:
    x_num, x_cat = _inputs(n=64)
    first = mask_inputs(x_num, x_cat, 0.2, torch.Generator().manual_seed(3))
    again = mask_inputs(x_num, x_cat, 0.2, torch.Generator().manual_seed(3))
    other = mask_inputs(x_num, x_cat, 0.2, torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[3], other[3])


@pytest.mark.parametrize("n_num, cards", [(0, CARDS), (N_NUM, [])])
def test_mask_inputs_with_one_kind_of_column(n_num: int, cards: list[int]) -> None:
    x_num, x_cat = _inputs(n=50, n_num=n_num, cards=cards)
    masked_num, masked_cat, num_mask, cat_mask = mask_inputs(x_num, x_cat, 0.5, torch.Generator().manual_seed(0))
    assert num_mask.shape == (50, n_num) and cat_mask.shape == (50, len(cards))
    assert masked_num.shape == x_num.shape and masked_cat.shape == x_cat.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_losses_and_masking_stay_on_cuda() -> None:
    from engine.losses import combined_loss

    device = torch.device("cuda")
    model = _model().to(device).train()
    heads = MFPHeads(d_model=32, n_num=N_NUM, cardinalities=CARDS).to(device)
    projection = ProjectionHead(d_model=32).to(device)
    x_num, x_cat = (t.to(device) for t in _inputs())
    g = torch.Generator(device=device).manual_seed(0)
    masked_num, masked_cat, num_mask, cat_mask = mask_inputs(x_num, x_cat, 0.3, g)
    assert num_mask.device.type == "cuda"
    embedding = model(masked_num, masked_cat, num_mask=num_mask, generator=g)
    cat_logits, num_pred = heads(embedding)
    z = projection(model(x_num, x_cat, generator=g))
    loss, parts = combined_loss("both", mfp_weight=0.5, temperature=0.1, z1=z, z2=z.flip(0),
                                cat_logits=cat_logits, num_pred=num_pred, x_cat_true=x_cat, x_num_true=x_num,
                                cat_mask=cat_mask, num_mask=num_mask)
    loss.backward()
    assert embedding.device.type == "cuda" and torch.isfinite(loss)
    no_numeric = _model(n_num=0).to(device)
    assert no_numeric(x_num[:, :0], x_cat).device.type == "cuda"


def test_a_few_steps_of_both_objectives_lower_the_loss() -> None:
    # End to end through model, heads, masking and losses, as the trainer wires them.
    from engine.losses import combined_loss

    g = torch.Generator().manual_seed(0)
    model = _model(dropout=0.0)
    heads = MFPHeads(d_model=32, n_num=N_NUM, cardinalities=CARDS)
    projection = ProjectionHead(d_model=32, d_out=16)
    parameters = [*model.parameters(), *heads.parameters(), *projection.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=3e-3)
    x_num, x_cat = _inputs(n=64)
    x_cat[:, 1] = x_cat[:, 0] + 2  # a learnable relation between columns for MFP

    def step() -> float:
        view1 = x_num + 0.05 * torch.randn(x_num.shape, generator=g)
        view2 = x_num + 0.05 * torch.randn(x_num.shape, generator=g)
        z1, z2 = projection(model(view1, x_cat)), projection(model(view2, x_cat))
        masked_num, masked_cat, num_mask, cat_mask = mask_inputs(x_num, x_cat, 0.3, g)
        cat_logits, num_pred = heads(model(masked_num, masked_cat, num_mask=num_mask))
        loss, _ = combined_loss("both", mfp_weight=0.5, temperature=0.2, z1=z1, z2=z2,
                                cat_logits=cat_logits, num_pred=num_pred, x_cat_true=x_cat, x_num_true=x_num,
                                cat_mask=cat_mask, num_mask=num_mask)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    first = [step() for _ in range(3)]
    for _ in range(14):
        step()
    last = [step() for _ in range(3)]
    assert sum(last) < 0.8 * sum(first)
