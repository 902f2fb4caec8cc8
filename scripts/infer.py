"""Super-resolve whole scenes (PNG, JPEG, TIFF, GeoTIFF) in overlapping tiles.

Usage: python scripts/infer.py SCENE_OR_FOLDER OUT_DIR --arch FAT --weights FAT_x4.pth  (see --help)
"""

from rssr_apps.cli import infer

if __name__ == '__main__':
    infer()
