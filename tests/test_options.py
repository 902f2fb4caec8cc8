"""Every option file parses, names registered types, builds its network and passes RSSRModel's key check."""

from pathlib import Path

import pytest
import yaml
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

import rssr_arch  # noqa: F401
import rssr_data  # noqa: F401
import rssr_loss  # noqa: F401
import rssr_model  # noqa: F401
from rssr_data.degradation_draws import load_config
from rssr_data.rs_paired_dataset import BASICSR_KEYS, OWN_KEYS, RSPairedDataset
from rssr_model.rssr_model import TILE_KEYS, TRAIN_KEYS

OPTIONS = sorted(
    p for p in (Path(__file__).resolve().parents[1] / 'options').glob('*.yml') if not p.name.startswith('benchmark_')
)


@pytest.mark.parametrize('path', OPTIONS, ids=lambda p: p.name)
def test_option_file_is_consistent(path):
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    assert opt['model_type'] in MODEL_REGISTRY
    for phase, dataset in opt['datasets'].items():
        assert phase == 'train' or phase.startswith(('val', 'test')), phase
        assert dataset['type'] in DATASET_REGISTRY, dataset['type']
        cls = DATASET_REGISTRY.get(dataset['type'])
        if issubclass(cls, RSPairedDataset):
            extra = getattr(cls, 'EXTRA_KEYS', frozenset())
            assert set(dataset) <= OWN_KEYS | BASICSR_KEYS | extra | {'root', 'split'}, dataset
        if 'degradation' in dataset:
            load_config(dataset['degradation'])
    net_opt = dict(opt['network_g'])
    arch = ARCH_REGISTRY.get(net_opt.pop('type'))
    if 'upscale' in net_opt:
        assert net_opt['upscale'] == opt['scale']
    if 'train' in opt:
        # Every training file validates, as BasicSR users expect (RSSR25 on held-out training pairs).
        assert any(phase.startswith('val') for phase in opt['datasets']), 'no validation set'
        metrics = set(opt['val']['metrics'])  # RGB files: BasicSR's; multispectral ones: per band, masked
        assert opt['val']['val_freq'] > 0 and ({'psnr', 'ssim'} <= metrics or {'band_psnr', 'band_ssim'} <= metrics)
        if opt['model_type'] in ('RSSRModel', 'RSSRRealModel'):
            assert set(opt['train']) <= TRAIN_KEYS
        for key in ('pixel_opt', 'perceptual_opt', 'local_opt'):
            if key in opt['train']:
                assert opt['train'][key]['type'] in LOSS_REGISTRY
        milestones = opt['train']['scheduler'].get('milestones', [])
        assert all(m <= opt['train']['total_iter'] for m in milestones)
    tile = (opt.get('val') or {}).get('tile')
    if tile is not None:
        assert opt['model_type'] == 'RSSRModel' and 'size' in tile and set(tile) <= set(TILE_KEYS), tile
    # Full-size networks are cheap to build; it checks every constructor key.
    arch(**net_opt)
