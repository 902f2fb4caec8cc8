"""rssr's applications: the commands users run (benchmark, scene inference, export, LAM, degrade, denoise, demo).

Each sub-package or module is one command; :mod:`.cli` holds their console
entry points. They stand on the machinery in :mod:`rssr_utils` and on
BasicSR's registries as :func:`rssr_patches.import_registries` sets them up.
"""
