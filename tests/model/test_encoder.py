"""The DINOv2-with-registers encoder: token layout and position-embedding resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lrm_dist.model.encoder import DinoV2Encoder


def test_tokens_are_cls_plus_patches():
    torch.manual_seed(0)
    enc = DinoV2Encoder("dinov2_tiny14_reg").eval()
    out = enc(torch.rand(2, 3, 70, 42))
    assert out.shape == (2, 1 + 5 * 3, 32)
    # Final LayerNorm (unit weight, zero bias at init): every token has ~zero mean and unit variance.
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)


def test_position_embedding_is_kept_at_its_grid_and_resized_otherwise():
    torch.manual_seed(0)
    vit = DinoV2Encoder("dinov2_tiny14_reg").model
    assert vit.position_embedding(8, 8) is vit.pos_embed
    resized = vit.position_embedding(4, 6)
    assert resized.shape == (1, 1 + 24, 32)
    torch.testing.assert_close(resized[:, 0], vit.pos_embed[:, 0])
    grid = vit.pos_embed[:, 1:].reshape(1, 8, 8, 32).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(4, 6), mode="bicubic", antialias=True).permute(0, 2, 3, 1).reshape(1, 24, 32)
    torch.testing.assert_close(resized[:, 1:], ref)


def test_registers_change_the_output_but_are_dropped_from_it():
    torch.manual_seed(0)
    enc = DinoV2Encoder("dinov2_tiny14_reg").eval()
    image = torch.rand(1, 3, 56, 56)
    before = enc(image)
    with torch.no_grad():
        enc.model.register_tokens.add_(1.0)
    after = enc(image)
    assert before.shape == after.shape == (1, 17, 32)
    assert not torch.allclose(before, after)


def test_frozen_encoder_has_no_trainable_parameters():
    enc = DinoV2Encoder("dinov2_tiny14_reg", freeze=True)
    assert not any(p.requires_grad for p in enc.parameters())
