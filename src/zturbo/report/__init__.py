"""zturbo report: any sweep folder -> an offline, interactive field guide with measured metrics.

    sweepdir.py  the sweep folder (zturbo.sweep.load_sweep) as items with a status
    metrics.py   numbers from pixels: SSIM, PSNR, MAD, contrast, saturation, clipping, detail, duplication
    analysis.py  which metric answers which experiment's question; captions, charts, tables
    learned.py   LPIPS / CLIP only when their weights are already on disk
    svg.py       small inline charts
    page.py      the HTML (templates/index.html); static/ holds the page's CSS and JS
    build.py     build_report(DIR) -> DIR/report/index.html
"""

from .build import build_report

__all__ = ["build_report"]
