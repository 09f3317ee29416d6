"""Tiny random-weight diffusers models and a complete tiny WanPipeline, built offline from configs.

Shapes are chosen so every model runs in milliseconds on CPU; the platform notes list configs known to work.
"""

from __future__ import annotations

import diffusers
import torch

# Latent input of the tiny Wan: (B, C, F, H, W) = (B, 16, 5, 8, 8), patch (1, 2, 2) -> grid 5 x 4 x 4.
WAN_FRAMES, WAN_SIZE, WAN_TEXT = 5, 8, 12


def tiny_wan(seed: int = 0, layers: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=64,
        num_layers=layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    ).eval()


def wan_inputs(batch: int = 1, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(batch, 16, WAN_FRAMES, WAN_SIZE, WAN_SIZE, generator=g),
        "timestep": torch.full((batch,), 500),
        "encoder_hidden_states": torch.randn(batch, WAN_TEXT, 32, generator=g),
    }


def tiny_cogvideox(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return diffusers.CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=4,
        out_channels=4,
        time_embed_dim=2,
        text_embed_dim=8,
        num_layers=2,
        sample_width=8,
        sample_height=8,
        sample_frames=8,
        patch_size=2,
        temporal_compression_ratio=4,
        max_text_seq_length=8,
        use_rotary_positional_embeddings=True,
    ).eval()


def cogvideox_inputs(batch: int = 1, frames: int = 4, seed: int = 1) -> dict[str, object]:
    """(B, F, C, H, W) = (B, 4, 4, 8, 8), patch 2 -> grid 4 x 4 x 4; 8 text tokens first."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    g = torch.Generator().manual_seed(seed)
    rope = get_3d_rotary_pos_embed(
        embed_dim=16, crops_coords=((0, 0), (4, 4)), grid_size=(4, 4), temporal_size=frames
    )
    return {
        "hidden_states": torch.randn(batch, frames, 4, 8, 8, generator=g),
        "encoder_hidden_states": torch.randn(batch, 8, 8, generator=g),
        "timestep": torch.full((batch,), 10),
        "image_rotary_emb": rope,
    }


def tiny_hunyuan(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return diffusers.HunyuanVideoTransformer3DModel(
        in_channels=4,
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=16,
        num_layers=1,
        num_single_layers=1,
        num_refiner_layers=1,
        patch_size=2,
        patch_size_t=1,
        text_embed_dim=16,
        pooled_projection_dim=8,
        rope_axes_dim=(4, 6, 6),
        guidance_embeds=True,
    ).eval()


def hunyuan_inputs(valid_text: tuple[int, ...] = (4, 2), seed: int = 1) -> dict[str, torch.Tensor]:
    """(B, C, F, H, W) = (B, 4, 4, 8, 8), patch (1, 2, 2) -> grid 4 x 4 x 4; 6 text tokens last, padded
    after ``valid_text[b]`` tokens."""
    g = torch.Generator().manual_seed(seed)
    batch = len(valid_text)
    mask = torch.zeros(batch, 6, dtype=torch.long)
    for b, n in enumerate(valid_text):
        mask[b, :n] = 1
    return {
        "hidden_states": torch.randn(batch, 4, 4, 8, 8, generator=g),
        "timestep": torch.full((batch,), 10),
        "encoder_hidden_states": torch.randn(batch, 6, 16, generator=g),
        "encoder_attention_mask": mask,
        "pooled_projections": torch.randn(batch, 8, generator=g),
        "guidance": torch.full((batch,), 5000.0),
    }


def tiny_ltx(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return diffusers.LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=12,
        cross_attention_dim=24,
        num_layers=2,
        caption_channels=16,
    ).eval()


def ltx_inputs(batch: int = 1, seed: int = 1) -> dict[str, object]:
    """Packed (B, L, C) latents of a 4 x 4 x 4 grid, 5 caption tokens."""
    g = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(batch, 4 * 4 * 4, 8, generator=g),
        "encoder_hidden_states": torch.randn(batch, 5, 16, generator=g),
        "timestep": torch.full((batch,), 10),
        "encoder_attention_mask": torch.ones(batch, 5),
        "num_frames": 4,
        "height": 4,
        "width": 4,
    }


def train_tokenizer(max_length: int) -> object:
    """A WordPiece tokenizer trained in memory on a few captions, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"])
    corpus = [
        "a red ball rolls across a wooden table",
        "a cat walks through a sunny garden at noon",
        "two people talk in a small cafe by the river",
        "the camera pans over snowy mountains at dawn",
    ]
    tk.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_max_length=max_length,
    )


def build_tiny_wan_pipeline() -> object:
    """A complete WanPipeline: trained WordPiece tokenizer, tiny UMT5, tiny AutoencoderKLWan, tiny Wan."""
    from transformers import UMT5Config, UMT5EncoderModel

    tokenizer = train_tokenizer(512)
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
        )
    ).eval()
    vae = diffusers.AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    ).eval()
    return diffusers.WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=tiny_wan(seed=3),
    )


def build_tiny_cogvideox_pipeline() -> object:
    """A complete CogVideoXPipeline: trained tokenizer, tiny T5, tiny AutoencoderKLCogVideoX (8x spatial,
    4x temporal), the tiny CogVideoX transformer."""
    from transformers import T5Config, T5EncoderModel

    tokenizer = train_tokenizer(226)
    torch.manual_seed(0)
    text_encoder = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=8,
            d_kv=4,
            d_ff=16,
            num_layers=1,
            num_heads=2,
            relative_attention_num_buckets=8,
        )
    ).eval()
    vae = diffusers.AutoencoderKLCogVideoX(
        in_channels=3,
        out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8),
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
    ).eval()
    return diffusers.CogVideoXPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=tiny_cogvideox(),
        scheduler=diffusers.CogVideoXDDIMScheduler(),
    )


def build_tiny_hunyuan_pipeline() -> object:
    """A complete HunyuanVideoPipeline: trained tokenizers, tiny Llama and CLIP text encoders, tiny
    AutoencoderKLHunyuanVideo (8x spatial, 4x temporal), the tiny HunyuanVideo transformer."""
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    tokenizer, tokenizer_2 = train_tokenizer(256), train_tokenizer(77)
    torch.manual_seed(0)
    text_encoder = LlamaModel(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=3,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
    ).eval()
    text_encoder_2 = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer_2),
            hidden_size=8,
            intermediate_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=8,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=0,
        )
    ).eval()
    vae = diffusers.AutoencoderKLHunyuanVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        norm_num_groups=2,
        spatial_compression_ratio=8,
        temporal_compression_ratio=4,
    ).eval()
    return diffusers.HunyuanVideoPipeline(
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=tiny_hunyuan(),
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
    )
