"""Convert an official TSFNet or FAT checkpoint to an rssr / BasicSR checkpoint.

Usage: python scripts/convert_official_checkpoint.py --arch FAT --input best.pth --output FAT_x4.pth
The output holds ``{'params': state_dict}``, loadable with ``path.pretrain_network_g``.
"""

import argparse
import os

import torch

import rssr_arch


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', required=True, choices=['TSFNet', 'FAT'])
    parser.add_argument('--input', required=True, help='official checkpoint (.pth / .pt)')
    parser.add_argument('--output', required=True, help='where to write the converted checkpoint')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    args = parser.parse_args()
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(f'{args.output} exists; pass --overwrite to replace it.')
    # Official checkpoints may be whole pickled objects; only load files you trust.
    checkpoint = torch.load(args.input, map_location='cpu', weights_only=False)
    state = rssr_arch.convert_official_state_dict(args.arch, checkpoint)
    tmp = args.output + '.tmp'
    torch.save({'params': state}, tmp)
    os.replace(tmp, args.output)
    print(f'{args.arch}: {len(state)} tensors -> {args.output}')


if __name__ == '__main__':
    main()
