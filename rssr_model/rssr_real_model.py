import torch
from basicsr.utils.registry import MODEL_REGISTRY

from rssr_data.degradation_draws import unbatch
from rssr_data.real_degradations import RealDegradation, quantize
from rssr_utils.options import OptionError

from .rssr_model import RSSRModel


@MODEL_REGISTRY.register()
class RSSRRealModel(RSSRModel):
    """:class:`~rssr_model.rssr_model.RSSRModel` trained on LR images degraded on the fly, as Real-ESRNet.

    The pair of BasicSR's ``RealESRNetModel`` for
    :class:`~rssr_data.rs_real_dataset.RSRealESRGANDataset`: a batch that carries
    ``degradation`` draws (kernels, resize factors, noise, JPEG, drawn by the
    dataset in its workers) is degraded here, on the model's device
    (:class:`~rssr_data.real_degradations.RealDegradation`), and rounded to the
    HR's bit depth; any other batch (paired validation/test data) is used as
    is. Everything else is RSSRModel's: deep supervision of every output
    (TSFNet's final and stage-1), the pixel / perceptual / local loss slots
    (FAT's L1 + VGG + extremum/variance objective), validation and saving.

    Unlike Real-ESRNet there is no training-pair queue: the dataset draws
    every image's degradation separately, so a batch is already mixed.

    Options (top level, as Real-ESRGAN's): ``gt_usm`` (bool): train towards the
    USM-sharpened HR (Real-ESRNet's default; rssr's default False keeps the HR
    file as the target, as the FAT repository's LR tool pairs them). Anything
    but true / false is refused. The HR is sharpened once per batch: the same
    sharpened tensor is the target and the input of the draws that sharpen.
    """

    def __init__(self, opt):
        super().__init__(opt)
        self.degrader = RealDegradation(opt['scale']).to(self.device)
        self.gt_usm = opt.get('gt_usm', False)
        if not isinstance(self.gt_usm, bool):  # bool('false') is True: a quoted value would sharpen silently
            raise OptionError(f'gt_usm: {self.gt_usm!r} is not a boolean; write gt_usm: true or gt_usm: false.')
        self._validating = False

    @torch.no_grad()
    def feed_data(self, data):
        if 'degradation' not in data:
            return super().feed_data(data)
        self.gt = data['gt'].to(self.device)
        draws = data['degradation']
        batch = [unbatch(draws, i) for i in range(self.gt.size(0))]
        sharp = self.degrader.usm_sharpener(self.gt) if self.gt_usm and not self._validating else None
        lq = self.degrader(self.gt, batch, sharp)  # the draws that sharpen before degrading reuse it
        peaks = lq.new_tensor([d['peak'] for d in batch]).view(-1, 1, 1, 1)
        self.lq = quantize(lq, peaks).contiguous()
        if sharp is not None:
            self.gt = sharp

    def nondist_validation(self, *args, **kwargs):
        self._validating = True  # validation targets are the HR files
        try:
            return super().nondist_validation(*args, **kwargs)
        finally:
            self._validating = False
