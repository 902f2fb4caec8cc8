"""The option file: top-level keys, ``path``, ``train``, ``val``, ``logger``, ``dist_params``.

These are the keys BasicSR 1.4.2's train and test pipelines and its models read
(``basicsr/train.py``, ``basicsr/models/*``), plus rssr's (``allow_file_arguments``,
``val.tile``, ``train.local_opt``, ``train.output_weights``). Blocks that name a
registered type (networks, data sets, losses, optimizers, schedulers, metrics)
use the structs generated in :mod:`.calls` and :mod:`.datasets`.

For a model type registered by another package (not BasicSR's, not rssr's),
keys this schema does not know are accepted at the top level and under
``train`` and ``val``: such a model may read its own (Real-ESRGAN's models do),
and BasicSR ignores keys nobody reads.
"""

from typing import Annotated, Literal, Optional, Union

import msgspec

from .base import Frequency, Iterations, NonNegFloat, NonNegInt, PosInt, Probability, bounded_list

Seed = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1 - 4096, description='random seed (each rank adds its rank)')]
Range = Annotated[list[float], msgspec.Meta(min_length=2, max_length=2)]
EmaDecay = Annotated[float, msgspec.Meta(ge=0, lt=1, description='0 turns EMA off; BasicSR uses 0.999')]


class PathOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``path``: weights to start from and the state to resume (BasicSR fills the experiment folders)."""

    pretrain_network_g: Optional[str] = None
    strict_load_g: bool = True
    param_key_g: Optional[str] = 'params'
    pretrain_network_d: Optional[str] = None
    strict_load_d: bool = True
    param_key_d: Optional[str] = 'params'
    resume_state: Optional[str] = None
    ignore_resume_networks: Optional[list[str]] = None
    root: Optional[str] = None
    experiments_root: Optional[str] = None
    results_root: Optional[str] = None
    models: Optional[str] = None
    training_states: Optional[str] = None
    log: Optional[str] = None
    visualization: Optional[str] = None


class Wandb(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    project: Optional[str] = None
    resume_id: Optional[str] = None
    entity: Optional[str] = None


class LoggerOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    print_freq: Frequency
    save_checkpoint_freq: Frequency
    use_tb_logger: bool = False
    wandb: Optional[Wandb] = None


class DistParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    backend: Literal['nccl', 'gloo', 'mpi'] = 'nccl'
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 29500


class TileOptions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``val.tile`` (RSSRModel): validate and test in tiles of ``size`` LR pixels."""

    size: PosInt
    overlap: NonNegInt = 0
    batch_size: PosInt = 4


def train_struct(optimizers, schedulers, losses, strict=True):
    """``train``: iterations, EMA, optimizers, schedulers, losses (any ``*_opt`` key) and the models' extras."""
    fields = [
        ('total_iter', Iterations, msgspec.UNSET),
        ('warmup_iter', Annotated[int, msgspec.Meta(ge=-1)], -1),
        ('ema_decay', EmaDecay, 0.0),
        ('optim_g', optimizers, msgspec.UNSET),
        ('optim_d', optimizers, msgspec.UNSET),
        ('scheduler', schedulers, msgspec.UNSET),
        ('output_weights', Optional[bounded_list(NonNegFloat)], None),
        # BasicSR's GAN and video models
        ('net_d_iters', PosInt, 1),
        ('net_d_init_iters', NonNegInt, 0),
        ('tsa_iter', Optional[NonNegInt], msgspec.UNSET),
        ('dcn_lr_mul', Optional[NonNegFloat], msgspec.UNSET),
        ('fix_flow', Optional[NonNegInt], msgspec.UNSET),
        ('flow_lr_mul', Optional[NonNegFloat], msgspec.UNSET),
        ('lr_flow', Optional[NonNegFloat], msgspec.UNSET),
        ('r1_reg_weight', NonNegFloat, msgspec.UNSET),
        ('path_batch_shrink', PosInt, msgspec.UNSET),
        ('path_reg_weight', NonNegFloat, msgspec.UNSET),
        ('net_g_reg_every', PosInt, msgspec.UNSET),
        ('net_d_reg_every', PosInt, msgspec.UNSET),
        ('mixing_prob', Probability, msgspec.UNSET),
    ]
    for slot in LOSS_SLOTS:
        fields.append((slot, Optional[losses], None))
    return msgspec.defstruct(
        'TrainOptions' if strict else 'TrainOptionsOpen', fields, kw_only=True, forbid_unknown_fields=strict
    )


