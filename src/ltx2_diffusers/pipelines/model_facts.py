"""What a generation plan needs to know about the pipeline's components, read from their configs (never from
weights), and the defaults of the LTX version those configs describe.

:class:`PipelineFacts` is built from loaded components (:meth:`PipelineFacts.from_components`) or from a pipeline
folder's config files alone (:meth:`PipelineFacts.from_folder`, which builds each component on the meta device), so
the command line can plan and check a call before any weight is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from ..models.audio_processing import waveform_length
from ..models.tiling import VideoTiling
from ..schedulers.scheduling_ltx2 import LTX2Scheduler
from .compatibility import component_drifts, component_mismatches
from .defaults import LTX_2_0, LTX_2_3, ModelDefaults, model_version

# ----------------------------------------------------------------------------------------------------------------
# Facts
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterFacts:
    """LoRA adapters of a transformer: loaded, active, and fused into the weights."""

    loaded: tuple[str, ...] = ()
    active: tuple[str, ...] = ()
    fused: tuple[str, ...] = ()

    @classmethod
    def of(cls, model: torch.nn.Module) -> AdapterFacts:
        loaded = tuple(getattr(model, "peft_config", None) or {})
        if not loaded:
            return cls()
        fused = {name for m in model.modules() for name in getattr(m, "merged_adapters", ())}
        return cls(loaded, tuple(model.active_adapters()), tuple(sorted(fused)))


@dataclass(frozen=True)
class TransformerFacts:
    """What the plan uses of a transformer's config."""

    num_layers: int
    in_channels: int
    audio_in_channels: int
    video_width: int
    audio_width: int
    dtype_bytes: int
    adapters: AdapterFacts = AdapterFacts()
    text_widths: tuple[int, int] | None = None  # video / audio text-context widths (None: not checked)

    @classmethod
    def of(cls, model: torch.nn.Module) -> TransformerFacts:
        c = model.config
        return cls(c.num_layers, c.in_channels, c.audio_in_channels, c.num_attention_heads * c.attention_head_dim,
                   c.audio_num_attention_heads * c.audio_attention_head_dim, _dtype_bytes(model),
                   AdapterFacts.of(model), tuple(model.text_widths))


