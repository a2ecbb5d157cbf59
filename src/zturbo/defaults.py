"""The one table of defaults. Every other module imports from here; each value names its source."""

from __future__ import annotations

# --- the model (the Tongyi-MAI/Z-Image-Turbo model card and its hub configs) ---
MODEL_ID = "Tongyi-MAI/Z-Image-Turbo"
GGUF_REPO = "unsloth/Z-Image-Turbo-GGUF"
# --quant NAME -> file in GGUF_REPO (the article's Experiment 6: Q8, Q4, Q2)
GGUF_FILES = {
    "q8": "z-image-turbo-Q8_0.gguf",
    "q4": "z-image-turbo-Q4_K_M.gguf",
    "q2": "z-image-turbo-Q2_K.gguf",
}
QUANTS = ("bf16", *GGUF_FILES)
TINY_MODEL = "tiny"  # the offline random-weight demo/test model (zturbo.models.tiny)

# --- generation knobs (article Part 2; steps = transformer passes on diffusers >= 0.39, measured on 0.42.1) ---
STEPS = 8  # the distilled schedule: 8 transformer passes on diffusers >= 0.39
GUIDANCE = 0.0  # Turbo has CFG baked in (article, Experiment 2)
# Refused above this: the article sweeps 0-1 and notes 1-7 only tightens the prompt; a huge scale overflows
# the guided prediction to NaN (a black image) where a one-line error says more
GUIDANCE_MAX = 30.0
WIDTH = 1024
HEIGHT = 1024
MAX_SEQUENCE_LENGTH = 512  # the pipeline's prompt cap, in tokens after the chat template
SIZE_MULTIPLE = 16  # VAE 8x times patch 2 (article Part 3, Step 4)
# the transformer's RoPE table holds 512 positions per image axis (axes_lens [1536, 512, 512]): 512 patches x 16 px;
# a longer side indexes past it (IndexError deep in the model)
MAX_SIDE = 512 * SIZE_MULTIPLE
# image-to-image / inpainting: diffusers' own defaults (ZImageImg2ImgPipeline 0.6, ZImageInpaintPipeline 1.0)
STRENGTH = 0.6
INPAINT_STRENGTH = 1.0
INPUT_FORMATS = ("PNG", "JPEG", "WEBP")  # the only decoders an input image may reach (Pillow names)
MAX_INPUT_MEGAPIXELS = 64.0  # decompression-bomb guard, checked from the header before decoding (1 MP = 1024x1024)
# ControlNet (Fun-Controlnet-Union): diffusers' ZImageControlNetPipeline default scale; the model card works in
# 0.65..1.0, and past 2 the hints swamp the base model's own activations (noise)
CONTROL_SCALE = 0.75
CONTROL_SCALE_MAX = 2.0
CONTROL_TYPES = ("none", "canny")  # none: the control image is used as given (an edge/depth/pose map)
CANNY_LOW, CANNY_HIGH, CANNY_BLUR = 100.0, 200.0, 1.0  # OpenCV-style thresholds on the 3x3 Sobel magnitude
TINY_CONTROLNET_SEED = 1  # the tiny model's ControlNet weights

# --- limits on input (issue 2) ---
MIN_STEPS, MAX_STEPS = 1, 100
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed accepts 0..2^64-1
MEGAPIXEL = 1024 * 1024  # "1 MP" = 1024x1024, the model's native size
MAX_MEGAPIXELS = 4.0  # total-pixel cap; --max-megapixels raises it

# --- output ---
OUTPUT_DIR = "outputs"
PROMPT_CACHE_SIZE = 64  # prompts whose embeddings are kept per engine

# Black-output detector: an image whose brightest channel value stays under this (0..255)
BLACK_MAX_VALUE = 8

