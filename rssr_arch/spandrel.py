"""spandrel support: TSFNet and FAT (and BasicSR-named EDSR, RCAN, MSRResNet) for ``spandrel.ModelLoader``.

`spandrel <https://github.com/chaiNNer-org/spandrel>`_ (the loader of chaiNNer
and other SR front-ends) detects an architecture from the keys of a state dict
and reads its hyper-parameters from the tensor shapes. :func:`install` adds
:data:`RSSR_REGISTRY` to spandrel's ``MAIN_REGISTRY``, as ``spandrel_extra_arches``
does; afterwards ``spandrel.ModelLoader().load_from_file(path)`` loads

* ``model.safetensors`` written by ``rssr-export``, BasicSR training checkpoints
  (``{'params': ..., 'params_ema': ...}``: spandrel takes ``params_ema`` when
  present) and converted official checkpoints of TSFNet and FAT;
* BasicSR's EDSR, RCAN and MSRResNet under BasicSR's key names (spandrel's own
  RCAN reads the original RCAN layout only; it has no EDSR or MSRResNet).

Hyper-parameters no shape shows are kept in the state dict by the archs
(:func:`rssr_arch.arch_util.record_options`): TSFNet's ``upscale_factor`` and
FAT's ``fssa_chunk_size``, ``fssa_hashes``, ``mat_fssa_hashes``. A TSFNet file
saved before they were recorded is refused with the fix; a FAT file gets the
official values (144, 4, 2). BasicSR's EDSR/RCAN constants (``img_range`` 255,
DIV2K ``rgb_mean``, ``res_scale``) are not in its state dicts either: they are
taken as BasicSR's defaults, with ``res_scale`` 0.1 for 256-channel EDSR (its
"EDSR-L" options), and named in the tags.

Each class is a self-contained spandrel ``Architecture`` (detection with
``KeyCondition``), written to be proposed upstream. Importing :mod:`rssr_arch`
does not import this module or spandrel (an optional dependency: ``pip install
rssr[spandrel]``). See docs/spandrel.md.
"""

import math

from spandrel import (
    MAIN_REGISTRY,
    Architecture,
    ArchRegistry,
    ArchSupport,
    ImageModelDescriptor,
    ModelTiling,
    SizeRequirements,
)
from spandrel.util import KeyCondition, get_pixelshuffle_params, get_seq_len

# FAT's FSSA options as the official code sets them: what a FAT file without its recorded options gets.
FAT_FSSA_DEFAULTS = {'fssa_chunk_size': 144, 'fssa_hashes': 4, 'mat_fssa_hashes': 2}


def _pad_multiple(model):
    """The multiple the arch pads its input to internally."""
    return getattr(model, 'pad_multiple', 1)


def _recorded(state_dict, name, default=None):
    value = state_dict.get(name)
    return default if value is None else int(value)


def _descriptor(arch, model, state_dict, tags, scale, channels, half, multiple=1, bfloat16=None):
    """An SR ``ImageModelDescriptor`` (``channels``: (input, output))."""
    return ImageModelDescriptor(
        model,
        state_dict,
        architecture=arch,
        purpose='SR' if scale > 1 else 'Restoration',
        tags=tags,
        supports_half=half,
        supports_bfloat16=half if bfloat16 is None else bfloat16,
        scale=scale,
        input_channels=channels[0],
        output_channels=channels[1],
        size_requirements=SizeRequirements(multiple_of=multiple),
        tiling=ModelTiling.SUPPORTED,
    )


