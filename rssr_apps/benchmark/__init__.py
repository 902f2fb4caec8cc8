"""Compare SR models on quality and cost: one option file in, one CSV, one table and one plot out.

``python scripts/benchmark.py -opt options/benchmark_x4.yml`` (``rssr-bench``) builds every model
of the option file by its registered ``type`` (rssr's TSFNet and FAT, BasicSR's
EDSR, RCAN, SwinIR, MSRResNet, RRDBNet, ..., and the MATLAB-bicubic baseline)
and measures

* quality, with BasicSR's ``calculate_psnr`` / ``calculate_ssim`` on 8-bit
  images, border crop = scale, on RGB and on Y (BT.601), on every test set of
  the option file (any BasicSR dataset block: folders or LMDB), averaged over
  images like BasicSR's validation;
* cost, on a random input of a stated size: parameters; FLOPs counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (plus formulas for the FFTs and
  CPU attention kernels it does not know) and MACs = FLOPs / 2; latency (median
  of N timed forwards after warm-up); peak memory of one forward.

A model without weights is measured for cost and marked ``random init`` in the
table; its quality columns stay empty unless ``quality: all`` asks for them
(they are then still marked). A model that fails (unknown type, wrong output
size, out of memory) gets its error in its row and the run goes on.

Option file keys (see ``options/benchmark_x4.yml``)::

    name: benchmark_x4
    scale: 4
    device: cpu                 # cpu | cuda | auto
    quality: trained            # trained | all | none
    cost: {input_size: [48, 48], batch_size: 1, warmup: 1, runs: 3, memory: true}
    datasets:                   # name -> BasicSR dataset block, plus:
      name:
        optional: true          # skip (with a note) when a data folder is absent
        generate: skimage       # write a real-image set from scikit-image's data first
        hr_size: 192            #   (its HR crop size)
        make_lq: bicubic        # make missing LR images from the HR ones (MATLAB bicubic)
    models:
      - name: EDSR
        opt: options/test_edsr_x4.yml   # take network_g / path / model_type from a test option file
      - name: FAT
        network_g: {type: FAT, upscale: 4}
        pretrain_network_g: ~   # checkpoint; BasicSR ``params``/``params_ema`` or bare
        param_key_g: params
        official: false         # true: an authors' checkpoint, converted by rssr_arch
        pad_multiple: ~         # reflect-pad inputs to a multiple (SwinIRModel's window padding)

Relative paths are relative to the working directory, as in BasicSR.
"""

from .cli import load_options, main, run_benchmark
from .cost import count_flops
from .report import markdown_table, write_reports

__all__ = ['count_flops', 'load_options', 'main', 'markdown_table', 'run_benchmark', 'write_reports']