# --- sweeps (issue 3; the article's Part 2 experiments) ---
# The article's fixed settings: prompt 183 (the robot), seed 42, 9 steps, portrait 720x1280.
SWEEP_SEED = 42
SWEEP_STEPS = 9  # the article's "9 steps"; on diffusers >= 0.39 that is 9 passes (see sweep.specs)
SWEEP_SIZE = (720, 1280)  # width, height (the article's W, H = 720, 1280)
SWEEP_QUANTS = ("bf16", "q8", "q4", "q2")  # Experiment 6: bf16, then the GGUF files
# --quants may add --fp8's tiers (bf16 weights, FP8 GEMMs; a GPU with sm_89+): the calibrated policy, and every
# block GEMM in FP8 uncalibrated. Not in the default: without FP8 tensor cores their items cannot be made.
SWEEP_FP8_TIERS = ("fp8", "fp8-all")
SWEEP_QUANT_CHOICES = (*QUANTS, *SWEEP_FP8_TIERS)
SWEEP_LADDER_BASE = (256, 144)  # Experiment 5: the smallest 16:9 box on the 16-grid, times n = 3..8
SWEEP_DIR = "sweeps"
SWEEP_PNG_BYTES_PER_PIXEL = 3.0  # worst case (uncompressible RGB) for the free-disk check
SWEEP_DISK_MARGIN_BYTES = 64 * 2**20  # room kept free beyond the estimate
# --dry-run time estimate (and the relative cost that balances shards and drives the progress bar).
# An image: passes x (pass_s + pass_s_per_mp x MP) + decode_s_per_mp x MP, x gguf_factor for a GGUF quant;
# a run: startup_s + load_s per precision. Each set names what it was measured on, and the dry run says so.
# The real model, bf16 on an NVIDIA H200 (stock diffusers measured on it: forward 0.148 s, decode 0.087 s at 1 MP;
# Q8_0 GGUF forward 1.24x slower); 30 s a load is a rough figure for the 33 GB from a local disk, not a measurement.
SWEEP_EST_GPU = {"measured_on": "NVIDIA H200", "pass_s": 0.0, "pass_s_per_mp": 0.148, "decode_s_per_mp": 0.087,
                 "gguf_factor": 1.24, "startup_s": 0.0, "load_s": 30.0}
# --fast / --fp8 on the same card: a pass per MP (bench/speed_tiers_H200.json: the DiT's 0.095 / 0.068 s a pass at
# 1024x1024); the compile on a filled compile cache (the first image's time over plain's in one process,
# bench/fast_shapes_sweep_order_H200.json: 4.0 / 2.1 s) and on an empty one (lossless: 21 s there; fp8: what
# `zturbo sweep --fp8`'s first run paid over its second, bench/sweep_cli_H200.json, 110.9 - 72.5 s, plus the
# second's 2.1 s, less the 7.0 s calibration it printed: 33.5 s, the weights' hashing included); --fp8's one
# calibration per weights. A sweep's "fp8"/"fp8-all" quant columns run at the fp8 pass rate
SWEEP_EST_GPU_TIERS = {
    "lossless": {"pass_s_per_mp": 0.095, "compile_s": 21.0, "compile_warm_s": 4.0, "calibrate_s": 0.0},
    "fp8": {"pass_s_per_mp": 0.068, "compile_s": 33.5, "compile_warm_s": 2.1, "calibrate_s": 7.0},
}
# The tiny demo model on a CPU, measured on the 2-core development machine (1 thread): ~0.02 s a pass at
# 32x32, 0.21 s a pass and ~1 s a decode at 512x512, GGUF passes ~4x slower; ~8 s for imports + the first load.
SWEEP_EST_TINY_CPU = {"measured_on": "a 2-core CPU", "pass_s": 0.02, "pass_s_per_mp": 0.8, "decode_s_per_mp": 4.0,
                      "gguf_factor": 4.0, "startup_s": 7.0, "load_s": 1.0}

# --- zturbo serve (issue 8) ---
SERVER_HOST = "127.0.0.1"  # loopback unless told otherwise (a local tool: other machines must be asked for)
SERVER_PORT = 7860
SERVER_QUEUE_BOUND = 16  # jobs waiting behind the running one; more get HTTP 503
SERVER_RETRY_AFTER_S = 5  # Retry-After on a 503 (queue full)
SERVER_MAX_BODY_BYTES = 64 * 1024  # request body cap: a prompt is text, 64 KiB is plenty
SERVER_MAX_UPLOAD_BYTES = 32 * 1024 * 1024  # one uploaded input image or mask (/v1/images/edits, /api/uploads)
SERVER_MAX_IMAGES = 4  # images per request (n)
SERVER_HISTORY_PAGE = 24  # images per /api/history page
SERVER_HISTORY_MAX_PAGE = 200  # the largest ?limit= a client may ask for
SERVER_JOBS_KEPT = 500  # finished jobs remembered in memory (images stay in the history)
SERVER_PREVIEW_PX = 96  # longest side of a pass preview (JPEG data URL)
SERVER_SHUTDOWN_GRACE_S = 10.0  # how long shutdown waits for the cancelled job to stop
SERVER_PENDING_SAVES = 4  # generations whose PNGs may wait for the encoder thread; then the worker waits (memory)
SERVER_HISTORY_DB = "history.sqlite"  # in the output folder, beside the images
SERVER_MAX_LORAS = 8  # LoRAs one request may name (--lora-dir)
SERVER_LORA_ADAPTERS_KEPT = 8  # per-request LoRAs kept loaded as adapters; the least recently used goes first

