import inspect
from collections import OrderedDict

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

from rssr_utils.radiometry import Radiometry
from rssr_utils.tiling import TiledSR

from .rs_validation import needs_model_values, validate

# Loss slots, in the order they are added to the total; each is optional.
LOSS_SLOTS = ('pixel_opt', 'perceptual_opt', 'local_opt')
# Every key RSSRModel reads from `train`; anything else is a typo we refuse.
TRAIN_KEYS = frozenset(
    LOSS_SLOTS + ('optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'ema_decay', 'output_weights')
)
# Keys of `val.tile` (tiled validation and testing), with their defaults; `size` is required.
TILE_KEYS = {'size': None, 'overlap': 0, 'batch_size': 4}


def takes_weight(criterion):
    """True for losses that take BasicSR's element ``weight`` (a mask), as its pixel losses and rssr's do."""
    return 'weight' in inspect.signature(criterion.forward).parameters


@MODEL_REGISTRY.register()
class RSSRModel(SRModel):
    """SR model for the remote-sensing archs, with deep supervision.

    Behaves as BasicSR's ``SRModel`` (validation, testing, EMA, saving and
    resuming are inherited) and adds:

    * multi-output networks: while training, a network may return a tuple
      ``(final, aux1, ...)`` (TSFNet returns ``(final, stage1)``); every loss is
      applied to every output and weighted by ``train.output_weights``
      (default 1.0 each, the papers' choice). Validation uses the final output,
      since the archs return only it in eval mode.
    * a third loss slot ``local_opt`` next to ``pixel_opt`` and
      ``perceptual_opt``, for a local-statistics loss such as
      ``ExtremumVarianceLoss``. Each slot takes any ``LOSS_REGISTRY`` loss;
      as in SRModel, ``pixel_opt`` or ``perceptual_opt`` must be given.
    * ``optim_g.type`` may name any ``torch.optim`` optimizer (BasicSR 1.4.2
      accepts only Adam).
    * tiled validation and testing: ``val: {tile: {size: 32, overlap: 0}}``
      runs the network on tiles of ``size`` LR pixels overlapping by
      ``overlap`` (``batch_size`` tiles per forward, default 4) and blends them
      as scene inference does (:class:`rssr_utils.tiling.TiledSR`):
      with ``overlap: 0`` the tiles lie side by side and the last one of a row
      or column is moved back inside the image (TSFNet's official block
      evaluation); with an overlap, outputs are cross-faded and equal a
      whole-image pass for networks whose receptive field fits in
      ``overlap // 4`` LR pixels. Without ``tile``, whole images, as SRModel.

    * radiometry and masks: the option file's top-level ``radiometry`` (a
      profile name or explicit numbers, :mod:`rssr_utils.radiometry`; default
      ``uint8``) is :attr:`radiometry`. A batch's ``mask`` (B, 1, H, W), 1 on
      valid ground-truth pixels (:class:`rssr_data.rs_scene_dataset.RSSceneDataset`
      gives one), is the element ``weight`` of every loss that takes one
      (BasicSR's pixel losses, rssr's losses; not BasicSR's PerceptualLoss), so
      nodata pixels do not count. Unless the run is 8-bit RGB scored by BasicSR's own
      metrics, validation scores (H, W, C) outputs in model values with the
      mask and the radiometry and skips windows without a valid pixel
      (:mod:`rssr_model.rs_validation`); 8-bit RGB runs validate exactly as
      SRModel does.

    Train option keys: ``pixel_opt``, ``perceptual_opt``, ``local_opt``,
    ``output_weights``, ``optim_g``, ``scheduler``, ``total_iter``,
    ``warmup_iter``, ``ema_decay``. ``val.tile`` keys: ``size``, ``overlap``,
    ``batch_size``. Unknown keys raise an error.
    """

    def __init__(self, opt):
        self.radiometry = Radiometry.resolve(opt.get('radiometry'), f'{opt.get("name")}: radiometry')
        self.mask = None
        super().__init__(opt)
        self.tile_opt = self._tile_options((opt.get('val') or {}).get('tile'))

    def _tile_options(self, tile):
        if tile is None:
            return None
        where = f'`val.tile` in the option file of {self.opt["name"]!r}'
        if not isinstance(tile, dict) or set(tile) - set(TILE_KEYS) or 'size' not in tile:
            raise KeyError(f'{where} is {tile!r}; give {{size: <LR pixels>, overlap: 0, batch_size: 4}}.')
        tile = {**TILE_KEYS, **tile}
        if not all(isinstance(tile[k], int) for k in TILE_KEYS) or tile['batch_size'] < 1:
            raise ValueError(f'{where}: size, overlap and batch_size must be integers, batch_size at least 1.')
        if not 0 <= tile['overlap'] < tile['size']:
            raise ValueError(f'{where}: overlap {tile["overlap"]} must be at least 0 and smaller than size.')
        return tile

    def feed_data(self, data):
        """SRModel's ``feed_data``, plus the batch's valid ``mask`` (B, 1, H, W) when the data set gives one."""
        super().feed_data(data)
        self.mask = data['mask'].to(self.device) if 'mask' in data else None

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """SRModel's validation for 8-bit RGB; in model values otherwise (see the class docstring)."""
        network = self.opt['network_g']
        bands = network.get('num_out_ch') or network.get('num_in_ch') or network.get('in_chans')  # SwinIR's
        if needs_model_values(self.opt, self.radiometry, bands):
            return validate(self, dataloader, current_iter, tb_logger, save_img)
        return super().nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def test(self):
        """Super-resolve ``self.lq`` (B, C, h, w) into ``self.output`` (B, C, h*scale, w*scale), tiled if asked."""
        if self.tile_opt is None:
            return super().test()
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        tiler = TiledSR(
            net,
            self.opt['scale'],
            self.tile_opt['size'],
            self.tile_opt['overlap'],
            self.tile_opt['batch_size'],
            self.device,
        )
        self.output = torch.stack([tiler(img) for img in self.lq])
        net.train(was_training)

    def init_training_settings(self):
        train_opt = self.opt['train']
        unknown = sorted(set(train_opt) - TRAIN_KEYS)
        if unknown:
            raise KeyError(
                f'Unknown key(s) {unknown} under `train` in the option file of {self.opt["name"]!r}; '
                f'RSSRModel reads {sorted(TRAIN_KEYS)}. Fix the spelling or remove them.'
            )
        # SRModel builds pixel/perceptual losses, EMA, optimizers and schedulers.
        super().init_training_settings()
        self.cri_local = build_loss(train_opt['local_opt']).to(self.device) if train_opt.get('local_opt') else None
        self.output_weights = train_opt.get('output_weights')

    def get_optimizer(self, optim_type, params, lr, **kwargs):
        optimizer_cls = getattr(torch.optim, optim_type, None)
        if not (isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)):
            raise ValueError(f'optim_g type {optim_type!r} is not a torch.optim optimizer.')
        return optimizer_cls(params, lr, **kwargs)

    def _weights_for(self, num_outputs):
        weights = self.output_weights
        if weights is None:
            return [1.0] * num_outputs
        if len(weights) != num_outputs:
            raise ValueError(
                f'train.output_weights has {len(weights)} entries but the network returns '
                f'{num_outputs} output(s) while training; give one weight per output.'
            )
        return weights

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        outputs = self.net_g(self.lq)
        if torch.is_tensor(outputs):
            outputs = (outputs,)
        self.output = outputs[0]

        l_total = 0
        loss_dict = OrderedDict()
        for index, (output, weight) in enumerate(zip(outputs, self._weights_for(len(outputs)))):
            if weight == 0:
                continue
            suffix = '' if index == 0 else f'_aux{index}'
            for name, criterion in (
                ('l_pix', self.cri_pix),
                ('l_percep', self.cri_perceptual),
                ('l_local', self.cri_local),
            ):
                if criterion is None:
                    continue
                if self.mask is not None and takes_weight(criterion) and not bool(self.mask.all()):
                    terms = criterion(output, self.gt, weight=self.mask)  # nodata pixels weigh 0
                else:
                    terms = criterion(output, self.gt)
                # BasicSR's PerceptualLoss returns (perceptual, style), either may be None.
                named = zip(('l_percep', 'l_style'), terms) if isinstance(terms, tuple) else ((name, terms),)
                for term_name, term in named:
                    if term is not None:
                        l_total = l_total + weight * term
                        loss_dict[term_name + suffix] = term
        l_total.backward()
        self.optimizer_g.step()

        self.log_dict = self.reduce_loss_dict(loss_dict)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)
