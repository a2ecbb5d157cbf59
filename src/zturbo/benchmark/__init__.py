"""zturbo bench, the application: it measures the runtime in zturbo.speed, never the other way round.

    harness.py    stock diffusers against zturbo's fast paths, in one run on one card (zturbo bench)
    quality.py    PSNR / SSIM of a fast path's images against bf16 eager ones (zturbo bench --quality)
    randmodel.py  random weights of the real architecture (they time like the released checkpoint)
"""