@dataclass(frozen=True)
class PipelineFacts:
    """The components' facts a :class:`~ltx2_diffusers.pipelines.plan.GenerationPlan` is built from.

    Args:
        defaults: the LTX version's reference defaults.
        transformer: the denoising transformer's facts.
        spatial_compression / temporal_compression: pixels per latent cell along height/width and time.
        decoder_width: channels of the VAE decoder's last stage, per output pixel after unpatchifying (memory).
        vae_dtype_bytes: bytes per element the VAE computes in.
        audio_sample_rate / audio_hop_length / audio_compression / audio_causal: the audio VAE's mel grid.
        vocoder_rate: output sample rate of the vocoder (Hz).
        vocoder_samples_per_mel_frame: waveform samples the vocoder makes per mel frame (240 for LTX-2.0's 24 kHz
            vocoder, 480 for LTX-2.3's 48 kHz one); ``None``: ``vocoder_rate`` times the mel hop's duration.
        register_multiple: text lengths must be a multiple of this (the connectors' registers).
        has_text_encoder: a text encoder and tokenizer are attached (else prompts must come as embeddings).
        upsampler: ``None`` without a latent upsampler, else ``(spatial_factor, temporal_factor)``.
        vae_tiling: the VAE's own tiling when ``vae.enable_tiling()`` was called, else ``None``.
        scheduler: the scheduler whose σ lists the plan uses (never stepped by the plan).
        memory_bytes: memory of the device that runs the call (``None``: unknown, no bound).
        mismatches: what the components disagree on (:func:`~.compatibility.component_mismatches`); a plan refuses
            to run with any.
        drifts: disagreements that run but differ from training (:func:`~.compatibility.component_drifts`);
            logged once.
    """

    defaults: ModelDefaults
    transformer: TransformerFacts
    spatial_compression: int
    temporal_compression: int
    decoder_width: float
    vae_dtype_bytes: int
    audio_sample_rate: int
    audio_hop_length: int
    audio_compression: int
    audio_causal: bool
    vocoder_rate: int
    register_multiple: int
    has_text_encoder: bool
    upsampler: tuple[float, float] | None
    vae_tiling: VideoTiling | None
    scheduler: LTX2Scheduler
    memory_bytes: int | None = None
    vocoder_samples_per_mel_frame: int | None = None
    mismatches: tuple[str, ...] = ()
    drifts: tuple[str, ...] = ()

    @property
    def samples_per_mel_frame(self) -> int:
        """Output waveform samples per mel frame (see ``vocoder_samples_per_mel_frame``)."""
        if self.vocoder_samples_per_mel_frame is not None:
            return self.vocoder_samples_per_mel_frame
        return round(self.vocoder_rate * self.audio_hop_length / self.audio_sample_rate)

    def waveform_samples(self, audio_tokens: int) -> int:
        """Samples of the waveform the audio VAE and vocoder decode from ``audio_tokens`` latents."""
        return waveform_length(audio_tokens, self.samples_per_mel_frame, self.audio_compression, self.audio_causal)

    @classmethod
    def from_components(
        cls, *, transformer: torch.nn.Module, vae: torch.nn.Module, audio_vae: torch.nn.Module,
        vocoder: torch.nn.Module, connectors: torch.nn.Module, scheduler: LTX2Scheduler,
        latent_upsampler: torch.nn.Module | None, has_text_encoder: bool, device: torch.device | None = None,
    ) -> PipelineFacts:
        """The facts of loaded (or meta-device) components, with what they disagree on (``mismatches``)."""
        vc, ac = vae.config, audio_vae.config
        upsampler = None
        if latent_upsampler is not None:
            u = latent_upsampler.config
            spatial = float(u.rational_spatial_scale) if u.use_rational_resampler else 2.0
            upsampler = (spatial if u.spatial_upsample else 1.0, 2.0 if u.temporal_upsample else 1.0)
        return cls(
            defaults=LTX_2_3 if model_version(transformer.config) == "2.3" else LTX_2_0,
            transformer=TransformerFacts.of(transformer),
            spatial_compression=vae.spatial_compression_ratio,
            temporal_compression=vae.temporal_compression_ratio,
            decoder_width=min(vc.decoder_block_out_channels) / (vc.patch_size ** 2 * vc.patch_size_t),
            vae_dtype_bytes=_dtype_bytes(vae),
            audio_sample_rate=ac.sample_rate,
            audio_hop_length=ac.mel_hop_length,
            audio_compression=audio_vae.temporal_compression_ratio,
            audio_causal=audio_vae.causality_axis != "none",
            vocoder_rate=vocoder.config.output_sampling_rate,
            register_multiple=connectors.register_multiple,
            has_text_encoder=has_text_encoder,
            upsampler=upsampler,
            vae_tiling=vae.tiling if vae.use_tiling else None,
            scheduler=scheduler,
            memory_bytes=device_memory_bytes(device),
            vocoder_samples_per_mel_frame=vocoder.upsample_factor,
            mismatches=tuple(component_mismatches(transformer=transformer, vae=vae, audio_vae=audio_vae,
                                                  vocoder=vocoder, connectors=connectors,
                                                  latent_upsampler=latent_upsampler)),
            drifts=tuple(component_drifts(transformer=transformer, vae=vae, audio_vae=audio_vae, vocoder=vocoder)),
        )

    @classmethod
    def from_folder(
        cls, folder: str | os.PathLike, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> PipelineFacts:
        """Facts of a local pipeline folder from its config files only: components built on the meta device (in
        ``dtype`` when given, as they would be loaded), for a call on ``device``."""
        from ..schedulers.flow_match_config import scheduler_from_config
        from .folder_loading import folder_component_class, meta_model, read_model_index
        from .pipeline_ltx2_audio_video import LTX2AudioVideoPipeline
        from .weight_files import read_json

        folder = Path(folder)
        index = read_model_index(folder)
        parts = {}
        for name in LTX2AudioVideoPipeline._component_classes:
            present = (folder / name).is_dir() and isinstance(index.get(name), list) and index[name][0] is not None
            if not present:
                parts[name] = None
                continue
            if name == "scheduler":
                parts[name] = scheduler_from_config(read_json(folder / name / "scheduler_config.json", "scheduler "
                                                              "config"), index[name][1])
                continue
            where = folder / "model_index.json"
            parts[name] = meta_model(folder / name, folder_component_class(LTX2AudioVideoPipeline, name, index[name],
                                                                           where))
            if dtype is not None:  # plain Module.to: nothing is loaded, so ModelMixin's load-time advice is moot
                torch.nn.Module.to(parts[name], dtype)
        missing = [n for n, part in parts.items() if part is None and n != "latent_upsampler"]
        if missing:
            raise ValueError(f"{folder} lacks the component(s) {missing}; a pipeline folder needs all of "
                             f"{sorted(LTX2AudioVideoPipeline._component_classes)} (latent_upsampler optional).")
        has_text = all(isinstance(index.get(n), list) and index[n][0] is not None and (folder / n).is_dir()
                       for n in ("text_encoder", "tokenizer"))
        return cls.from_components(has_text_encoder=has_text, device=device, **parts)


def _dtype_bytes(module: torch.nn.Module) -> int:
    for tensor in module.parameters():
        return tensor.element_size()
    return 4


def device_memory_bytes(device: torch.device | str | None) -> int | None:
    """Total memory of ``device``: the accelerator's for CUDA, the machine's RAM otherwise (``None``: unknown)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_properties(device).total_memory
    if device.type == "meta":
        return None
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:  # pragma: no cover - psutil comes with accelerate
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            return None