# --- --fast and --gguf-mode (issue 6; measured in bench/speed_*.json) ---
# ondemand: diffusers dequantises GGUF blocks inside every forward (the article's recipe);
# bf16 / fp8: dequantise once at load; auto: fp8 on FP8 tensor cores, else bf16 if it fits, else ondemand
GGUF_MODES = ("auto", "ondemand", "bf16", "fp8")
# --fast's two tiers: lossless = bf16 compute (compiled fused blocks, CUDA graphs, best attention, unpadded
# prompts), equal to plain within bf16 rounding; fp8 (--fp8) = lossless + FP8 GEMMs, a lossy trade chosen
FAST_TIERS = ("lossless", "fp8")
FP8_MIN_CAPABILITY = (8, 9)  # FP8 tensor cores: Ada (sm_89), Hopper (sm_90) and newer
# diffusers attention backends, fastest first; the first one installed and working is used. On an H200
# (torch 2.11) plain SDPA ("native") beat "_native_cudnn" and "_native_flash" at the 1 MP shape
# (0.56 / 0.65 / 0.94 ms a call, bench/speed_H200.json); FlashAttention-3 is tried first where installed
ATTENTION_BACKENDS = ("_flash_3", "native")
FP8_ACTIVATION_AMAX_FLOOR = 1e-12  # torchao activation_value_lb: no 0/0 scale on an all-zero row
# --fp8's calibrated layer policy (speed/fp8_policy.py). One bf16 generation on the user's weights measures each
# block GEMM's FP8 relative output error ||y_fp8 - y|| / ||y|| on real activations (torchao's row-wise FP8
# emulated in float32). The budget bounds the MEAN of those errors over the 136 GEMMs (q/k/v and gate+up fused,
# as --fast runs them; a GEMM kept in bf16 counts 0): the most sensitive stay bf16 until it holds. Row-wise
# e4m3 (3 mantissa bits) gives 3.7% on well-conditioned Gaussian data at the DiT's shapes (measured on a CPU):
# 4% lets such layers through and pulls the outliers out. Not tuned against image PSNR on real weights (none
# here): zturbo bench --quality measures that on yours.
FP8_BUDGET = 0.04
FP8_CALIBRATION_PROMPT = "a red fox in the snow, morning light, shallow depth of field"
FP8_CALIBRATION_SEED = 42
FP8_CALIBRATION_SIZE = (1024, 1024)  # the model's native size: the activations --fp8 will mostly see
FP8_CALIBRATION_SIZE_TINY = (64, 64)  # the tiny demo model on a CPU
FP8_CALIBRATION_ROWS = 256  # activation rows sampled per GEMM per pass: the error is measured on these only
FP8_POLICY_DIR = "fp8-policy"  # calibrations cached by weights hash under zturbo's cache
FP8_POLICY_SHOWN = 3  # the most sensitive GEMMs named in the load line (zturbo bench --quality prints more)
# torch's default (8) is exceeded by a sweep: one graph per block kind x size x batch (CFG doubles it)
COMPILE_RECOMPILE_LIMIT = 64
CUDA_GRAPH_SHAPES = 4  # --fast keeps the CUDA graphs of this many recent shapes (one memory pool for all)
# --fast captures a shape's CUDA graph at its this-many-th pass; the passes before run plain (the warm-up)
CUDA_GRAPH_CAPTURE_AT = 3
COMPILE_CACHE_DIR = "torch-compile"  # TORCHINDUCTOR_CACHE_DIR under zturbo's cache: compiled once per machine
GGUF_BF16_HEADROOM_GB = 4.0  # auto picks bf16 only if the dequantised weights leave this much free
BENCH_VARIANTS = ("stock", "plain", "stock-q8", "fast", "fp8", "q8-fp8")  # zturbo bench runs them in this order
QUALITY_SEED = 42  # zturbo bench --quality: prompt i gets seed QUALITY_SEED + i

# --- zturbo report (issue 4) ---
REPORT_DIR = "report"  # DIR/report/index.html beside the sweep's images
REPORT_THUMB_PX = 512  # longest side of a thumbnail (WebP, JPEG where Pillow lacks WebP); originals are linked
REPORT_THUMB_QUALITY = 85
REPORT_CONVERGED_SSIM = 0.95  # steps: "converged" once a frame is this close (SSIM) to the last one
REPORT_DUPLICATION_FLAG = 0.6  # resolution/aspect: self-similarity at or above this flags a possible repeat
REPORT_ZOOM = 3.0  # the comparison slider's zoomed-region magnification ("head detail")

# --- under the hood: trace / verify / inspect (issue 5) ---
TRACE_PROMPT = "A sleek black helmeted robot shown in a three-quarter profile against a solid red background"
TRACE_TOKEN_PREVIEW = 24  # tokens shown from the start of the chat-templated prompt
TRACE_THUMB = 160  # filmstrip frame height in pixels
VERIFY_SIZE = 64  # side of the images verify generates to count passes (any 16-multiple counts the same)

