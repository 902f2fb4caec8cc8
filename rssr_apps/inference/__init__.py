"""Scene inference: :class:`TiledSR` (tiles and blending), raster I/O, and the ``rssr-infer`` command line."""

from rssr_utils.tiling import TiledSR, blend_weights, tile_starts

from .cli import main, super_resolve_file

__all__ = ['TiledSR', 'blend_weights', 'main', 'super_resolve_file', 'tile_starts']