class TSFNetArch(Architecture):
    """TSFNet (Wang et al., two-stage spatial-frequency network), as ``rssr_arch.tsfnet_arch.TSFNet``.

    ``supports_half`` is False: its spectra are ``torch.fft`` transforms, which
    PyTorch runs in float16 only on CUDA and only for power-of-two sizes (not on
    CPU; bfloat16 nowhere). ``size_requirements.multiple_of`` is the LR multiple
    the model pads to itself, a tile-size hint: inputs of any size work.
    """

    def __init__(self):
        super().__init__(
            id='TSFNet',
            detect=KeyCondition.has_all(
                'stages.0.head.0.weight',
                'stages.0.encoder_units.0.spatial.0.blocks.0.conv1.weight',
                'stages.0.encoder_units.0.frequency.0.filter.amp_conv.0.weight',
                'stages.0.decoder_fusions.0.attention.temperature',
                'stages.1.encoder_fusions.0.cfs.conv_squeeze.weight',
                'stages.1.tail.0.weight',
            ),
        )

    def load(self, state_dict):
        from rssr_arch.tsfnet_arch import TSFNet

        upscale = _recorded(state_dict, 'upscale_factor')
        if upscale is None:
            raise ValueError(
                'TSFNet state dict without "upscale_factor" (saved before rssr recorded the scale): '
                'load it with rssr and save it again, e.g. rssr-export --arch TSFNet --scale S --weights FILE '
                '--formats safetensors --output DIR.'
            )
        head = state_dict['stages.0.head.0.weight']  # (num_feat, num_in_ch, 3, 3)
        num_feat, num_in_ch = head.shape[:2]
        num_out_ch = state_dict['stages.0.tail.0.weight'].shape[0]
        num_block = get_seq_len(state_dict, 'stages.0.encoder_units.0.spatial.0.blocks')
        model = TSFNet(upscale, num_feat, num_block, num_in_ch, num_out_ch)
        tags = [f'{num_feat}nf', f'{num_block}nb']
        return _descriptor(self, model, state_dict, tags, upscale, (num_in_ch, num_out_ch), False, _pad_multiple(model))


