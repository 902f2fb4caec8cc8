"""Convert an official TSFNet or FAT checkpoint to an rssr / BasicSR checkpoint.

Usage: python scripts/convert_official_checkpoint.py --arch FAT --input best.pth --output FAT_x4.pth
The output holds ``{'params': state_dict}``, loadable with ``path.pretrain_network_g``
(or ``.safetensors`` when the output name ends so).
"""

import argparse
import os

from rssr_utils.states import save_atomic
from rssr_utils.weights import WeightsError, read_state_dict, write_safetensors


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--arch', required=True, choices=['TSFNet', 'FAT'])
    parser.add_argument('--input', required=True, help='official checkpoint (.pth / .pt)')
    parser.add_argument('--output', required=True, help='where to write the converted checkpoint')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output file')
    args = parser.parse_args()
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(f'{args.output} exists; pass --overwrite to replace it.')
    try:
        state = read_state_dict(args.input, official=True, arch=args.arch)
    except (WeightsError, FileNotFoundError) as error:
        parser.exit(2, f'convert_official_checkpoint: {error}\n')
    if args.output.endswith('.safetensors'):
        write_safetensors(state, args.output)
    else:
        save_atomic({'params': state}, args.output)  # temporary name, fsync, rename
    print(f'{args.arch}: {len(state)} tensors -> {args.output}')


if __name__ == '__main__':
    main()
