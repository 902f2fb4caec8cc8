"""Official FAT checkpoints (github fengyanzi/FAT, ``models/FAT.py``) -> ``rssr_arch.fat_arch.FAT``.

The official model builds modules it never runs (the FSSA, conv and channel/spatial
attention of every plain Swin layer, the same in each SRT block and the MAT layer
except its FSSA, the FSSA ``conv_layer``, ``FAT.ca``/``conv3``, ``UAFB.ca2``) and
stores the relative position index as a buffer; those keys are dropped.
"""

import re

# (pattern, replacement); None drops the key. The first match wins.
_SWIN = r'(norm1|norm2|attn\.qkv|attn\.proj|attn\.relative_position_bias_table)'
_FSSA = r'FSSA\.sparse_attention\.(conv_match|conv_assembly)\.0\.'
_RULES = [
    (r'^(ca|conv3)\.', None),
    (r'^conv0\.', 'shallow.0.'),
    (r'^conv1\.', 'shallow.1.'),
    (r'^conv4\.', 'conv_after_body.'),
    (r'^upsample\.upsample\.', 'upsample.'),
    (r'^upsample\.conv_last\.', 'conv_last.'),
    (r'^uafb\.ca2\.', None),
    (r'^uafb\.ca1\.', 'uafb.ca.'),
    (r'^uafb\.sa1\.conv1\.', 'uafb.sa_low.conv.'),
    (r'^uafb\.sa2\.conv1\.', 'uafb.sa_high.conv.'),
    (r'^uafb\.end_conv\.', 'uafb.fuse_conv.'),
    (r'^uafb\.(down_conv|up_conv|up_transpose)\.', r'uafb.\1.'),
    (r'\.attn\.relative_position_index$', None),
    (r'^SRTB_list\.(\d+)\.STL\.(\d+)\.' + _SWIN, r'blocks.\1.layers.\2.\3'),
    (r'^SRTB_list\.(\d+)\.STL\.(\d+)\.mlp\.fc1\.', r'blocks.\1.layers.\2.mlp.0.'),
    (r'^SRTB_list\.(\d+)\.STL\.(\d+)\.mlp\.fc2\.', r'blocks.\1.layers.\2.mlp.2.'),
    (r'^SRTB_list\.\d+\.STL\.\d+\.(conv|ca|sa|FSSA)\.', None),
    (r'^SRTB_list\.(\d+)\.MAT\.' + _SWIN, r'blocks.\1.layers.MAT.\2'),
    (r'^SRTB_list\.(\d+)\.MAT\.mlp\.fc1\.', r'blocks.\1.layers.MAT.mlp.0.'),
    (r'^SRTB_list\.(\d+)\.MAT\.mlp\.fc2\.', r'blocks.\1.layers.MAT.mlp.2.'),
    (r'^SRTB_list\.(\d+)\.MAT\.' + _FSSA, r'blocks.\1.layers.MAT.fssa.attention.\2.'),
    (r'^SRTB_list\.\d+\.(ca|sa|MAT\.conv|MAT\.ca|MAT\.sa|MAT\.FSSA\.conv_layer)\.', None),
    (r'^SRTB_list\.(\d+)\.conv\.', r'blocks.\1.conv.'),
    (r'^SRTB_list\.(\d+)\.fssa\.sparse_attention\.(conv_match|conv_assembly)\.0\.', r'blocks.\1.fssa.attention.\2.'),
    (r'^SRTB_list\.\d+\.fssa\.conv_layer\.', None),
]
_RULES = [(re.compile(p), r) for p, r in _RULES]


def _rename(key):
    for pattern, replacement in _RULES:
        if pattern.search(key):
            return None if replacement is None else pattern.sub(replacement, key)
    raise KeyError(f'Unexpected key {key!r} in an official FAT checkpoint; is it a FAT (fengyanzi/FAT) state dict?')


def convert(state_dict):
    """Official FAT state dict -> ours. The MAT layer is the last entry of each block's ``layers``."""
    depth = {}
    for key in state_dict:
        match = re.match(r'SRTB_list\.(\d+)\.STL\.(\d+)\.', key)
        if match:
            block, layer = map(int, match.groups())
            depth[block] = max(depth.get(block, 0), layer + 1)
    converted = {}
    for key, value in state_dict.items():
        new = _rename(key)
        if new is None:
            continue
        match = re.match(r'blocks\.(\d+)\.layers\.MAT\.', new)
        if match:
            new = new.replace('.layers.MAT.', f'.layers.{depth.get(int(match.group(1)), 0)}.', 1)
        converted[new] = value
    return converted
