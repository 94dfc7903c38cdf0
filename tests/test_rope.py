"""Pure RoPE and coordinate functions against hand-computed values."""

import math

import pytest
import torch

from ltx2_diffusers.models.rope import (
    apply_rotary,
    audio_coordinates,
    rope_angles,
    rope_frequencies,
    rotary_table,
    video_coordinates,
)


def test_frequencies_increase_from_half_pi_to_theta_half_pi():
    freqs = rope_frequencies(num_axes=3, inner_dim=4096, theta=10000.0)
    assert freqs.shape == (682,)  # K = 4096 // 6
    assert freqs[0].item() == pytest.approx(math.pi / 2)
    assert freqs[-1].item() == pytest.approx(5000 * math.pi, rel=1e-6)
    assert bool((freqs[1:] > freqs[:-1]).all())
    k = 100
    assert freqs[k].item() == pytest.approx(math.pi / 2 * 10000 ** (k / 681), rel=1e-6)


def test_float64_grid_differs_from_float32_grid():
    f64 = rope_frequencies(3, 4096, 10000.0, double_precision=True)
    f32 = rope_frequencies(3, 4096, 10000.0, double_precision=False)
    assert f64.dtype == f32.dtype == torch.float32
    assert 0 < (f64 - f32).abs().max().item() < 0.01


def test_angles_are_centred_fractions_frequency_major():
    coords = torch.tensor([[[[0.0, 1 / 24]], [[0.0, 32.0]], [[32.0, 64.0]]]])  # [1, 3, 1, 2]
    freqs = rope_frequencies(3, 12, 10000.0)  # K = 2: π/2 and 5000π
    angles = rope_angles(coords, (20, 2048, 2048), freqs)
    u = [(1 / 48) / 20, 16 / 2048, 48 / 2048]
    expected = [w * (2 * ui - 1) for w in (math.pi / 2, 5000 * math.pi) for ui in u]
    assert angles.shape == (1, 1, 6)
    torch.testing.assert_close(angles[0, 0], torch.tensor(expected), rtol=1e-6, atol=1e-4)


def test_split_table_pads_identity_at_the_front():
    coords = video_coordinates(2, 2, 3, fps=24.0)
    freqs = rope_frequencies(3, 4096, 10000.0)
    table = rotary_table(rope_angles(coords, (20, 2048, 2048), freqs), 4096, 32, "split", torch.float32)
    assert table.cos.shape == (1, 12, 32, 64)  # 2048 angles (2 identity + 2046): 64 per head of width 128
    assert bool((table.cos[:, :, 0, :2] == 1).all()) and bool((table.sin[:, :, 0, :2] == 0).all())
    assert not bool((table.sin[:, :, 0, 2:] == 0).all())


def test_split_rotation_pairs_channel_j_with_j_plus_half():
    phi = 0.3
    table = rotary_table(torch.tensor([[[phi, 0.0]]]), inner_dim=4, num_heads=1, rope_type="split",
                         dtype=torch.float32)
    out = apply_rotary(torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]), table)
    torch.testing.assert_close(out, torch.tensor([[[math.cos(phi), 0.0, math.sin(phi), 0.0]]]))


def test_interleaved_rotation_pairs_adjacent_channels():
    phi = 0.3
    table = rotary_table(torch.tensor([[[phi, 0.0]]]), inner_dim=4, num_heads=1, rope_type="interleaved",
                         dtype=torch.float32)
    out = apply_rotary(torch.tensor([[[1.0, 0.0, 0.0, 1.0]]]), table)
    torch.testing.assert_close(out, torch.tensor([[[math.cos(phi), math.sin(phi), 0.0, 1.0]]]))


def test_rotation_preserves_norm():
    x = torch.randn(2, 7, 64)
    angles = torch.randn(2, 7, 30)
    for rope_type in ("split", "interleaved"):
        table = rotary_table(angles, 64, 4, rope_type, torch.float32)
        torch.testing.assert_close(apply_rotary(x, table).norm(dim=-1), x.norm(dim=-1))


def test_video_coordinates_causal_first_frame_and_pixels():
    coords = video_coordinates(3, 2, 2, fps=24.0, batch_size=2)
    assert coords.shape == (2, 3, 12, 2)
    t = coords[0, 0, ::4]  # one token per latent frame
    torch.testing.assert_close(t, torch.tensor([[0.0, 1 / 24], [1 / 24, 9 / 24], [9 / 24, 17 / 24]]))
    torch.testing.assert_close(coords[0, 1, :4], torch.tensor([[0.0, 32.0], [0.0, 32.0], [32.0, 64.0], [32.0, 64.0]]))
    torch.testing.assert_close(coords[0, 2, :4], torch.tensor([[0.0, 32.0], [32.0, 64.0], [0.0, 32.0], [32.0, 64.0]]))


def test_video_coordinates_in_bf16_round_like_the_reference():
    last = video_coordinates(16, 1, 1, fps=24.0)[0, 0, -1]  # 121 frames at 24 fps
    torch.testing.assert_close(last, torch.tensor([113 / 24, 121 / 24]))
    last_bf16 = video_coordinates(16, 1, 1, fps=24.0, dtype=torch.bfloat16)[0, 0, -1]
    assert last_bf16.tolist() == [4.71875, 5.03125]


def test_audio_coordinates_in_seconds():
    coords = audio_coordinates(3, batch_size=2)
    assert coords.shape == (2, 1, 3, 2) and coords.dtype == torch.float32
    torch.testing.assert_close(coords[0, 0], torch.tensor([[0.0, 0.01], [0.01, 0.05], [0.05, 0.09]]))


@pytest.mark.parametrize("bad", [dict(latent_frames=0), dict(latent_height=2.5), dict(fps=0.0), dict(fps=-24.0)])
def test_video_coordinates_reject_bad_sizes(bad):
    args = dict(latent_frames=2, latent_height=2, latent_width=2, fps=24.0)
    args.update(bad)
    with pytest.raises(ValueError):
        video_coordinates(**args)


def test_angles_reject_wrong_coordinate_shape():
    with pytest.raises(ValueError, match=r"\[batch, axes, tokens, 2\]"):
        rope_angles(torch.zeros(1, 3, 4), (20, 2048, 2048), rope_frequencies(3, 48, 1e4))
    with pytest.raises(ValueError, match="3 axes"):
        rope_angles(torch.zeros(1, 3, 4, 2), (20,), rope_frequencies(1, 48, 1e4))
