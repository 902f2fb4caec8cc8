"""HR denoising: NLM and BM3D reduce noise, keep bit depth, never work in place; prepare_dataset.py --denoise."""

import json

import cv2
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize

from rssr_apps.denoise import main as denoise_main
from rssr_data.denoise import denoise, psnr
from tests.helpers.data import run_script


def clean_and_noisy(size=40, dtype=np.uint8, seed=0, sigma=8):
    rng = np.random.default_rng(seed)
    peak = np.iinfo(dtype).max
    clean = cv2.GaussianBlur(rng.random((size, size, 3)), (0, 0), 3)
    clean = (clean - clean.min()) / (clean.max() - clean.min()) * 0.8 + 0.1
    noisy = clean + rng.normal(0, sigma / 255, clean.shape)
    to_int = lambda x: np.clip(np.round(x * peak), 0, peak).astype(dtype)  # noqa: E731
    return to_int(clean), to_int(noisy)


# 16-bit NLM uses OpenCV's L1 weighting, which needs a larger h for the same effect (rssr_data.denoise).
@pytest.mark.parametrize(
    'method, dtype, strength',
    [('nlm', np.uint8, 4), ('nlm', np.uint16, 12), ('bm3d', np.uint8, 8), ('bm3d', np.uint16, 8)],
)
def test_denoising_removes_noise_and_keeps_the_type(method, dtype, strength):
    clean, noisy = clean_and_noisy(size=64, dtype=dtype)
    out = denoise(noisy, method, strength=strength)
    assert out.dtype == dtype and out.shape == noisy.shape
    assert psnr(clean, out) > psnr(clean, noisy) + 1


def test_denoise_tool_writes_copies_with_provenance(tmp_path):
    src = tmp_path / 'HR'
    (src / 'cls').mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(src / ('cls' if i else '') / f'n{i}.png'), clean_and_noisy(seed=i)[1])
    cv2.imwrite(str(src / 'j.jpg'), clean_and_noisy(seed=5)[1])
    before = {p: p.read_bytes() for p in src.rglob('*.*')}
    denoise_main(['--input', str(src), '--output', str(tmp_path / 'nlm'), '--method', 'nlm', '--strength', '6'])
    assert {p: p.read_bytes() for p in src.rglob('*.*')} == before  # never in place
    prov = json.loads((tmp_path / 'nlm' / 'provenance.json').read_text())
    assert prov['settings']['method'] == 'nlm' and prov['settings']['strength'] == 6
    assert sorted(prov['images']) == ['cls/n1', 'cls/n2', 'j', 'n0']
    out = cv2.imread(str(tmp_path / 'nlm' / 'cls' / 'n1.png'), cv2.IMREAD_UNCHANGED)
    original = cv2.imread(str(src / 'cls' / 'n1.png'), cv2.IMREAD_UNCHANGED)
    assert prov['images']['cls/n1']['psnr_vs_original'] == round(psnr(original, out), 4)
    assert (tmp_path / 'nlm' / 'j.png').is_file()  # JPEG inputs are not re-compressed
    with pytest.raises(SystemExit, match='is the input'):
        denoise_main(['--input', str(src), '--output', str(src), '--method', 'nlm'])
    with pytest.raises(SystemExit, match='pass --resume'):
        denoise_main(['--input', str(src), '--output', str(tmp_path / 'nlm'), '--method', 'nlm'])


def test_prepare_dataset_denoise(tmp_path):
    src = tmp_path / 'download'
    for cls in ('a', 'b'):
        (src / cls).mkdir(parents=True)
        for i in range(5):
            cv2.imwrite(str(src / cls / f'{cls}{i}.png'), clean_and_noisy(size=32, seed=i)[1])
    out = tmp_path / 'prepared'
    args = ['--dataset', 'other', '--src', src, '--out', out, '--scales', '4', '--workers', '1']
    proc = run_script('prepare_dataset.py', *args, '--denoise', 'nlm')
    assert proc.returncode == 0, proc.stderr
    prov = json.loads((out / 'provenance.json').read_text())
    assert prov['settings']['method'] == 'nlm' and len(prov['images']) == 10
    rel = (out / 'splits' / 'train.txt').read_text().split()[0]
    hr = cv2.imread(str(out / 'train' / 'HR' / rel), cv2.IMREAD_UNCHANGED)
    original = cv2.imread(str(src / rel), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(hr, denoise(original, 'nlm')) and not np.array_equal(hr, original)
    lr = cv2.imread(str(out / 'train' / 'LR_x4' / rel), cv2.IMREAD_UNCHANGED)
    expected = np.clip(np.round(imresize(hr.astype(np.float64) / 255, 1 / 4) * 255), 0, 255)
    np.testing.assert_array_equal(lr, expected)  # LR from the denoised HR
    proc = run_script('prepare_dataset.py', *args, '--denoise', 'bm3d')
    assert proc.returncode != 0 and 'was made with other settings (method, options differ)' in proc.stderr


def test_prepare_dataset_denoise_lists_every_bad_hr_and_honours_max_pixels(tmp_path):
    src = tmp_path / 'download'
    for cls in ('a', 'b'):
        (src / cls).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(src / cls / f'{cls}{i}.png'), clean_and_noisy(size=32, seed=i)[1])
    (src / 'a' / 'a1.png').write_bytes(b'not a png')
    (src / 'b' / 'b2.png').write_bytes(b'')
    cv2.imwrite(str(src / 'b' / 'b3.png'), clean_and_noisy(size=48)[1])  # 48 x 48 > --max-pixels 2000
    out = tmp_path / 'prepared'
    args = ['--dataset', 'other', '--src', src, '--out', out, '--scales', '4', '--workers', '1', '--max-pixels', 2000]
    proc = run_script('prepare_dataset.py', *args, '--fractions', 0.5, 0.25, 0.25, '--denoise', 'nlm')
    assert proc.returncode == 1
    listed = proc.stderr.split('are bad and were not copied')[1]
    for name in ('a1.png', 'b2.png', 'b3.png'):  # all of them, not the first one only
        assert str(src / name[0] / name) in listed, proc.stderr
    assert '3 HR image(s)' in proc.stderr and '2000' in listed
    good = [p.relative_to(src) for p in src.rglob('*.png') if p.name not in ('a1.png', 'b2.png', 'b3.png')]
    made = {p.relative_to(out).parts[-2:] for p in out.glob('*/LR_x4/*/*.png')}
    assert made == {rel.parts for rel in good}  # the good ones are denoised and downscaled
    assert not (out / 'provenance.json').exists()  # written once every HR is done
