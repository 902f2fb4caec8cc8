"""Cost of a model at a stated input size: parameters, FLOPs, latency, peak memory."""

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from rssr_utils.memory import MEASURE_ENV, peak_growth_kib

from .models import build_benchmark_model, count_parameters, super_resolve

aten = torch.ops.aten
MEMORY_METHODS = {
    'cpu': 'peak RSS growth (VmHWM) during one forward, in a fresh process per model whose large allocations '
    'are returned to the OS on free (MALLOC_MMAP_THRESHOLD_), over weights and input already resident',
    'cuda': 'torch.cuda.max_memory_allocated during one forward, over weights and input already allocated',
}
FLOP_NOTE = (
    'FLOPs: torch.utils.flop_counter.FlopCounterMode (2 per multiply-add for conv, matmul and attention) '
    'plus FFTs at 5 N log2 N per complex N-point transform (half for real input or output) and CPU '
    'attention kernels; element-wise ops (activations, additions, softmax, interpolation) are not '
    'counted. MACs = FLOPs / 2. Bicubic: analytic (separable 4-tap kernel).'
)


def _fft_flops(signal_shape, dims, per_point):
    points = math.prod(signal_shape[d] for d in dims)
    batch = math.prod(signal_shape) // points
    return int(round(per_point * batch * points * math.log2(points))) if points > 1 else 0


def _fft_r2c_flop(x_shape, dim, normalization, onesided, *args, out_shape=None, **kwargs):
    return _fft_flops(x_shape, dim, 2.5)


def _fft_c2r_flop(x_shape, dim, normalization, last_dim_size, *args, out_shape=None, **kwargs):
    return _fft_flops(out_shape, dim, 2.5)


def _fft_c2c_flop(x_shape, dim, normalization, forward, *args, out_shape=None, **kwargs):
    return _fft_flops(x_shape, dim, 5.0)


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Ops that FlopCounterMode (torch 2.x) counts as zero: FFTs and the fused CPU attention kernel.
EXTRA_FLOP_FORMULAS = {
    aten._fft_r2c: _fft_r2c_flop,
    aten._fft_c2r: _fft_c2r_flop,
    aten._fft_c2c: _fft_c2c_flop,
    aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop,
}


def count_flops(net, x):
    """FLOPs of ``net(x)`` (one forward, no grad) and the count per aten op.

    Returns:
        tuple[int, dict[str, int]]: Total FLOPs and FLOPs by op name.
    """
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        net(x)
    by_op = {str(op): n for op, n in counter.get_flop_counts().get('Global', {}).items()}
    return counter.get_total_flops(), by_op


def _sync(device):
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def measure_latency(net, x, scale, pad_multiple=None, warmup=1, runs=3):
    """Median wall time (s) of ``runs`` forwards after ``warmup`` untimed ones."""
    times = []
    with torch.inference_mode():
        for i in range(warmup + runs):
            _sync(x.device)
            start = time.perf_counter()
            super_resolve(net, x, scale, pad_multiple)
            _sync(x.device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _memory_child():
    """Entry of the per-model memory process: JSON spec on stdin, JSON result on stdout."""
    job = json.load(sys.stdin)
    device = torch.device(job['device'])
    net, _, _ = build_benchmark_model(job['spec'], device, load=False)  # weights do not change memory
    x = torch.rand(job['input_shape'], device=device)

    def forward():
        super_resolve(net, x, job['scale'], job['spec'].get('pad_multiple'))

    with torch.inference_mode():
        forward()  # lazy init, kernel caches
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            forward()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device) - base
        else:
            peak = peak_growth_kib(forward) * 1024
    print(json.dumps({'peak_bytes': peak}))


def measure_peak_memory(spec, input_shape, scale, device, timeout=900):
    """Peak memory (bytes) of one forward of a freshly built model, measured in a child process."""
    env = dict(os.environ, **MEASURE_ENV)  # see rssr_utils.memory
    job = {'spec': spec, 'input_shape': list(input_shape), 'scale': scale, 'device': str(device)}
    proc = subprocess.run(
        # Not `-m rssr_apps.benchmark.cost`: the package imports .cost, so -m would run this module twice.
        [sys.executable, '-c', 'from rssr_apps.benchmark.cost import _memory_child; _memory_child()'],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if proc.returncode != 0:
        if proc.returncode in (-9, 137):
            raise MemoryError('memory process was killed (out of memory)')
        lines = proc.stderr.strip().splitlines() or ['no output']
        raise RuntimeError(f'memory process failed: {lines[-1]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])['peak_bytes']


def measure_cost(net, spec, scale, device, cost_opt):
    """Parameters, FLOPs, latency and peak memory at the stated input size."""
    height, width = cost_opt['input_size']
    shape = (cost_opt['batch_size'], cost_opt.get('channels', 3), height, width)  # channels: the bands
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device)
    pad = spec.get('pad_multiple')
    with torch.inference_mode():
        super_resolve(net, x, scale, pad)  # fail early, before counting, on a wrong size
    result = {'params': count_parameters(net)}
    if hasattr(net, 'analytic_flops'):
        result['flops'], result['flops_method'] = net.analytic_flops(shape), 'analytic'
    else:
        result['flops'], result['flops_method'] = (
            count_flops(lambda t: super_resolve(net, t, scale, pad), x)[0],
            'FlopCounterMode',
        )
    result['macs'] = result['flops'] / 2
    result['latency_s'] = measure_latency(net, x, scale, pad, cost_opt['warmup'], cost_opt['runs'])
    if cost_opt['memory']:
        result['peak_memory_bytes'] = measure_peak_memory(spec, shape, scale, device)
    return result