# --- zturbo upscale (issue 9: "generate near native, then upscale", article Experiment 5) ---
UPSCALE_SUFFIXES = (".safetensors", ".pth", ".ckpt")  # .pt (TorchScript) is refused: it may run code
UPSCALE_OVERLAP = 32  # input pixels two neighbouring tiles share; blended with linear ramps
UPSCALE_MIN_TILE = 64  # the smallest tile tried before giving up on memory
UPSCALE_MAX_TILE = 2048  # larger tiles gain nothing in speed and risk the allocator
UPSCALE_TILE_MULTIPLE = 16  # tiles snap down to this (window/pixel-shuffle archs pad to 8 or 16)
UPSCALE_MEMORY_FRACTION = 0.5  # share of the free memory a tile may use (activations are estimated)
UPSCALE_PROBE_PX = 64  # side of the probe tile that measures a model's bytes per pixel on a GPU
# CPU: no allocator statistics, so a conservative estimate per input pixel: float bytes x 64 features
# x scale^2 x 8 live tensors (an ESRGAN-class guess, deliberately on the high side)
UPSCALE_CPU_BYTES_PER_PX_PER_SCALE2 = 4 * 64 * 8
UPSCALE_CPU_MAX_TILE = 512  # on a CPU, bigger tiles only cost RAM

# --- --memory and --vram-budget (issue 7; estimates measured in bench/memory_*.json) ---
# Offload modes, fastest (most GPU memory) first; an out-of-memory retry steps down this ladder.
MEMORY_MODES = ("full", "model-offload", "group-offload", "sequential")
MEMORY_CHOICES = ("auto", *MEMORY_MODES)
# Sizes in GB (1e9 bytes) on the GPU. Transformer: 6.155 B params x 2 bytes; GGUF: the unsloth files
# (article, Experiment 6), which diffusers keeps quantised. Text encoder: Qwen3-4B, 4.022 B x 2 bytes.
WEIGHTS_GB = {"bf16": 12.31, "q8": 7.22, "q4": 5.02, "q2": 3.64}
# --fp8 with the transformer placed FP8 (block GEMMs 1 byte a weight + a float32 scale a row, the rest bf16):
# counted on the published config's model (tests/memory/test_plan.py recounts it), 6.30 GB; bench/speed_H200.json
# measured 6.3 GB. GEMMs the calibrated policy keeps in bf16 add 1 byte a weight each.
FP8_TRANSFORMER_GB = 6.30
TEXT_ENCODER_GB = 8.04
VAE_GB = 0.17
# Working memory on top of the weights (per megapixel of image, where it grows with size)
DIT_ACTIVATIONS_GB_PER_MP = 0.6  # measured 0.51 (H200, bench/memory_H200.json)
GGUF_DEQUANT_GB = 0.3  # one dequantised layer at a time
VAE_DECODE_GB_PER_MP = 2.7  # untiled decode; measured 2.55
VAE_TILED_DECODE_GB = 0.7  # tiles of VAE_TILE_PX, any image size; measured 0.65 at 1 MP
VAE_TILE_PX = 512
TEXT_ENCODER_ACTIVATIONS_GB = 0.1  # measured 0.04 for a ~60-token prompt
TEXT_ENCODER_STREAM_GB = 1.4  # group offload: embedding table (0.78 GB) + two layers in flight
TRANSFORMER_STREAM_GB = 1.0  # group offload: embedders + two 0.36 GB blocks in flight
SEQUENTIAL_GB = 0.5  # sequential offload: the largest leaf module in flight
# A --controlnet counts its file's size (bf16 on disk; Union 2.1: 6.7 GB measured) where it stays resident (full,
# model-offload with the transformer, sequential), and this much under group offload: its control embedder and
# two of its blocks in flight (Union 2.x: 17 blocks of ~0.39 GB). Its hints (one per control block, tokens x dim
# in bf16: 15 x ~4600 x 3840 x 2 B at 1 MP) live through the transformer's pass. Counted from shapes, not measured.
CONTROLNET_STREAM_GB = 0.8
CONTROLNET_HINTS_GB_PER_MP = 0.55
MEMORY_HEADROOM_GB = 1.5  # allocator fragmentation (reserved ran 2.8 GB above allocated uncapped), cuBLAS workspace
AUTO_QUANTS = ("bf16", "q8", "q4")  # auto never picks q2: it changes the picture (article, Exp. 6)
PLAN_MEGAPIXELS = 1.0  # what Engine.load plans for; generate() re-plans a larger image
