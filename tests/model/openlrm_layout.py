"""OpenLRM v1.1's state-dict layout, written out from its published architecture, independently of our modules.

``expected_shapes(config)`` is the key -> shape table that a ``ModelLRM`` checkpoint with this
``config.json`` holds (DINOv2 weights without ``mask_token``; ``nn.MultiheadAttention`` naming).
"""

from __future__ import annotations

# encoder_model_name -> (width, depth, trained position grid side)
ENCODERS = {"dinov2_vits14_reg": (384, 12, 37), "dinov2_vitb14_reg": (768, 12, 37), "dinov2_tiny14_reg": (32, 2, 8)}


def expected_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    e, depth, grid = ENCODERS[cfg["encoder_model_name"]]
    assert e == cfg["encoder_feat_dim"]
    d, m, c, low = cfg["transformer_dim"], cfg["camera_embed_dim"], cfg["triplane_dim"], cfg["triplane_low_res"]
    t: dict[str, tuple[int, ...]] = {
        "encoder.model.cls_token": (1, 1, e),
        "encoder.model.pos_embed": (1, 1 + grid * grid, e),
        "encoder.model.register_tokens": (1, 4, e),
        "encoder.model.patch_embed.proj.weight": (e, 3, 14, 14),
        "encoder.model.patch_embed.proj.bias": (e,),
        "encoder.model.norm.weight": (e,),
        "encoder.model.norm.bias": (e,),
    }
    for i in range(depth):
        b = f"encoder.model.blocks.{i}."
        t.update({
            b + "norm1.weight": (e,), b + "norm1.bias": (e,),
            b + "attn.qkv.weight": (3 * e, e), b + "attn.qkv.bias": (3 * e,),
            b + "attn.proj.weight": (e, e), b + "attn.proj.bias": (e,),
            b + "ls1.gamma": (e,),
            b + "norm2.weight": (e,), b + "norm2.bias": (e,),
            b + "mlp.fc1.weight": (4 * e, e), b + "mlp.fc1.bias": (4 * e,),
            b + "mlp.fc2.weight": (e, 4 * e), b + "mlp.fc2.bias": (e,),
            b + "ls2.gamma": (e,),
        })
    t.update({
        "camera_embedder.mlp.0.weight": (m, 16), "camera_embedder.mlp.0.bias": (m,),
        "camera_embedder.mlp.2.weight": (m, m), "camera_embedder.mlp.2.bias": (m,),
        "pos_embed": (1, 3 * low * low, d),
        "transformer.norm.weight": (d,), "transformer.norm.bias": (d,),
        "upsampler.weight": (d, c, 2, 2), "upsampler.bias": (c,),
        "synthesizer.decoder.net.0.weight": (64, 3 * c), "synthesizer.decoder.net.0.bias": (64,),
        "synthesizer.decoder.net.2.weight": (64, 64), "synthesizer.decoder.net.2.bias": (64,),
        "synthesizer.decoder.net.4.weight": (64, 64), "synthesizer.decoder.net.4.bias": (64,),
        "synthesizer.decoder.net.6.weight": (4, 64), "synthesizer.decoder.net.6.bias": (4,),
    })
    for i in range(cfg["transformer_layers"]):
        b = f"transformer.layers.{i}."
        for n in ("norm1", "norm2", "norm3"):
            t.update({
                f"{b}{n}.norm.weight": (d,), f"{b}{n}.norm.bias": (d,),
                f"{b}{n}.mlp.1.weight": (2 * d, m), f"{b}{n}.mlp.1.bias": (2 * d,),
            })
        if e == d:
            t[b + "cross_attn.in_proj_weight"] = (3 * d, d)
        else:
            t.update({
                b + "cross_attn.q_proj_weight": (d, d),
                b + "cross_attn.k_proj_weight": (d, e),
                b + "cross_attn.v_proj_weight": (d, e),
            })
        t.update({
            b + "cross_attn.out_proj.weight": (d, d),
            b + "self_attn.in_proj_weight": (3 * d, d),
            b + "self_attn.out_proj.weight": (d, d),
            b + "mlp.0.weight": (4 * d, d), b + "mlp.0.bias": (4 * d,),
            b + "mlp.3.weight": (d, 4 * d), b + "mlp.3.bias": (d,),
        })
    return t
