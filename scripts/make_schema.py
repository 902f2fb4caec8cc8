"""Write the option-file JSON Schema (options/schema/rssr-options.schema.json) for editors.

Usage: python scripts/make_schema.py [--check]
Option files reference it with a first line
``# yaml-language-server: $schema=./schema/rssr-options.schema.json``.
"""

import argparse
import os
import sys

import rssr_patches
from rssr_utils import schema

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='exit 1 if the committed file is not up to date')
    args = parser.parse_args()
    rssr_patches.import_registries()
    path = os.path.join(REPO, schema.SCHEMA_FILE)
    text = schema.json_schema_text()
    if args.check:
        with open(path, encoding='utf-8') as f:
            sys.exit(0 if f.read() == text else f'{path} is out of date; run python scripts/make_schema.py')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)
    print(f'{path}: {len(text)} bytes')


if __name__ == '__main__':
    main()
