"""Losses against slow NumPy references written from the papers, plus invariants (in the style of lightly)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.errors import UserError
from engine.losses import collapse_diagnostics, combined_loss, mfp_loss, nt_xent


def nt_xent_reference(z1: np.ndarray, z2: np.ndarray, temperature: float) -> float:
    """SimCLR eq. 1, one anchor at a time: -log(exp(sim(i, pos) / t) / sum_{k != i} exp(sim(i, k) / t))."""
    views = np.concatenate([z1, z2]).astype(np.float64)
    n_views = len(views)
    n = len(z1)

    def sim(a: int, b: int) -> float:
        return float(views[a] @ views[b] / (np.linalg.norm(views[a]) * np.linalg.norm(views[b])))

    total = 0.0
    for i in range(n_views):
        positive = (i + n) % n_views
        denominator = sum(math.exp(sim(i, k) / temperature) for k in range(n_views) if k != i)
        total += -math.log(math.exp(sim(i, positive) / temperature) / denominator)
    return total / n_views


def _views(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)


# --- NT-Xent -------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("d", [4, 64])
@pytest.mark.parametrize("n", [2, 7, 32])
def test_nt_xent_matches_numpy_reference(n: int, d: int, temperature: float) -> None:
    z1, z2 = _views(n, d, seed=n * 100 + d)
    z2 = z1 + 0.5 * z2  # partly aligned views, so the loss is neither trivial nor maximal
    expected = nt_xent_reference(z1.numpy(), z2.numpy(), temperature)
    assert nt_xent(z1, z2, temperature).item() == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_nt_xent_of_a_single_pair_is_zero() -> None:
    # With one record the positive is the only other view: softmax over one candidate.
    z1, z2 = _views(1, 8)
    assert nt_xent(z1, z2, 0.1).item() == pytest.approx(0.0, abs=1e-6)


def test_nt_xent_is_symmetric_in_the_views() -> None:
    z1, z2 = _views(16, 32)
    assert nt_xent(z1, z2, 0.1).item() == pytest.approx(nt_xent(z2, z1, 0.1).item(), rel=1e-6)


def test_nt_xent_is_invariant_to_a_joint_permutation_of_the_batch() -> None:
    z1, z2 = _views(16, 32)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    assert nt_xent(z1[perm], z2[perm], 0.1).item() == pytest.approx(nt_xent(z1, z2, 0.1).item(), rel=1e-5)


def test_nt_xent_breaks_when_only_one_view_is_permuted() -> None:
    # The pairing matters: shuffling one side turns positives into negatives.
    z1 = _views(16, 32)[0]
    z2 = z1 + 0.01 * _views(16, 32, seed=3)[0]
    perm = torch.roll(torch.arange(16), 1)
    assert nt_xent(z1, z2[perm], 0.1).item() > nt_xent(z1, z2, 0.1).item() + 1.0


def test_nt_xent_is_lower_for_aligned_views_than_random_ones() -> None:
    z1, noise = _views(32, 16)
    aligned = nt_xent(z1, z1 + 0.05 * noise, 0.1).item()
    unrelated = nt_xent(z1, noise, 0.1).item()
    assert aligned < unrelated
    assert unrelated > math.log(2 * 32 - 1) - 1.0  # random views sit near log(#candidates)


def test_nt_xent_is_finite_for_identical_views_and_gradients_are_finite() -> None:
    z = _views(8, 16)[0].requires_grad_(True)
    loss = nt_xent(z, z, 0.05)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(z.grad).all()


def test_nt_xent_computes_in_float32_under_autocast() -> None:
    z1, z2 = _views(16, 32)
    expected = nt_xent(z1, z2, 0.07)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        loss = nt_xent(z1, z2, 0.07)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def _nt_xent_plain(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent written the plain way (a float32 product and a boolean mask), for autograd to differentiate."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    logits = (z @ z.T / temperature).masked_fill(torch.eye(len(z), dtype=torch.bool), float("-inf"))
    n = len(z1)
    return F.cross_entropy(logits, torch.cat([torch.arange(n) + n, torch.arange(n)]))


def _nt_xent_gradients(loss_fn, z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    z1, z2 = z1.clone().requires_grad_(True), z2.clone().requires_grad_(True)
    loss_fn(z1, z2, temperature).backward()
    return z1.grad, z2.grad


@pytest.mark.parametrize("n, d, temperature", [(2, 4, 0.5), (16, 32, 0.07), (64, 8, 0.1)])
def test_nt_xent_gradient_matches_plain_autograd_in_float32(n: int, d: int, temperature: float) -> None:
    z1, z2 = _views(n, d, seed=n + d)
    z2 = z1 + 0.5 * z2
    for got, expected in zip(_nt_xent_gradients(nt_xent, z1, z2, temperature), _nt_xent_gradients(_nt_xent_plain, z1, z2, temperature)):
        assert got.dtype == torch.float32
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_nt_xent_gradient_of_bfloat16_views_is_the_float32_gradient_to_bfloat16_precision() -> None:
    # bfloat16 views (what autocast hands over) get their backward products in bfloat16.
    z1, z2 = _views(64, 32, seed=5)
    z1, z2 = z1.to(torch.bfloat16), (z1 + 0.5 * z2).to(torch.bfloat16)
    got = _nt_xent_gradients(nt_xent, z1, z2, 0.07)
    expected = _nt_xent_gradients(_nt_xent_plain, z1.float(), z2.float(), 0.07)
    for g, e in zip(got, expected):
        assert g.dtype == torch.bfloat16
        assert ((g.float() - e).norm() / e.norm()).item() < 2e-2
    # The loss value itself is the float32 one.
    assert nt_xent(z1, z2, 0.07).item() == pytest.approx(_nt_xent_plain(z1, z2, 0.07).item(), rel=1e-6)


def test_nt_xent_rejects_mismatched_views_and_bad_temperature() -> None:
    z1, z2 = _views(4, 8)
    with pytest.raises(UserError, match="z1 and z2"):
        nt_xent(z1, z2[:3], 0.1)
    with pytest.raises(UserError, match="temperature"):
        nt_xent(z1, z2, 0.0)


# --- masked feature prediction ---------------------------------------------------------------------

CARDS = [3, 5, 9]


def _mfp_batch(n: int = 12, n_num: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    cat_logits = [torch.randn(n, card, generator=g) for card in CARDS]
    x_cat_true = torch.stack([torch.randint(1, card, (n,), generator=g) for card in CARDS], dim=1)  # never 0
    num_pred = torch.randn(n, n_num, generator=g)
    x_num_true = torch.randn(n, n_num, generator=g)
    cat_mask = torch.rand(n, len(CARDS), generator=g) < 0.4
    num_mask = torch.rand(n, n_num, generator=g) < 0.4
    cat_mask[0, 0] = num_mask[0, 0] = True  # at least one masked cell on each side
    return cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask


def mfp_reference(cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask, cat_weight):
    """Loop over cells: mean -log softmax(true) over masked categorical cells, mean squared error over masked numeric ones."""
    ce_terms = []
    for col, logits in enumerate(cat_logits):
        logits = logits.numpy().astype(np.float64)
        for row in range(len(logits)):
            if cat_mask[row, col]:
                log_z = math.log(np.exp(logits[row]).sum())
                ce_terms.append(log_z - logits[row, x_cat_true[row, col]])
    se_terms = [
        (float(num_pred[r, c]) - float(x_num_true[r, c])) ** 2
        for r in range(num_pred.shape[0]) for c in range(num_pred.shape[1]) if num_mask[r, c]
    ]
    ce, mse = float(np.mean(ce_terms)), float(np.mean(se_terms))
    return cat_weight * ce + (1 - cat_weight) * mse, ce, mse


@pytest.mark.parametrize("cat_weight", [0.0, 0.3, 0.5, 1.0])
def test_mfp_loss_matches_cell_by_cell_reference(cat_weight: float) -> None:
    batch = _mfp_batch()
    expected, ce, mse = mfp_reference(*batch, cat_weight)
    loss, parts = mfp_loss(*batch, cat_weight=cat_weight)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert parts["mfp_cat"] == pytest.approx(ce, rel=1e-5)
    assert parts["mfp_num"] == pytest.approx(mse, rel=1e-5)


def test_mfp_loss_ignores_predictions_for_unmasked_cells() -> None:
    cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask = _mfp_batch()
    before, _ = mfp_loss(cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask)
    scrambled_logits = [torch.where(cat_mask[:, [i]], logits, logits + 50 * torch.randn_like(logits)) for i, logits in enumerate(cat_logits)]
    scrambled_num = torch.where(num_mask, num_pred, num_pred + 50.0)
    scrambled_truth = torch.where(num_mask, x_num_true, -7.0)
    after, _ = mfp_loss(scrambled_logits, scrambled_num, x_cat_true, scrambled_truth, cat_mask, num_mask)
    assert after.item() == pytest.approx(before.item(), rel=1e-6)
    # ...while a masked cell's prediction does count.
    moved = num_pred.clone()
    moved[0, 0] += 3.0
    changed, _ = mfp_loss(cat_logits, moved, x_cat_true, x_num_true, cat_mask, num_mask)
    assert changed.item() != pytest.approx(before.item(), rel=1e-6)


def test_mfp_loss_gives_no_gradient_to_unmasked_cells() -> None:
    cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask = _mfp_batch()
    cat_logits = [logits.requires_grad_(True) for logits in cat_logits]
    num_pred.requires_grad_(True)
    mfp_loss(cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask)[0].backward()
    for i, logits in enumerate(cat_logits):
        assert (logits.grad[~cat_mask[:, i]] == 0).all()
        assert (logits.grad[cat_mask[:, i]].abs().sum(dim=1) > 0).all()
    assert (num_pred.grad[~num_mask] == 0).all()


def test_mfp_loss_without_masked_cells_is_zero_and_finite() -> None:
    cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask = _mfp_batch()
    loss, parts = mfp_loss(cat_logits, num_pred, x_cat_true, x_num_true, torch.zeros_like(cat_mask), torch.zeros_like(num_mask))
    assert loss.item() == 0.0
    assert parts == {"mfp_cat": 0.0, "mfp_num": 0.0}


def test_mfp_loss_without_categorical_columns_is_the_numeric_mse() -> None:
    _, num_pred, _, x_num_true, _, num_mask = _mfp_batch()
    n = num_pred.shape[0]
    empty_cat = torch.zeros(n, 0, dtype=torch.long)
    loss, parts = mfp_loss([], num_pred, empty_cat, x_num_true, empty_cat.bool(), num_mask, cat_weight=0.5)
    expected = ((num_pred - x_num_true)[num_mask] ** 2).mean().item()
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert parts["mfp_cat"] == 0.0


def test_mfp_loss_without_numeric_columns_is_the_categorical_cross_entropy() -> None:
    cat_logits, _, x_cat_true, _, cat_mask, _ = _mfp_batch()
    empty_num = torch.zeros(x_cat_true.shape[0], 0)
    loss, parts = mfp_loss(cat_logits, None, x_cat_true, empty_num, cat_mask, empty_num.bool(), cat_weight=0.5)
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(parts["mfp_cat"], rel=1e-6)
    assert parts["mfp_num"] == 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mfp_cross_entropy_matches_per_column_cross_entropy_for_far_apart_logits(dtype: torch.dtype) -> None:
    # Columns whose logits sit hundreds apart (and spread widely inside a column) need each
    # column's own shift: one shared shift would underflow a whole column to log(0).
    cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask = _mfp_batch(n=40)
    centres, spreads = [600.0, -900.0, 0.0], [1.0, 80.0, 200.0]
    cat_logits = [(logits * spread + centre).to(dtype).requires_grad_(True) for logits, centre, spread in zip(cat_logits, centres, spreads)]
    loss, parts = mfp_loss(cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask, cat_weight=1.0)
    loss.backward()
    ours = [logits.grad.clone() for logits in cat_logits]

    expected = sum(
        torch.nn.functional.cross_entropy(logits.float(), torch.where(cat_mask[:, i], x_cat_true[:, i], -100), reduction="sum")
        for i, logits in enumerate(cat_logits)
    ) / cat_mask.sum()
    for logits in cat_logits:
        logits.grad = None
    expected.backward()
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["mfp_cat"] == pytest.approx(expected.item(), rel=1e-5)
    for got, logits in zip(ours, cat_logits):
        assert got.dtype == dtype
        assert torch.allclose(got.float(), logits.grad.float(), atol=1e-6)


def test_mfp_loss_rejects_a_head_count_that_does_not_match_the_columns() -> None:
    cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask = _mfp_batch()
    with pytest.raises(UserError, match="categorical heads"):
        mfp_loss(cat_logits[:2], num_pred, x_cat_true, x_num_true, cat_mask, num_mask)


# --- combined objective --------------------------------------------------------------------------


def test_combined_loss_weights_the_two_objectives() -> None:
    z1, z2 = _views(8, 16)
    cat_logits, num_pred, x_cat_true, x_num_true, cat_mask, num_mask = _mfp_batch(n=8)
    mfp_args = dict(cat_logits=cat_logits, num_pred=num_pred, x_cat_true=x_cat_true, x_num_true=x_num_true,
                    cat_mask=cat_mask, num_mask=num_mask, cat_weight=0.5)
    contrastive = nt_xent(z1, z2, 0.1).item()
    mfp, mfp_parts = mfp_loss(**mfp_args)

    loss, parts = combined_loss("both", mfp_weight=0.25, temperature=0.1, z1=z1, z2=z2, **mfp_args)
    assert loss.item() == pytest.approx(0.75 * contrastive + 0.25 * mfp.item(), rel=1e-5)
    assert parts["contrastive"] == pytest.approx(contrastive, rel=1e-6)
    assert parts["mfp"] == pytest.approx(mfp.item(), rel=1e-6)
    assert parts["mfp_cat"] == pytest.approx(mfp_parts["mfp_cat"], rel=1e-6)
    assert parts["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert all(type(v) is float for v in parts.values())

    only_contrastive, parts = combined_loss("contrastive", mfp_weight=0.25, temperature=0.1, z1=z1, z2=z2)
    assert only_contrastive.item() == pytest.approx(contrastive, rel=1e-6)
    assert parts["mfp"] == 0.0 and set(parts) == {"loss", "contrastive", "mfp", "mfp_cat", "mfp_num"}

    only_mfp, parts = combined_loss("mfp", mfp_weight=0.25, temperature=0.1, **mfp_args)
    assert only_mfp.item() == pytest.approx(mfp.item(), rel=1e-6)
    assert parts["contrastive"] == 0.0


def test_combined_loss_is_differentiable_and_rejects_missing_inputs() -> None:
    z1, z2 = _views(8, 16)
    z1.requires_grad_(True)
    loss, _ = combined_loss("contrastive", mfp_weight=0.5, temperature=0.1, z1=z1, z2=z2)
    loss.backward()
    assert z1.grad is not None and z1.grad.abs().sum() > 0
    with pytest.raises(UserError, match="needs z1 and z2"):
        combined_loss("both", mfp_weight=0.5, temperature=0.1)
    with pytest.raises(UserError, match="objective"):
        combined_loss("simclr", mfp_weight=0.5, temperature=0.1, z1=z1, z2=z2)


# --- collapse diagnostics ------------------------------------------------------------------------


def test_collapse_diagnostics_flag_a_collapsed_batch() -> None:
    point = torch.randn(1, 32)
    collapsed = collapse_diagnostics(point.repeat(64, 1), point.repeat(64, 1))
    assert collapsed["std_mean"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["std_min"] == pytest.approx(0.0, abs=1e-6)
    assert collapsed["cosine_gap"] == pytest.approx(0.0, abs=1e-5)


def test_collapse_diagnostics_of_healthy_aligned_views() -> None:
    z1, noise = _views(512, 32)
    healthy = collapse_diagnostics(z1, z1 + 0.1 * noise)
    assert healthy["std_reference"] == pytest.approx(32 ** -0.5)
    assert healthy["std_mean"] == pytest.approx(healthy["std_reference"], rel=0.1)
    assert healthy["std_min"] > 0.5 * healthy["std_reference"]
    assert healthy["pos_cosine"] > 0.95
    assert abs(healthy["neg_cosine"]) < 0.05
    assert healthy["cosine_gap"] == pytest.approx(healthy["pos_cosine"] - healthy["neg_cosine"])


def test_collapse_diagnostics_negatives_are_the_off_diagonal_pairs() -> None:
    z1, z2 = _views(5, 3)
    cosine = F.normalize(z1, dim=1) @ F.normalize(z2, dim=1).T
    off_diagonal = cosine[~torch.eye(5, dtype=torch.bool)]
    figures = collapse_diagnostics(z1, z2)
    assert figures["neg_cosine"] == pytest.approx(off_diagonal.mean().item(), abs=1e-6)
    assert figures["pos_cosine"] == pytest.approx(cosine.diagonal().mean().item(), abs=1e-6)