def _fat_upscale(state_dict, width):
    """FAT's upscale from its upsampler's shapes (see ``rssr_arch.fat_arch.make_upsampler``)."""
    first = state_dict['upsample.0.weight'].shape[0]
    if 'upsample.2.weight' not in state_dict:
        if first == 9 * width:
            return 3
    elif first == 4 * width:
        return 4
    elif first == width:
        return math.isqrt(state_dict['upsample.2.weight'].shape[0] // width)  # 2 or 8
    raise ValueError(f'FAT upsampler of shapes {first} -> {width} channels matches no upscale (2, 3, 4, 8).')


def _fat_window(state_dict, block, depth):
    """A block's Swin window, from a relative-position table of (2w-1)^2 rows (the MAT layer's 4w-1)."""
    side = math.isqrt(state_dict[f'blocks.{block}.layers.0.attn.relative_position_bias_table'].shape[0])
    return (side + 1) // 2 if depth else (side + 1) // 4


def _fat_reduction(match):
    """The FSSA reduction r with ``channels // r`` = matching channels, from a (Cm, 2C, 3, 3) conv."""
    matched, channels = match.shape[:2]
    for reduction in range(1, channels + 1):
        if channels // reduction == matched:
            return reduction
    raise ValueError(f'FAT FSSA conv_match with {matched} of {channels} channels matches no reduction.')


class FATArch(Architecture):
    """FAT (Yan et al., frequency-aware transformer), as ``rssr_arch.fat_arch.FAT`` with deterministic eval.

    ``supports_half`` is False (its FSSA runs ``torch.fft``: see :class:`TSFNetArch`).
    ``size_requirements.multiple_of`` is the multiple it pads to itself (every
    window, twice it for the MAT layers, and 2), a tile-size hint.
    """

    def __init__(self):
        super().__init__(
            id='FAT',
            detect=KeyCondition.has_all(
                'shallow.0.weight',
                'shallow.1.weight',
                'uafb.down_conv.weight',
                'uafb.fuse_conv.weight',
                'blocks.0.layers.0.attn.relative_position_bias_table',
                'blocks.0.fssa.attention.conv_match.weight',
                'conv_after_body.weight',
                'conv_last.weight',
            ),
        )

    def load(self, state_dict):
        from rssr_arch.fat_arch import FAT

        num_in_ch, embed_dim = state_dict['shallow.1.weight'].shape[1], state_dict['shallow.1.weight'].shape[0]
        num_out_ch, width = state_dict['conv_last.weight'].shape[:2]
        num_blocks = get_seq_len(state_dict, 'blocks')
        depths = {get_seq_len(state_dict, f'blocks.{i}.layers') - 1 for i in range(num_blocks)}
        if len(depths) != 1:
            raise ValueError(f'FAT blocks with different depths {sorted(depths)}: not a FAT state dict.')
        depth = depths.pop()
        windows = [_fat_window(state_dict, i, depth) for i in range(num_blocks)]
        hidden = state_dict['blocks.0.layers.0.mlp.0.weight'].shape[0]
        mlp_ratio = hidden / embed_dim
        if int(embed_dim * mlp_ratio) != hidden:  # FAT builds int(dim * ratio) hidden channels
            mlp_ratio = (hidden + 0.5) / embed_dim
        options = {k: _recorded(state_dict, k, v) for k, v in FAT_FSSA_DEFAULTS.items()}
        model = FAT(
            upscale=_fat_upscale(state_dict, width),
            embed_dim=embed_dim,
            num_blocks=num_blocks,
            depth=depth,
            num_heads=state_dict['blocks.0.layers.0.attn.relative_position_bias_table'].shape[1],
            window_size=windows[0] if len(set(windows)) == 1 else windows,
            mlp_ratio=mlp_ratio,
            deterministic_eval=True,
            num_in_ch=num_in_ch,
            num_out_ch=num_out_ch,
            upsampler_width=width,
            fssa_reduction=_fat_reduction(state_dict['blocks.0.fssa.attention.conv_match.weight']),
            **options,
        )
        window_tag = 'w' + ','.join(map(str, sorted(set(windows))))
        tags = [f'{embed_dim}dim', f'{num_blocks}blocks', f'{depth}depth', window_tag]
        return _descriptor(
            self, model, state_dict, tags, model.upscale, (num_in_ch, num_out_ch), False, _pad_multiple(model)
        )


# BasicSR's EDSR and RCAN defaults for img_range and rgb_mean (DIV2K); their state dicts do not hold them.
BASICSR_NORMALISATION = (255.0, (0.4488, 0.4371, 0.4040))


def _image_channels(state_dict):
    """(input, output) image channels of a BasicSR SR net: its ``conv_first`` in, its ``conv_last`` out."""
    return state_dict['conv_first.weight'].shape[1], state_dict['conv_last.weight'].shape[0]


class BasicSREDSRArch(Architecture):
    """EDSR under BasicSR's key names (``basicsr.archs.edsr_arch.EDSR``).

    ``img_range`` and ``rgb_mean`` are BasicSR's defaults; ``res_scale`` is 0.1
    for 256 channels (BasicSR's EDSR-L options, the paper's large model) and 1
    otherwise: none of them is in the state dict. Runs in float16 (plain convs).
    """

    def __init__(self):
        super().__init__(
            id='BasicSR-EDSR',
            name='EDSR',
            detect=KeyCondition.has_all(
                'conv_first.weight',
                'body.0.conv1.weight',
                'body.0.conv2.weight',
                'conv_after_body.weight',
                'upsample.0.weight',
                'conv_last.weight',
            ),
        )

    def load(self, state_dict):
        from basicsr.archs.edsr_arch import EDSR

        num_in_ch, num_out_ch = _image_channels(state_dict)
        upscale, num_feat = get_pixelshuffle_params(state_dict, 'upsample')
        num_block = get_seq_len(state_dict, 'body')
        res_scale = 0.1 if num_feat >= 256 else 1
        model = EDSR(num_in_ch, num_out_ch, num_feat, num_block, upscale, res_scale, *BASICSR_NORMALISATION)
        tags = [f'{num_feat}nf', f'{num_block}nb', f'res_scale {res_scale} (assumed)']
        return _descriptor(self, model, state_dict, tags, upscale, (num_in_ch, num_out_ch), True)


class BasicSRRCANArch(Architecture):
    """RCAN under BasicSR's key names (``basicsr.archs.rcan_arch.RCAN``).

    ``img_range``, ``rgb_mean`` and ``res_scale`` are BasicSR's defaults (not in
    the state dict). ``supports_half`` is False as for spandrel's own RCAN (the
    same network: x255 features).
    """

    def __init__(self):
        super().__init__(
            id='BasicSR-RCAN',
            name='RCAN',
            detect=KeyCondition.has_all(
                'conv_first.weight',
                'body.0.residual_group.0.rcab.0.weight',
                'body.0.residual_group.0.rcab.3.attention.1.weight',
                'body.0.conv.weight',
                'conv_after_body.weight',
                'upsample.0.weight',
                'conv_last.weight',
            ),
        )

    def load(self, state_dict):
        from basicsr.archs.rcan_arch import RCAN

        num_in_ch, num_out_ch = _image_channels(state_dict)
        upscale, num_feat = get_pixelshuffle_params(state_dict, 'upsample')
        num_group = get_seq_len(state_dict, 'body')
        num_block = get_seq_len(state_dict, 'body.0.residual_group')
        squeeze = num_feat // state_dict['body.0.residual_group.0.rcab.3.attention.1.weight'].shape[0]
        model = RCAN(num_in_ch, num_out_ch, num_feat, num_group, num_block, squeeze, upscale, 1, *BASICSR_NORMALISATION)
        tags = [f'{num_feat}nf', f'{num_group}ng', f'{num_block}nb']
        return _descriptor(self, model, state_dict, tags, upscale, (num_in_ch, num_out_ch), False, bfloat16=True)


class BasicSRMSRResNetArch(Architecture):
    """BasicSR's modified SRResNet (``basicsr.archs.srresnet_arch.MSRResNet``); every option is in the shapes."""

    def __init__(self):
        super().__init__(
            id='BasicSR-MSRResNet',
            name='MSRResNet',
            detect=KeyCondition.has_all(
                'conv_first.weight',
                'body.0.conv1.weight',
                'body.0.conv2.weight',
                'upconv1.weight',
                'conv_hr.weight',
                'conv_last.weight',
            ),
        )

    def load(self, state_dict):
        from basicsr.archs.srresnet_arch import MSRResNet

        num_in_ch, num_out_ch = _image_channels(state_dict)
        num_feat = state_dict['conv_first.weight'].shape[0]
        num_block = get_seq_len(state_dict, 'body')
        if 'upconv2.weight' in state_dict:
            upscale = 4
        else:
            upscale = math.isqrt(state_dict['upconv1.weight'].shape[0] // num_feat)
        model = MSRResNet(num_in_ch, num_out_ch, num_feat, num_block, upscale)
        tags = [f'{num_feat}nf', f'{num_block}nb']
        return _descriptor(self, model, state_dict, tags, upscale, (num_in_ch, num_out_ch), True)


RSSR_REGISTRY = ArchRegistry()
"""rssr's architectures for spandrel; ``MAIN_REGISTRY.add(*RSSR_REGISTRY)`` adds them (:func:`install`)."""
RSSR_REGISTRY.add(
    ArchSupport.from_architecture(TSFNetArch()),
    ArchSupport.from_architecture(FATArch()),
    ArchSupport.from_architecture(BasicSREDSRArch()),
    ArchSupport.from_architecture(BasicSRRCANArch()),
    ArchSupport.from_architecture(BasicSRMSRResNetArch()),
)


def install(registry=MAIN_REGISTRY):
    """Add :data:`RSSR_REGISTRY` to spandrel's ``registry`` (default: the main one); calling it again does nothing.

    They are detected after every architecture already there, so no state dict
    spandrel loaded before changes hands (e.g. BasicSR's RRDBNet stays ESRGAN).

    Returns:
        list[spandrel.ArchSupport]: What was added (empty when already installed).
    """
    return registry.add(*RSSR_REGISTRY, ignore_duplicates=True)
