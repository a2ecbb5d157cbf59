"""The transformer's whole forward replayed as one CUDA graph per input shape.

A --fast pass launches ~660 kernels from Python (diffusers' patchify and padding, 34 compiled blocks,
torchao's activation quantisation); the profile (bench/profile_fast_H200.json) shows the GPU idle for
~5 ms of each 70 ms pass while the CPU catches up. Replaying a captured graph launches them all at once.
torch.compile's own CUDA graphs ("reduce-overhead") would need the whole model in one compiled graph,
which diffusers' list-of-tensors forward does not give: so the capture is done here, around it.

A new shape (size, batch or prompt length) runs its first CUDA_GRAPH_CAPTURE_AT - 1 passes plain, and the
capture comes at the next one: those plain passes are the warm-up a capture needs (compile, kernel choice,
the allocator), and their outputs are the real ones. The capture used to run 2 warm-up forwards of its own
on a side stream and throw their outputs away: ~0.15 s per new shape at 1 MP, paid ~30 times over the
article's five experiments (24 shapes, ~2 images each; bench/fast_shapes_sweep_order_H200.json is after).

A batch of several images (guidance > 0 batches the prompt with the negative prompt) runs as one pass per
image, each with its own graph. The blocks are compiled for a batch of one with dynamic sequence lengths,
so a batch of 2 would compile them all again (~17 s cold on an H200) and pad the shorter prompt behind
an attention mask; one image at a time reuses the compiled blocks and needs no mask (the five experiments'
4 guidance > 0 images: 6.9 s, against 11.5 s plain, bench/fast_shapes_sweep_order_H200.json). The images are
independent in the batched forward (the mask keeps padding out of attention, every other op is per
token), so the split is equal to it within rounding (tests/speed/test_graphs.py). Beside a ControlNet its
forward is split the same way (`SplitControlForward`): it returns each image's hints, and the transformer
takes image i's with image i, so neither compiles for a batch of 2.

Safe by construction: only the basic (non-omni) forward without gradients is graphed, the weights must
stay where they were at capture (checked every call: offloading or an OOM retry that moves them drops
the graphs), and any failure to capture falls back to the plain forward for good, saying why.
"""

from __future__ import annotations

import collections
import collections.abc
import logging

import torch

from .. import defaults

log = logging.getLogger(__name__)


class _Graph:
    def __init__(self, graph, x, t, cap, out):
        self.graph, self.x, self.t, self.cap, self.out = graph, x, t, cap, out


