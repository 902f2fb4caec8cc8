"""rssr's machinery: what every command and every BasicSR patch stands on.

Option files and their schema (:mod:`.options`, :mod:`.schema`), training
states (:mod:`.states`), the one weight loader and network builder
(:mod:`.weights`, :mod:`.torch_files`), radiometry (:mod:`.radiometry`), image
and raster I/O (:mod:`.image_io`, :mod:`.image_headers`), LMDB (:mod:`.lmdb_util`),
resumable image jobs (:mod:`.image_jobs`), output guards and ranged CLI numbers
(:mod:`.guards`), tiled inference (:mod:`.tiling`) and memory figures
(:mod:`.memory`). It imports ``rssr_compat`` and ``rssr_arch`` only
(docs/architecture.md); nothing here registers anything in BasicSR.
"""
