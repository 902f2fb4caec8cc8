from collections import OrderedDict

import torch
from basicsr.losses import build_loss
from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import MODEL_REGISTRY

# Loss slots, in the order they are added to the total; each is optional.
LOSS_SLOTS = ('pixel_opt', 'perceptual_opt', 'local_opt')
# Every key RSSRModel reads from `train`; anything else is a typo we refuse.
TRAIN_KEYS = frozenset(
    LOSS_SLOTS + ('optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'ema_decay', 'output_weights')
)


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

    Train option keys: ``pixel_opt``, ``perceptual_opt``, ``local_opt``,
    ``output_weights``, ``optim_g``, ``scheduler``, ``total_iter``,
    ``warmup_iter``, ``ema_decay``. Unknown keys raise an error.
    """

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