# Loss slots BasicSR's and rssr's models read; any other `*_opt` key under train is checked as a loss too.
LOSS_SLOTS = ('pixel_opt', 'perceptual_opt', 'gan_opt', 'ldl_opt', 'feature_matching_opt', 'local_opt')


def val_struct(metrics, strict=True):
    fields = [
        ('val_freq', Frequency, msgspec.UNSET),
        ('save_img', bool, False),
        ('suffix', Optional[str], None),
        ('metrics', Optional[dict[str, metrics]], None),
        ('pbar', bool, False),
        ('flip_seq', bool, False),
        ('center_frame_only', bool, False),
        ('num_val_samples', PosInt, msgspec.UNSET),
        ('tile', Optional[TileOptions], None),
    ]
    return msgspec.defstruct(
        'ValOptions' if strict else 'ValOptionsOpen', fields, kw_only=True, forbid_unknown_fields=strict
    )


# Real-ESRGAN's second-order degradations (RealESRGANModel / RealESRNetModel read them at the top level).
_REAL_ESRGAN = [
    ('resize_prob', bounded_list(Probability)),
    ('resize_range', Range),
    ('gaussian_noise_prob', Probability),
    ('noise_range', Range),
    ('poisson_scale_range', Range),
    ('gray_noise_prob', Probability),
    ('jpeg_range', Range),
    ('second_blur_prob', Probability),
    ('resize_prob2', bounded_list(Probability)),
    ('resize_range2', Range),
    ('gaussian_noise_prob2', Probability),
    ('noise_range2', Range),
    ('poisson_scale_range2', Range),
    ('gray_noise_prob2', Probability),
    ('jpeg_range2', Range),
    ('gt_size', PosInt),
    ('queue_size', PosInt),
    ('high_order_degradation', bool),
    ('l1_gt_usm', bool),
    ('percep_gt_usm', bool),
    ('gan_gt_usm', bool),
    ('gt_usm', bool),
]
# Keys some of BasicSR's own test files carry at the top level, which nothing reads.
_UNREAD = [('save_img', bool), ('suffix', Optional[str]), ('crop_border', Optional[NonNegInt])]


def options_struct(networks, datasets, train, val, strict=True, name=str):
    """The whole option file (``strict``: unknown top-level keys refused)."""
    fields = [
        ('name', name),
        ('model_type', str),
        ('scale', PosInt, msgspec.UNSET),
        ('num_gpu', Union[NonNegInt, Literal['auto']], 'auto'),
        ('manual_seed', Optional[Seed], None),
        (
            'allow_file_arguments',
            Annotated[
                bool,
                msgspec.Meta(
                    description='a trusted local run: archs and losses may read any file their arguments name '
                    '(otherwise only under experiments/pretrained_models/); never read from a model sidecar'
                ),
            ],
            False,
        ),
        (
            'radiometry',
            Annotated[
                Optional[Union[str, dict]],
                msgspec.Meta(
                    description='stored values -> model values: a profile (sentinel2_l2a, landsat_c2_l2, uint8, '
                    'uint12, uint16) or {scale, offset, valid_range, nodata, bit_depth} (rssr_utils.radiometry)'
                ),
            ],
            None,
        ),
        ('datasets', dict[str, datasets], msgspec.UNSET),
        ('network_g', networks, msgspec.UNSET),
        ('network_d', networks, msgspec.UNSET),
        ('path', PathOptions, msgspec.UNSET),
        ('train', train, msgspec.UNSET),
        ('val', Optional[val], None),
        ('logger', LoggerOptions, msgspec.UNSET),
        ('dist_params', DistParams, msgspec.UNSET),
        ('find_unused_parameters', bool, False),
    ]
    fields += [(k, t, msgspec.UNSET) for k, t in _REAL_ESRGAN + _UNREAD]
    return msgspec.defstruct(
        'RssrOptions' if strict else 'RssrOptionsOpen', fields, kw_only=True, forbid_unknown_fields=strict
    )


def is_known_model(model_type):
    """True for BasicSR's and rssr's models (strict keys); False for other packages' (extra keys allowed)."""
    from basicsr.utils.registry import MODEL_REGISTRY

    cls = MODEL_REGISTRY._obj_map.get(model_type) or MODEL_REGISTRY._obj_map.get(f'{model_type}_basicsr')
    return cls is None or cls.__module__.split('.')[0] in ('basicsr', 'rssr_model')
