"""Official TSFNet checkpoints (likakakaka/TSFNet_RSISR, ``model/tsfnet.py``) -> ``rssr_arch.tsfnet_arch.TSFNet``.

The official model spells every module of both stages out by name: the second
stage's names end in ``2`` (``down12`` is stage 2's first downsampling,
``down1_spa2`` its first encoder RSPB), ``conv_fuse``/``conv_fuse2`` hold the
encoder fusions (0-3) then the decoder fusions (4-7). Every official key maps to
one of ours; none is dropped.
"""

import re

_LEVEL_UNITS = {'down': 'encoder_units.{}', 'up': 'decoder_units.{}'}

# Inner names of the blocks, official -> ours; \d placeholders are kept by order.
_INNER = [
    (r'^body\.(\d+)\.layers\.0\.layers\.weight$', r'blocks.\1.conv1.weight'),  # RSPB residual blocks
    (r'^body\.(\d+)\.layers\.1\.layers\.weight$', r'blocks.\1.conv2.weight'),
    (r'^body\.\d+\.layers\.weight$', 'conv.weight'),  # RSPB conv + PReLU
    (r'^body\.\d+\.act\.weight$', 'act.weight'),
    (r'^body\.0\.dw_amp_conv\.', 'filter.amp_conv.'),  # AGPF
    (r'^body\.0\.df1\.', 'filter.amp_gate.'),
    (r'^body\.0\.dw_pha_conv\.', 'filter.pha_conv.'),
    (r'^body\.0\.df2\.', 'filter.pha_gate.'),
    (r'^body\.1\.', 'conv.'),
    (r'^re_scale\.scale$', 'res_scale'),
]
_FUSION_INNER = [
    (r'^spa\.', 'conv.'),
    (r'^spa_att\.', 'attention.'),
    (r'^cross_lsk\.conv\.0\.', 'cfs.conv.'),
    (r'^cross_lsk\.', 'cfs.'),
]


def _sub(rules, rest, key):
    for pattern, replacement in rules:
        if re.search(pattern, rest):
            return re.sub(pattern, replacement, rest)
    raise KeyError(f'Unexpected key {key!r} in an official TSFNet checkpoint.')


def _rename(key):
    # head / head2, tail / tail2: conv (ConvBNReLU2D.layers) + PReLU (.act)
    m = re.match(r'^(head|tail)(2?)\.0\.(layers|act)\.weight$', key)
    if m:
        return f'stages.{int(bool(m[2]))}.{m[1]}.{0 if m[3] == "layers" else 1}.weight'
    # down1..3 / down12..32 (conv, unshuffle, conv); up1..3 / up12..32 (conv, shuffle, PReLU)
    m = re.match(r'^(down|up)([123])(2?)\.(?:layers\.)?(\d)\.(?:layers\.)?(weight|bias)$', key)
    if m:
        return f'stages.{int(bool(m[3]))}.{m[1]}s.{int(m[2]) - 1}.{m[4]}.{m[5]}'
    # dual-domain units: {down,up}{l}_{spa,spamo,fre,fre_mo}{2?} and neck_...
    m = re.match(r'^(down[123]|up[123]|neck)_(spa|spamo|fre|fre_mo)(2?)\.(.*)$', key)
    if m:
        where, branch, stage, rest = m.groups()
        unit = 'neck' if where == 'neck' else _LEVEL_UNITS[where[:-1]].format(int(where[-1]) - 1)
        path = {'spa': 'spatial.0', 'spamo': 'spatial.1', 'fre': 'frequency.0', 'fre_mo': 'frequency.1'}[branch]
        if branch != 'fre':
            rest = rest[len('0.') :]  # the official wraps these in an nn.Sequential of one
        return f'stages.{int(bool(stage))}.{unit}.{path}.{_sub(_INNER, rest, key)}'
    m = re.match(r'^conv_fuse(2?)\.(\d)\.(.*)$', key)
    if m:
        stage, index, rest = m.groups()
        index = int(index)
        group = 'encoder_fusions' if index < 4 else 'decoder_fusions'
        return f'stages.{int(bool(stage))}.{group}.{index % 4}.{_sub(_FUSION_INNER, rest, key)}'
    raise KeyError(f'Unexpected key {key!r} in an official TSFNet checkpoint; is it a TSFNet_RSISR state dict?')


def convert(state_dict):
    """Official TSFNet state dict -> ours (same tensors, our names)."""
    return {_rename(key): value for key, value in state_dict.items()}