class GraphedForward:
    """Installed as `transformer.forward`; hooks on the module (zturbo's pass counter) still run each call."""

    def __init__(self, module: torch.nn.Module, max_graphs: int = defaults.CUDA_GRAPH_SHAPES):
        self.module = module
        self.plain = module.forward
        self.max_graphs = max_graphs
        self.graphs: collections.OrderedDict[tuple, _Graph] = collections.OrderedDict()
        self.seen: collections.Counter[tuple] = collections.Counter()  # plain passes per shape not yet captured
        self.pool = None  # one pool for every shape (they never run at once), made at the first capture
        self.failed: str | None = None
        self.paused = False  # set while something must see every forward run in Python (zturbo trace's hooks)
        # two plain parameters, first and last: moving the model (offload, .to()) swaps their storage
        params = [p for p in module.parameters() if type(p) is torch.nn.Parameter] or list(module.parameters())
        self.sentinels = (params[0], params[-1])
        self.weights = self._weights()

    def _weights(self) -> tuple:
        return tuple((p.device, p.data_ptr()) for p in self.sentinels)

    def _key(self, x, t, cap) -> tuple | None:
        if (torch.is_grad_enabled() or not isinstance(x, list) or not x or not isinstance(x[0], torch.Tensor)
                or not isinstance(cap, list) or not isinstance(t, torch.Tensor) or x[0].device.type != "cuda"):
            return None
        return (tuple((v.shape, v.dtype) for v in x), (t.shape, t.dtype), tuple((c.shape, c.dtype) for c in cap))

    def __call__(self, x, t, cap_feats, *args, return_dict: bool = True, **kwargs):
        hints = kwargs.get("controlnet_block_samples")
        per_image = hints.images if isinstance(hints, PerImageHints) else None  # from SplitControlForward
        # the pipeline passes joint_attention_kwargs=None; anything actually set takes the plain forward
        others = args or any(v is not None for k, v in kwargs.items() if k != "controlnet_block_samples")
        if (not (others or self.paused) and self._splittable(x, t, cap_feats)
                and (hints is None or (per_image is not None and len(per_image) == len(x)))):
            out = [self(x=[xi], t=t[i:i + 1], cap_feats=[ci], return_dict=False,
                        **{**kwargs, "controlnet_block_samples": per_image[i] if per_image else None})[0][0]
                   for i, (xi, ci) in enumerate(zip(x, cap_feats))]
            return self._wrap(out, return_dict)
        if per_image is not None:  # not split (zturbo trace pauses the split): the batched hints
            kwargs["controlnet_block_samples"] = hints.batched()
        extra = others or hints is not None
        key = None if (extra or self.failed or self.paused) else self._key(x, t, cap_feats)
        if key is not None and self._weights() != self.weights:
            self.drop("the transformer's weights moved (offloading or an OOM retry)")
            key = None
        if key is None:
            return self.plain(x, t, cap_feats, *args, return_dict=return_dict, **kwargs)
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.seen) > 4 * self.max_graphs:  # shapes seen once or twice and never again (short img2img)
                self.seen.clear()
            self.seen[key] += 1
            if self.seen[key] < defaults.CUDA_GRAPH_CAPTURE_AT:  # a real pass that warms this shape up
                return self.plain(x, t, cap_feats, return_dict=return_dict)
            del self.seen[key]
            entry = self._capture(key, x, t, cap_feats)
            if entry is None:
                return self.plain(x, t, cap_feats, return_dict=return_dict)
        self.graphs.move_to_end(key)
        for dst, src in zip(entry.x + [entry.t] + entry.cap, list(x) + [t] + list(cap_feats)):
            dst.copy_(src)
        entry.graph.replay()
        return self._wrap([o.clone() for o in entry.out], return_dict)  # the next replay writes over the static ones

    @staticmethod
    def _wrap(out: list, return_dict: bool):
        if return_dict:
            from diffusers.models.modeling_outputs import Transformer2DModelOutput

            return Transformer2DModelOutput(sample=out)
        return (out,)

    @staticmethod
    def _splittable(x, t, cap) -> bool:
        """A basic-mode batch of more than one image (guidance > 0 batches the prompt with the negative one)."""
        return (isinstance(x, list) and len(x) > 1 and all(isinstance(v, torch.Tensor) for v in x)
                and isinstance(cap, list) and len(cap) == len(x) and isinstance(t, torch.Tensor)
                and t.shape == (len(x),) and not torch.is_grad_enabled())

    def _capture(self, key, x, t, cap) -> _Graph | None:
        """Capture the forward for this shape (warmed up by the plain passes before it); None if it fails."""
        sx, st, scap = [v.clone() for v in x], t.clone(), [c.clone() for c in cap]
        try:
            if self.pool is None:
                self.pool = torch.cuda.graph_pool_handle()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
                out = self.plain(sx, st, scap, return_dict=False)[0]
        except Exception as exc:  # a kernel that cannot be captured: the plain forward from now on
            self.drop(f"capture failed ({type(exc).__name__}: {str(exc)[:160]})")
            return None
        while len(self.graphs) >= self.max_graphs:
            self.graphs.popitem(last=False)
        self.graphs[key] = entry = _Graph(graph, sx, st, scap, list(out))
        return entry

    def drop(self, why: str) -> None:
        """Forget every graph and run the plain forward from now on."""
        if not self.failed:
            log.warning("CUDA graphs off: %s", why)
        self.failed = why
        self.graphs.clear()


class PerImageHints(collections.abc.Mapping):
    """A ControlNet's hints for a batch, kept per image: `images[i]` is {transformer layer: (1, L_i, dim)}.
    GraphedForward hands image i its own; read as a mapping it is the batched dict diffusers' forward takes
    (made on first read), so a forward that does not split still gets every hint."""

    def __init__(self, images: list[dict]):
        self.images = images
        self._batched: dict | None = None

    def batched(self) -> dict:
        if self._batched is None:
            from torch.nn.utils.rnn import pad_sequence

            # the batched transformer masks and drops each image's padding rows: zeros there change nothing
            self._batched = {k: pad_sequence([h[k][0] for h in self.images], batch_first=True)
                             for k in self.images[0]}
        return self._batched

    def __getitem__(self, layer):
        return self.batched()[layer]

    def __iter__(self):
        return iter(self.images[0])

    def __len__(self) -> int:
        return len(self.images[0])


class SplitControlForward:
    """Installed as `controlnet.forward` beside a GraphedForward: a batch of several images (guidance > 0)
    runs one image at a time, as the transformer does, and returns PerImageHints."""

    def __init__(self, controlnet: torch.nn.Module, graphed: GraphedForward):
        self.plain, self.graphed = controlnet.forward, graphed

    def __call__(self, x, t, cap_feats, control_context, *args, **kwargs):
        if (args or self.graphed.paused or not GraphedForward._splittable(x, t, cap_feats)
                or not isinstance(control_context, torch.Tensor) or control_context.shape[0] != len(x)):
            return self.plain(x, t, cap_feats, control_context, *args, **kwargs)
        return PerImageHints([self.plain([xi], t[i:i + 1], [ci], control_context[i:i + 1], **kwargs)
                              for i, (xi, ci) in enumerate(zip(x, cap_feats))])


def install(transformer: torch.nn.Module, controlnet: torch.nn.Module | None = None) -> GraphedForward:
    """Replay `transformer`'s forward from CUDA graphs, one image of a batch at a time; `controlnet` (run
    beside it) split the same way (idempotent)."""
    graphed = transformer.__dict__.get("forward")
    if not isinstance(graphed, GraphedForward):
        graphed = transformer.forward = GraphedForward(transformer)
    if controlnet is not None and not isinstance(controlnet.__dict__.get("forward"), SplitControlForward):
        controlnet.forward = SplitControlForward(controlnet, graphed)
    return graphed
