"""The PSNR-vs-FLOPs figure of a benchmark."""


def plot_psnr_vs_flops(result, file):
    """PSNR (RGB) against GFLOPs, one column per test set, bubble area proportional to parameters.

    Models without a PSNR (random init, or failed on the set) are drawn hollow on a
    strip under each panel, at their GFLOPs, so the cost comparison stays complete.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    datasets = [n for n, v in result['datasets'].items() if isinstance(v, int)] or [None]
    metrics = result['setup'].get('metrics') or ['psnr_rgb']
    metric = next((m for m in ('psnr_rgb', 'band_psnr') if m in metrics), metrics[0])  # multispectral: band PSNR
    models = [row for row in result['models'] if row.get('flops')]
    max_params = max([row['params'] for row in models] + [1])
    lanes = max(sum(1 for row in models if not name or f'{name}/{metric}' not in row) for name in datasets)
    fig, axes = plt.subplots(
        2,
        len(datasets),
        figsize=(6.5 * len(datasets), 5 + 0.3 * lanes),
        squeeze=False,
        sharex='col',
        gridspec_kw={'height_ratios': [4, 0.4 + 0.3 * lanes]},
    )
    for column, name in enumerate(datasets):
        top, strip = axes[0][column], axes[1][column]
        lane = 0
        for row in models:
            gflops, size = row['flops'] / 1e9, 40 + 1500 * row['params'] / max_params
            psnr = row.get(f'{name}/{metric}') if name else None
            if psnr is None:  # one lane per model, so that labels never overlap
                strip.scatter(gflops, lane, s=min(size, 120), facecolors='none', edgecolors='k')
                strip.annotate(
                    f'{row["model"]} ({row.get("weights", "?")}, {row["params"] / 1e6:.2f} M)',
                    (gflops, lane),
                    fontsize=7,
                    xytext=(7, -3),
                    textcoords='offset points',
                )
                lane += 1
            else:
                top.scatter(gflops, psnr, s=size, alpha=0.6, edgecolors='k')
                top.annotate(row['model'], (gflops, psnr), fontsize=8, xytext=(5, 5), textcoords='offset points')
        top.set_xscale('log')
        if models:
            top.set_xlim(min(r['flops'] for r in models) / 3e9, max(r['flops'] for r in models) * 8 / 1e9)
        top.margins(y=0.15)
        top.set_ylabel({'psnr_rgb': 'PSNR RGB (dB)', 'band_psnr': 'band PSNR (dB)'}.get(metric, metric))
        scale = result['setup']['scale']
        top.set_title(f'x{scale} on {name} (bubble area ~ parameters)' if name else f'x{scale}: no test set')
        strip.set_yticks([])
        strip.set_ylim(lanes - 0.4, -0.6)
        strip.set_ylabel(f'no {metric}', fontsize=8)
        strip.set_xlabel(f'GFLOPs at input {"x".join(map(str, result["setup"]["input_shape"]))} (log)')
    fig.tight_layout()
    fig.savefig(file, dpi=120)
    plt.close(fig)
