"""Small BasicSR option files and data sets for tests of the training entry points, and scripts/test.py."""

import glob
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import yaml


def write_pairs(root, num=4, hr_size=32, scale=4, seed=0):
    """Write ``num`` random-texture HR/LR PNG pairs under ``root/{HR,LR}`` and return the folders."""
    rng = np.random.default_rng(seed)
    folders = {name: os.path.join(root, name) for name in ('HR', 'LR')}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for i in range(num):
        hr = rng.integers(0, 256, (hr_size, hr_size, 3), dtype=np.uint8)
        lr = cv2.resize(hr, (hr_size // scale, hr_size // scale), interpolation=cv2.INTER_AREA)
        cv2.imwrite(os.path.join(folders['HR'], f'{i:03d}.png'), hr)
        cv2.imwrite(os.path.join(folders['LR'], f'{i:03d}.png'), lr)
    return folders


def tiny_train_options(data_root, name='tiny', total_iter=4, save_freq=2, num_images=4, workers=0, **train_overrides):
    folders = write_pairs(data_root, num=num_images)
    dataset = dict(
        type='PairedImageDataset',
        dataroot_gt=folders['HR'],
        dataroot_lq=folders['LR'],
        filename_tmpl='{}',
        io_backend=dict(type='disk'),
    )
    train = dict(
        optim_g=dict(type='Adam', lr=1e-3, betas=[0.9, 0.99]),
        scheduler=dict(type='MultiStepLR', milestones=[100], gamma=0.5),
        total_iter=total_iter,
        warmup_iter=-1,
        pixel_opt=dict(type='L1Loss', loss_weight=1.0),
    )
    train.update(train_overrides)
    return dict(
        name=name,
        model_type='RSSRModel',
        scale=4,
        num_gpu=0,
        manual_seed=0,
        datasets=dict(
            train=dict(
                dataset,
                name='train',
                gt_size=16,
                use_hflip=True,
                use_rot=True,
                num_worker_per_gpu=workers,
                batch_size_per_gpu=2,
                dataset_enlarge_ratio=1,
                prefetch_mode=None,
            ),
            val=dict(dataset, name='val'),
        ),
        network_g=dict(type='MSRResNet', num_feat=8, num_block=1, upscale=4),
        path=dict(pretrain_network_g=None, strict_load_g=True, resume_state=None),
        train=train,
        val=dict(
            val_freq=save_freq,
            save_img=False,
            metrics=dict(psnr=dict(type='calculate_psnr', crop_border=4, test_y_channel=False)),
        ),
        logger=dict(
            print_freq=1, save_checkpoint_freq=save_freq, use_tb_logger=False, wandb=dict(project=None, resume_id=None)
        ),
        dist_params=dict(backend='gloo', port=29500),
    )


def dump(opt, path):
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f)
    return str(path)


REPO = Path(__file__).resolve().parents[2]
# CPU only, one thread: the subprocess runs beside the test process.
SUBPROCESS_ENV = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')


def run_test_script(opt_file, cwd):
    """Run BasicSR's test pipeline, ``scripts/test.py -opt opt_file``, in ``cwd``; return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, str(REPO / 'scripts' / 'test.py'), '-opt', str(opt_file)],
        cwd=cwd,
        env=SUBPROCESS_ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def state_iters(exp_dir):
    """The iterations of the training states saved under ``exp_dir/training_states``, sorted."""
    return sorted(int(Path(p).stem) for p in glob.glob(str(exp_dir / 'training_states' / '*.state')))


def free_port():
    """A TCP port free on 127.0.0.1 now (for a DDP run's ``--master_port``)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def pytorch_init(net):
    """Re-initialise ``net``'s convs with PyTorch's default init and return it.

    BasicSR's archs scale their initial weights by 0.1, which leaves the output
    close to the bilinear/identity path: tests that must tell weights (or tile
    seams) apart need larger ones.
    """
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.reset_parameters()
    return net


# Tiny versions of rssr's two archs (seconds per iteration on CPU), for the entry-point tests.
TINY_NETWORKS = {
    'FAT': dict(
        type='FAT', upscale=4, embed_dim=8, num_blocks=1, depth=1, num_heads=2, window_size=2, fssa_chunk_size=8
    ),
    'TSFNet': dict(type='TSFNet', upscale=4, num_feat=8, num_block=1),
}
