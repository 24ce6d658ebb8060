"""Every stage's settings and the constants they share, in one place.

The settings objects are frozen dataclasses: the command line, the editor and the Python API build
one and pass it on; a changed copy is made with :func:`dataclasses.replace`, never by mutation.
``check()`` validates every field (one line naming the option on a bad value) and returns the
object, so ``settings = PreviewSettings(...).check()`` reads as one step.

This module imports nothing heavy (no torch, pandas, scipy): ``realcam --help`` reads its defaults
here for free. The checks import what they need when they run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

from .core import checks
from .core.constants import (
    CAMERA_CFG_SCHEDULES,
    DEPTH_MODEL,
    DTYPE_NAMES,
    GENERATE_MODES,
    LATENT_STRIDE,
    MASK_KERNEL,
    NUM_TRAIN_TIMESTEPS,
    OFFICIAL_NEGATIVE_PROMPT,
    RECAM_CFG,
    RECAM_FPS,
    RECAM_FRAMES,
    RECAM_SHIFT,
    RECAM_SIZE,
    RECAM_STEPS,
    TOKENIZER,
    VIDEO_FPS,
    WAN_CAMERA_EXTEND_FRAMES,
    WAN_CAMERA_TASKS,
    WAN_CAMERA_UNLABELLED,
    WAN_FPS,
    WAN_NEGATIVE_PROMPT,
    WAN_SPATIAL_STRIDE,
    WAN_TEMPORAL_STRIDE,
)
from .core.errors import RealcamError

#: How ``preview`` and ``edit`` draw the scene (``stages.preview.make_renderer``).
RENDERERS = ("surface", "points")
#: The largest preview side in pixels (H.264 levels end at 8192x4320; larger renders take
#: gigabytes per frame).
MAX_SIDE = 4096
_C_INT_MAX = 2**31 - 1
_SEED_MAX = 2**63 - 1


def _kernel(kernel) -> int:
    kernel = checks.integer(kernel, "--kernel", minimum=1, maximum=99)
    if kernel % 2 == 0:
        raise RealcamError(f"kernel must be a positive odd number, got {kernel}", "--kernel")
    return kernel


def _wan_size_frames(size, frames, frames_option: str = "--frames") -> None:
    """A Wan2.1 clip: both sides multiples of 16 (the VAE's 8x, the DiT's 2x2 patches), 4k+1 frames."""
    w, h = (checks.integer(v, "--size", minimum=1) for v in size)
    cell = 2 * WAN_SPATIAL_STRIDE  # the VAE's 8x and the DiT's 2x2 patches
    if w % cell or h % cell:
        raise RealcamError(f"width and height must be multiples of {cell}, got {w}x{h}", "--size")
    checks.integer(frames, frames_option, minimum=1)
    if (frames - 1) % WAN_TEMPORAL_STRIDE:
        raise RealcamError(
            f"must be 4k+1 (the VAE keeps the first frame, then groups of 4), got {frames}", frames_option
        )


# ----------------------------------------------------------------------------------------------
# the batch engine (every per-item stage)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchSettings:
    """Where and how a batch stage runs its items (``stages.core.batch``)."""

    workers: int = 1  # parallel workers: processes here, or Ray tasks / actors in flight
    ray: Optional[str] = None  # None: this machine; "local" starts Ray here, "auto" joins, or an address
    gpus_per_worker: Optional[float] = None  # model stages on Ray; default 1 when the cluster has GPUs
    cpus_per_task: float = 1.0  # CPUs each Ray task or actor asks for
    timeout: Optional[float] = None  # seconds an item may run before it is stopped and failed
    retries: int = 1  # re-runs of an item whose worker died, before it is recorded as failed
    overwrite: bool = False  # redo items already done
    shard: Optional[str] = None  # "I/N": only slice I (from 0) of N

    def check(self) -> "BatchSettings":
        from .core.dataset import parse_shard

        parse_shard(self.shard)
        if self.ray is not None and not str(self.ray).strip():
            raise RealcamError("give local, auto or a cluster address", "--ray")
        return replace(
            self,
            workers=checks.integer(self.workers, "--workers", minimum=1, maximum=1024),
            gpus_per_worker=None
            if self.gpus_per_worker is None
            else checks.number(self.gpus_per_worker, "--gpus-per-worker", minimum=0, maximum=64),
            cpus_per_task=checks.number(self.cpus_per_task, "--cpus-per-task", above=0, maximum=1024),
            timeout=None if self.timeout is None else checks.number(self.timeout, "--timeout", above=0),
            retries=checks.integer(self.retries, "--retries", minimum=0, maximum=100),
        )


# ----------------------------------------------------------------------------------------------
# fetch
# ----------------------------------------------------------------------------------------------
#: Ways ``fetch`` stores a clip's frames, and the frame file formats.
FETCH_STORES = ("frames", "video")
FETCH_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class FetchSettings:
    """How ``realcam fetch`` obtains, decodes and stores RealEstate10K videos."""

    videos: Optional[str] = None  # a folder of <video_id>.<ext> files (no download); None: yt-dlp
    store: str = "frames"  # frames (frames/<split>/<clip>/<ts>.<format>) or video (videos/<split>/<clip>.mp4)
    format: str = "png"  # frame files: png or jpg
    jpeg_quality: int = 95
    size: Optional[tuple[int, int]] = None  # (W, H) resize; None keeps the video's size
    crf: Optional[int] = None  # clip videos: None lossless RGB, else libx264 at this CRF
    max_height: int = 720  # yt-dlp: best MP4 no taller than this
    cookies: Optional[str] = None  # yt-dlp cookiefile
    rate_limit: Optional[str] = None  # yt-dlp ratelimit, bytes/s ("50K", "4.2M")
    retries: int = 10  # yt-dlp retries (and fragment retries)
    yt_dlp_options: tuple[tuple[str, object], ...] = ()  # any other YoutubeDL parameters
    keep_videos: bool = False  # keep downloaded videos in DATASET/videos/

    def check(self) -> "FetchSettings":
        if self.store not in FETCH_STORES:
            raise RealcamError(f"expected one of {', '.join(FETCH_STORES)}, got {self.store!r}", "--store")
        fmt = {"jpeg": "jpg"}.get(str(self.format).lower(), str(self.format).lower())
        if fmt not in FETCH_FORMATS:
            raise RealcamError(f"expected one of {', '.join(FETCH_FORMATS)}, got {self.format!r}", "--format")
        if self.videos is not None:
            checks.input_dir(self.videos, "folder of videos (--videos)")
        if self.cookies is not None:
            checks.input_file(self.cookies, "cookie file (--cookies)")
        size = None
        if self.size is not None:
            w, h = self.size
            size = (
                checks.integer(w, "--size", minimum=8, maximum=MAX_SIDE),
                checks.integer(h, "--size", minimum=8, maximum=MAX_SIDE),
            )
        return replace(
            self,
            format=fmt,
            size=size,
            jpeg_quality=checks.integer(self.jpeg_quality, "--jpeg-quality", minimum=1, maximum=100),
            crf=None if self.crf is None else checks.integer(self.crf, "--crf", minimum=0, maximum=51),
            max_height=checks.integer(self.max_height, "--max-height", minimum=16, maximum=8192),
            retries=checks.integer(self.retries, "--retries", minimum=0, maximum=1000),
            yt_dlp_options=tuple((str(k), v) for k, v in dict(self.yt_dlp_options).items()),
        )


# ----------------------------------------------------------------------------------------------
# triangulate
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TriangulateOptions:
    overlap: int = 10  # sequential matching: each frame with its next ``overlap`` frames
    max_num_features: int = 8192
    min_matches: int = 15  # verified matches needed over the whole clip
    min_points: int = 10  # triangulated points needed for a usable clip
    num_threads: int = 1  # per clip; 1 is reproducible, more (or -1, all cores) is not
    seed: int = 0  # every random choice of pycolmap (RANSAC, triangulation)

    def check(self) -> "TriangulateOptions":
        """Every option as pycolmap needs it (it aborts the process on, e.g., ``overlap <= 0``)."""
        num_threads = checks.integer(self.num_threads, "num_threads", minimum=-1, maximum=1024)
        if num_threads == 0:
            raise RealcamError("must be -1 (all cores) or at least 1, got 0", "num_threads")
        return TriangulateOptions(
            overlap=checks.integer(self.overlap, "--overlap", minimum=1, maximum=_C_INT_MAX),
            max_num_features=checks.integer(self.max_num_features, "max_num_features", minimum=1, maximum=_C_INT_MAX),
            min_matches=checks.integer(self.min_matches, "min_matches", minimum=0),
            min_points=checks.integer(self.min_points, "--min-points", minimum=0),
            num_threads=num_threads,
            seed=checks.integer(self.seed, "--seed", minimum=0, maximum=_C_INT_MAX),
        )


# ----------------------------------------------------------------------------------------------
# preview and edit
# ----------------------------------------------------------------------------------------------
def _even_sizes(w: int, h: int) -> str:
    up = f"{w + w % 2}x{h + h % 2}"
    down = f"{w - w % 2}x{h - h % 2}"
    return up if up == down else f"{up} or {down}"


def check_size(size, option: str = "--size") -> tuple[int, int]:
    """A preview size ``(W, H)``: whole numbers from 8 to :data:`MAX_SIDE`, both even (preview.mp4
    is H.264 in yuv420p, which has no odd sizes; refused rather than padded behind the user's back)."""
    try:
        w, h = (checks.integer(v, option) for v in size)
    except (TypeError, ValueError):
        raise RealcamError(f"expected WIDTHxHEIGHT, got {size!r}", option) from None
    if w < 8 or h < 8:
        raise RealcamError(f"size {w}x{h} is too small (at least 8x8)", option)
    if w > MAX_SIDE or h > MAX_SIDE:
        raise RealcamError(f"size {w}x{h} is too large (at most {MAX_SIDE} on a side)", option)
    if w % 2 or h % 2:
        raise RealcamError(
            f"size {w}x{h}: preview.mp4 (H.264, yuv420p) needs an even width and height; use {_even_sizes(w, h)}",
            option,
        )
    return w, h


@dataclass(frozen=True)
class PreviewSettings:
    """How ``preview`` builds the scene and renders the trajectory (the inputs are arguments)."""

    preset: Optional[str] = None  # instead of a trajectory file: pan-left, dolly-in, ... or A+B
    magnitude: Optional[Sequence[float] | float] = None  # preset magnitude, degrees or metres
    frames: Optional[int] = None  # default: the file's, else 16
    size: Optional[tuple[int, int]] = None  # (W, H); default: the image's, an odd side one less
    kernel: int = MASK_KERNEL
    latent_stride: int = LATENT_STRIDE
    depth_file: Optional[str] = None  # metric depth instead of predicting it
    model: Optional[str] = None  # depth model when no depth file is given
    device: str = "auto"
    fov: Optional[float] = None  # degrees across the long side, when nothing gives intrinsics
    spline: Optional[bool] = None
    easing: Optional[str] = None
    loop: Optional[bool] = None
    fps: float = VIDEO_FPS
    overwrite: bool = False
    batch_size: Optional[int] = None  # frames rendered per batch (default: all at once)
    compile: bool = False  # fuse the projection with torch.compile
    gif: bool = False  # also write preview.gif
    renderer: str = "surface"  # surface (no holes but true ones) or points (one pixel per point)

    def check(self) -> "PreviewSettings":
        from .core import trajectory as tr
        from .core.device import resolve_device

        if self.preset is not None:
            tr.preset_magnitudes(self.preset, self.magnitude)
        if self.easing is not None:
            checks.choice(self.easing, "--easing", tr.EASINGS)
        if self.depth_file is not None:
            checks.input_file(self.depth_file, "depth file")
        resolve_device(self.device)
        checks.choice(self.renderer, "--renderer", RENDERERS)
        return replace(
            self,
            fov=None if self.fov is None else checks.number(self.fov, "--fov", above=0, below=180),
            frames=None if self.frames is None else tr.check_frames(self.frames),
            size=None if self.size is None else check_size(self.size),
            kernel=_kernel(self.kernel),
            latent_stride=checks.integer(self.latent_stride, "--latent-stride", minimum=1),
            fps=checks.number(self.fps, "--fps", above=0, maximum=1000),
            batch_size=None if self.batch_size is None else checks.integer(self.batch_size, "--batch-size", minimum=1),
        )


@dataclass(frozen=True)
class EditSettings:
    """The editor: its scene (as ``preview`` builds it) and the server that shows it."""

    preset: str = "dolly-in"  # the starting path when no trajectory is given
    magnitude: Optional[Sequence[float] | float] = None
    frames: Optional[int] = None
    size: Optional[tuple[int, int]] = None  # preview panel (W, H); default 256 on the long side
    kernel: int = MASK_KERNEL
    latent_stride: int = LATENT_STRIDE
    depth_file: Optional[str] = None
    model: Optional[str] = None
    fov: Optional[float] = None
    device: str = "cpu"
    host: str = "127.0.0.1"  # localhost only by default
    port: int = 8080  # the next free one if taken; 0: any free port
    export: Optional[str] = None  # default export file (.json; .txt and .sh beside it)
    fps: float = VIDEO_FPS  # playback rate of the preview panel
    renderer: str = "surface"  # as preview's

    def check(self) -> "EditSettings":
        from .core import trajectory as tr
        from .core.device import resolve_device

        if self.export is not None:
            if not str(self.export).lower().endswith(".json"):
                raise RealcamError(f"the export file must end in .json, got {self.export}", "--export")
            checks.output_file(self.export, "--export")
        if self.depth_file is not None:
            checks.input_file(self.depth_file, "depth file")
        resolve_device(self.device)
        checks.choice(self.renderer, "--renderer", RENDERERS)
        return replace(
            self,
            size=None if self.size is None else check_size(self.size),
            frames=None if self.frames is None else tr.check_frames(self.frames),
            fov=None if self.fov is None else checks.number(self.fov, "--fov", above=0, below=180),
            kernel=_kernel(self.kernel),
            latent_stride=checks.integer(self.latent_stride, "--latent-stride", minimum=1),
            port=checks.integer(self.port, "--port", minimum=0, maximum=65535),
            fps=checks.number(self.fps, "--fps", above=0, maximum=1000),
        )


# ----------------------------------------------------------------------------------------------
# generate
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerConfig:
    """DDIM with text-image CFG, camera CFG and guidance rescale (the official demo's defaults)."""

    steps: int = 25
    eta: float = 1.0
    cfg: float = 7.5
    guidance_rescale: float = 0.7
    camera_cfg: float = 1.0
    camera_cfg_schedule: str = "constant"


@dataclass(frozen=True)
class GenerateSettings:
    """Every setting that determines the video (the record stores exactly this)."""

    res: str = "512"
    prompt: str = ""
    negative_prompt: str = OFFICIAL_NEGATIVE_PROMPT
    steps: int = SamplerConfig.steps
    eta: float = SamplerConfig.eta
    cfg: float = SamplerConfig.cfg
    guidance_rescale: float = SamplerConfig.guidance_rescale
    camera_cfg: float = SamplerConfig.camera_cfg
    camera_cfg_schedule: str = SamplerConfig.camera_cfg_schedule
    noise_shaping: Optional[int] = 900  # t_NS; 1000 = never active; None = no shaping at all
    noise_shaping_variant: str = "noise"
    kernel: int = MASK_KERNEL
    seed: int = 0
    frame_stride: int = 8
    magnitude: Optional[list[float]] = None
    fov: Optional[float] = None
    dtype: str = "fp32"
    tokenizer: str = TOKENIZER
    fps: float = VIDEO_FPS
    mode: str = "basic"  # basic | interp (end image) | loop | continue (leading frames of a video)
    end_image: Optional[str] = None
    continue_video: Optional[str] = None
    context_frames: int = 2  # leading frames taken from the video in continuation mode

    @property
    def sampler(self) -> SamplerConfig:
        return SamplerConfig(
            self.steps, self.eta, self.cfg, self.guidance_rescale, self.camera_cfg, self.camera_cfg_schedule
        )

    def check(self) -> "GenerateSettings":
        """Every setting in range (finite numbers, known names); raises naming the option."""
        checks.choice(self.mode, "mode", GENERATE_MODES)
        if self.mode == "interp" and not self.end_image:
            raise RealcamError("interpolation needs --end-image", "--end-image")
        if self.mode == "continue" and not self.continue_video:
            raise RealcamError("continuation needs --continue VIDEO", "--continue")
        checks.integer(self.context_frames, "--context-frames", minimum=1)
        checks.integer(self.steps, "--steps", minimum=1, maximum=NUM_TRAIN_TIMESTEPS)
        checks.number(self.eta, "--eta", minimum=0, maximum=1)
        checks.number(self.cfg, "--cfg", minimum=0)
        checks.number(self.guidance_rescale, "--guidance-rescale", minimum=0, maximum=1)
        checks.number(self.camera_cfg, "--camera-cfg", minimum=0)
        if self.camera_cfg != 1.0 and self.cfg == 1.0:
            raise RealcamError(
                "camera CFG acts inside text-image CFG (as the official sampler): with --cfg 1 "
                "it would be ignored; give --cfg above 1 or --camera-cfg 1",
                "--camera-cfg",
            )
        if self.noise_shaping is not None:
            checks.integer(self.noise_shaping, "--noise-shaping", minimum=0, maximum=NUM_TRAIN_TIMESTEPS)
        checks.choice(self.noise_shaping_variant, "--shaping-variant", ("noise", "z0"))
        checks.choice(self.camera_cfg_schedule, "--camera-cfg-schedule", CAMERA_CFG_SCHEDULES)
        _kernel(self.kernel)
        checks.integer(self.seed, "--seed", minimum=0, maximum=_SEED_MAX)
        checks.integer(self.frame_stride, "--frame-stride", minimum=1)
        for m in self.magnitude or []:
            checks.number(m, "--magnitude")
        if self.fov is not None:
            checks.number(self.fov, "--fov", above=0, below=180)
        checks.number(self.fps, "--fps", above=0)
        checks.choice(self.dtype, "--dtype", DTYPE_NAMES)
        return self


# ----------------------------------------------------------------------------------------------
# rerender (ReCamMaster)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RerenderSettings:
    """Every setting that determines a re-rendered video (the record stores exactly this)."""

    prompt: str = ""
    negative_prompt: str = WAN_NEGATIVE_PROMPT
    size: tuple[int, int] = RECAM_SIZE  # (W, H)
    frames: int = RECAM_FRAMES
    steps: int = RECAM_STEPS
    cfg: float = RECAM_CFG
    shift: float = RECAM_SHIFT
    seed: int = 0
    noise_shaping: Optional[float] = None  # sigma above which the preview shapes the noise; None: off
    kernel: int = MASK_KERNEL
    magnitude: Optional[list[float]] = None
    fps: float = RECAM_FPS
    dtype: str = "auto"  # bf16 on CUDA, fp32 on the CPU
    tiling: bool = True
    offload: bool = False

    def check(self) -> "RerenderSettings":
        """Every setting in range; raises naming the option."""
        _wan_size_frames(self.size, self.frames)
        checks.integer(self.steps, "--steps", minimum=1, maximum=NUM_TRAIN_TIMESTEPS)
        checks.number(self.cfg, "--cfg", minimum=0)
        checks.number(self.shift, "--shift", above=0)
        checks.integer(self.seed, "--seed", minimum=0, maximum=_SEED_MAX)
        if self.noise_shaping is not None:
            checks.number(self.noise_shaping, "--noise-shaping", minimum=0, maximum=1)
        _kernel(self.kernel)
        for m in self.magnitude or []:
            checks.number(m, "--magnitude")
        checks.number(self.fps, "--fps", above=0)
        checks.choice(self.dtype, "--dtype", ("auto", *DTYPE_NAMES))
        return self


# ----------------------------------------------------------------------------------------------
# train
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    data: str
    frames_root: str
    out: str
    res: str = "256"
    steps: int = 50_000
    batch: int = 64
    micro_batch: int = 1
    lr: float = 1e-4
    grad_clip: float = 0.5
    precision: str = "fp16"
    seed: int = 0
    relative_scale: bool = False
    base_ckpt: list[str] = field(default_factory=list)
    resume: bool = False
    ckpt_every: int = 1000
    log_every: int = 10
    workers: int = 2
    captions: Optional[str] = None
    tokenizer: str = TOKENIZER
    device: str = "auto"
    train_unet: bool = False  # full fine-tuning of the denoiser (the default trains the camera only)
    # Epipolar masks of models trained here (docs/fidelity.md): "exact" by default; "official" to
    # fine-tune the released camera weights with the masks they were trained with.
    epipolar_form: str = "exact"

    def check(self) -> "TrainConfig":
        """Every option in range and every input present, before DeepSpeed or the model start."""
        from .models.camera import EPIPOLAR_FORMS
        from .models.configs import get_config

        get_config(self.res)
        checks.integer(self.steps, "--steps", minimum=1)
        checks.integer(self.batch, "--batch", minimum=1)
        checks.integer(self.micro_batch, "--micro-batch", minimum=1)
        checks.number(self.lr, "--lr", above=0, maximum=1)
        checks.number(self.grad_clip, "grad_clip", above=0)
        checks.choice(self.precision, "--precision", ("fp16", "bf16", "fp32"))
        checks.integer(self.seed, "--seed", minimum=0, maximum=_SEED_MAX)
        checks.integer(self.ckpt_every, "--ckpt-every", minimum=1)
        checks.integer(self.log_every, "--log-every", minimum=1)
        checks.integer(self.workers, "--workers", minimum=0)
        checks.choice(self.epipolar_form, "--epipolar-form", EPIPOLAR_FORMS)
        checks.input_dir(self.data, "folder (expected the output of realcam filter)")
        checks.input_dir(self.frames_root, "dataset folder")
        for p in self.base_ckpt:
            checks.input_file(p, "base checkpoint")
        if self.captions:
            checks.input_file(self.captions, "caption table")
        checks.output_dir(self.out, "--out")
        return self


def _wan_training_run(cfg) -> None:
    """The options every Wan2.1 trainer shares (``RecamTrainConfig``, ``WanCameraTrainConfig``)."""
    _wan_size_frames(cfg.size, cfg.frames, "--num-frames")
    checks.integer(cfg.steps, "--steps", minimum=1)
    checks.integer(cfg.batch, "--batch", minimum=1)
    checks.integer(cfg.micro_batch, "--micro-batch", minimum=1)
    checks.number(cfg.lr, "--lr", above=0, maximum=1)
    checks.number(cfg.grad_clip, "grad_clip", minimum=0)
    checks.choice(cfg.precision, "--precision", ("bf16", "fp32"))
    checks.integer(cfg.seed, "--seed", minimum=0, maximum=_SEED_MAX)
    checks.number(cfg.shift, "--shift", above=0)
    checks.integer(cfg.ckpt_every, "--ckpt-every", minimum=1)
    checks.integer(cfg.log_every, "--log-every", minimum=1)
    checks.integer(cfg.workers, "--workers", minimum=0)


@dataclass(frozen=True)
class RecamTrainConfig:
    """``realcam train --model recammaster`` (the official ``train_recammaster.py`` defaults)."""

    data: str  # MultiCamVideo root
    out: str
    base: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    weights: Optional[str] = None  # a ReCamMaster checkpoint to start from (else the base DiT)
    size: tuple[int, int] = RECAM_SIZE
    frames: int = RECAM_FRAMES
    steps: int = 20_000
    batch: int = 8  # 1 per GPU x 8 GPUs
    micro_batch: int = 1
    lr: float = 1e-4  # the README's command (the script's argument default is 1e-5)
    grad_clip: float = 0.0  # none (Lightning's default in the official script)
    precision: str = "bf16"
    seed: int = 0
    shift: float = RECAM_SHIFT
    resume: bool = False
    ckpt_every: int = 1000
    log_every: int = 10
    workers: int = 2
    device: str = "auto"
    gradient_checkpointing: bool = True

    def check(self) -> "RecamTrainConfig":
        _wan_training_run(self)
        checks.input_dir(self.data, "MultiCamVideo folder")
        if self.weights:
            checks.input_file(self.weights, "ReCamMaster checkpoint")
        checks.output_dir(self.out, "--out")
        return self


# ----------------------------------------------------------------------------------------------
# camera control on Wan2.1 (the Plücker patchify model, CameraCtrl II's design)
# ----------------------------------------------------------------------------------------------
WAN_TASKS = ("t2v", "i2v")
WAN_TRAINABLE = ("all", "camera")


@dataclass(frozen=True)
class WanCameraTrainConfig:
    """``realcam train --model wan-camera`` (CameraCtrl II's recipe where the paper gives it)."""

    data: str  # output of `realcam filter` (keep.parquet, cameras/)
    frames_root: str  # dataset root with frames/<clip_id>/ or videos/<clip_id>.mp4
    out: str
    base: str = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
    weights: Optional[str] = None  # wan-camera weights to continue from (else the base DiT)
    size: tuple[int, int] = RECAM_SIZE
    frames: int = RECAM_FRAMES
    steps: int = 20_000
    batch: int = 64
    micro_batch: int = 1
    lr: float = 1e-4
    warmup: int = 500  # steps from lr/2 up to lr (the paper: 5e-5 -> 1e-4 over 500 steps)
    lr_final: float = 1e-5  # cosine decay to this (the paper)
    grad_clip: float = 1.0
    precision: str = "bf16"
    seed: int = 0
    shift: float = RECAM_SHIFT
    unlabelled_ratio: float = WAN_CAMERA_UNLABELLED
    tasks: tuple[float, float, float] = WAN_CAMERA_TASKS  # T2V, I2V, extension
    extend_frames: tuple[int, int] = WAN_CAMERA_EXTEND_FRAMES
    text_dropout: float = 0.1
    trainable: str = "all"  # all parameters (CameraCtrl II) or only the camera patchify layer
    # the camera layer's lr over lr; None: the fan-in ratio of the DiT's patch embedding to the
    # camera layer's (1/96 on Wan2.1; docs/fidelity.md#camera-control-on-wan21)
    camera_lr_scale: Optional[float] = None
    relative_scale: bool = False
    captions: Optional[str] = None
    resume: bool = False
    ckpt_every: int = 1000
    log_every: int = 10
    workers: int = 2
    device: str = "auto"
    gradient_checkpointing: bool = True

    def check(self) -> "WanCameraTrainConfig":
        _wan_training_run(self)
        checks.integer(self.warmup, "warmup", minimum=0)
        checks.number(self.lr_final, "lr_final", minimum=0, maximum=self.lr)
        checks.number(self.unlabelled_ratio, "--unlabelled-ratio", minimum=0, maximum=1)
        checks.number(self.text_dropout, "--text-dropout", minimum=0, maximum=1)
        if len(self.tasks) != 3:
            raise RealcamError(f"three ratios T2V,I2V,EXTEND, got {self.tasks}", "--tasks")
        for r in self.tasks:
            checks.number(r, "--tasks", minimum=0)
        if sum(self.tasks) <= 0:
            raise RealcamError("the task ratios sum to zero", "--tasks")
        latent = (self.frames - 1) // WAN_TEMPORAL_STRIDE + 1
        if self.tasks[1] > 0 and latent < 2:
            raise RealcamError(f"image-to-video needs at least {WAN_TEMPORAL_STRIDE + 1} frames", "--tasks")
        if self.tasks[2] > 0:
            lo, hi = (checks.integer(v, "extend_frames", minimum=1) for v in self.extend_frames)
            if latent < 3 or lo > hi:
                raise RealcamError(
                    f"extension needs at least {2 * WAN_TEMPORAL_STRIDE + 1} frames and a frame range, "
                    f"got {self.frames} frames and {self.extend_frames}",
                    "--tasks",
                )
        checks.choice(self.trainable, "--trainable", WAN_TRAINABLE)
        if self.camera_lr_scale is not None:
            checks.number(self.camera_lr_scale, "--camera-lr-scale", above=0)
        checks.input_dir(self.data, "folder (expected the output of realcam filter)")
        checks.input_dir(self.frames_root, "dataset folder")
        if self.weights:
            checks.input_file(self.weights, "wan-camera weights")
        if self.captions:
            checks.input_file(self.captions, "caption table")
        checks.output_dir(self.out, "--out")
        return self


@dataclass(frozen=True)
class WanGenerateSettings:
    """Every setting that determines a video of ``generate --model wan-camera`` (the record stores
    exactly this)."""

    task: str = "i2v"  # i2v (the image is latent frame 0) or t2v (text and camera only)
    prompt: str = ""
    negative_prompt: str = WAN_NEGATIVE_PROMPT
    size: tuple[int, int] = RECAM_SIZE  # (W, H)
    frames: int = RECAM_FRAMES
    steps: int = RECAM_STEPS
    cfg: float = RECAM_CFG
    camera_cfg: float = 1.0
    camera_cfg_schedule: str = "constant"
    shift: float = RECAM_SHIFT
    seed: int = 0
    noise_shaping: Optional[int] = 900  # t_NS on the 0..1000 scale (t = 1000 sigma); None: off
    kernel: int = MASK_KERNEL
    magnitude: Optional[list[float]] = None
    fov: Optional[float] = None
    fps: float = WAN_FPS
    dtype: str = "auto"
    tiling: bool = True
    offload: bool = False
    continue_video: Optional[str] = None  # continuation: the clip starts at this video's last frames
    context_frames: int = 5  # 4k+1 frames taken from it (CameraCtrl II conditions on 5 to 50)

    def check(self) -> "WanGenerateSettings":
        checks.choice(self.task, "--task", WAN_TASKS)
        _wan_size_frames(self.size, self.frames)
        checks.integer(self.steps, "--steps", minimum=1, maximum=NUM_TRAIN_TIMESTEPS)
        checks.number(self.cfg, "--cfg", minimum=0)
        checks.number(self.camera_cfg, "--camera-cfg", minimum=0)
        checks.choice(self.camera_cfg_schedule, "--camera-cfg-schedule", CAMERA_CFG_SCHEDULES)
        checks.number(self.shift, "--shift", above=0)
        checks.integer(self.seed, "--seed", minimum=0, maximum=_SEED_MAX)
        if self.noise_shaping is not None:
            checks.integer(self.noise_shaping, "--noise-shaping", minimum=0, maximum=NUM_TRAIN_TIMESTEPS)
        _kernel(self.kernel)
        for m in self.magnitude or []:
            checks.number(m, "--magnitude")
        if self.fov is not None:
            checks.number(self.fov, "--fov", above=0, below=180)
        checks.number(self.fps, "--fps", above=0)
        checks.choice(self.dtype, "--dtype", ("auto", *DTYPE_NAMES))
        checks.integer(self.context_frames, "--context-frames", minimum=1)
        if self.continue_video is not None:
            if (self.context_frames - 1) % WAN_TEMPORAL_STRIDE or self.context_frames >= self.frames:
                raise RealcamError(
                    f"must be 4k+1 and fewer than the {self.frames} frames (whole latent frames), "
                    f"got {self.context_frames}",
                    "--context-frames",
                )
        if self.task == "t2v" and self.continue_video is not None:
            raise RealcamError("continuation starts from a video's frames: it is image-to-video (--task i2v)", "--task")
        if self.task == "t2v" and self.noise_shaping is not None:
            raise RealcamError("noise shaping needs an image (the preview); text-to-video runs without it", "--task")
        return self


# ----------------------------------------------------------------------------------------------
# poses (unposed dynamic videos)
# ----------------------------------------------------------------------------------------------
MASK_METHODS = ("geometric", "files", "model", "none")


@dataclass(frozen=True)
class PosesSettings:
    """How ``poses`` turns videos into a metric dataset (CameraCtrl II's data pipeline)."""

    fps: float = 4.0  # frames sampled per second (CameraCtrl II)
    input_fps: float = 30.0  # the rate of numbered frame folders (timestamped names need none)
    mask_method: str = "geometric"  # geometric (no weights), files (--masks DIR), model (--mask-model) or none
    masks: Optional[str] = None  # DIR/<clip>/<timestamp>.png, nonzero = moving
    mask_model: Optional[str] = None  # a transformers semantic segmentation model (Hub id or folder)
    dilate: int = 5  # pixels added around every mask
    fov: Optional[float] = None  # starting field of view (degrees, long side) of the focal estimate
    intrinsics: Optional[tuple[float, float, float, float]] = None  # fx/W fy/H cx/W cy/H: fixed
    min_registered: float = 0.8  # the share of frames SfM must register
    shake_k: Optional[float] = None  # a change of step this many times the typical step is a jump (None: 5)
    depth_fps: float = 1.0  # frames per second given metric depth for the factor
    depth_dir: Optional[str] = None  # DIR/<clip>.npz (depth, timestamps) instead of predicting
    depth_model: str = DEPTH_MODEL
    max_depth: float = 20.0
    device: str = "auto"
    balance: Optional[float] = None  # cap on each trajectory type's share of the kept clips
    store: str = "frames"  # frames (PNG files) or video (lossless clip videos)
    seed: int = 0

    def check(self) -> "PosesSettings":
        checks.number(self.fps, "--fps", above=0)
        checks.number(self.input_fps, "--input-fps", above=0)
        checks.number(self.depth_fps, "--depth-fps", above=0)
        checks.choice(self.mask_method, "--mask-method", MASK_METHODS)
        if self.mask_method == "files":
            if self.masks is None:
                raise RealcamError("--mask-method files needs --masks DIR", "--masks")
            checks.input_dir(self.masks, "masks folder")
        if self.mask_method == "model" and not self.mask_model:
            raise RealcamError("--mask-method model needs --mask-model ID", "--mask-model")
        checks.integer(self.dilate, "--dilate", minimum=0)
        if self.fov is not None:
            checks.number(self.fov, "--fov", above=0, below=180)
        if self.intrinsics is not None:
            if len(self.intrinsics) != 4:
                raise RealcamError("expected fx/W fy/H cx/W cy/H (4 numbers)", "--intrinsics")
            for v in self.intrinsics:
                checks.number(v, "--intrinsics", above=0)
        checks.number(self.min_registered, "--min-registered", minimum=0, maximum=1)
        if self.shake_k is not None:
            checks.number(self.shake_k, "--shake-k", above=1)
        if self.depth_dir is not None:
            checks.input_dir(self.depth_dir, "depth folder")
        checks.number(self.max_depth, "--max-depth", above=0)
        if self.balance is not None:
            checks.number(self.balance, "--balance", above=0)
        checks.choice(self.store, "--store", ("frames", "video"))
        checks.integer(self.seed, "--seed", minimum=0, maximum=_SEED_MAX)
        return self


# ----------------------------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluateSettings:
    """How ``evaluate`` scores the samples (the samples, the reference and the output are arguments)."""

    trials: int = 5  # SfM trials per video (seed, seed + 1, ...)
    mapper: str = "global"  # global (GLOMAP) or incremental
    seed: int = 0
    estimated: bool = False  # the samples are estimated trajectories: skip SfM
    depth_dir: Optional[str] = None  # <name>.npz metric depth for the metric factor
    max_depth: float = 20.0  # depth at or above this is saturated
    plot: bool = False  # plots/<name>.png: estimated against ground truth
    fvd: bool = False
    i3d: Optional[str] = None  # I3D network (TorchScript or state dict)
    gt_videos: Optional[str] = None  # ground-truth videos for FVD
    fvd_frames: int = 16
    fid: Optional[str] = None  # TorchScript feature network for per-frame FID
    # synchronization with the source video (docs/method.md#synchronization-metrics); on with any of
    # sync, source or clip; sources from a source_video column, the folder or the rerender records
    sync: bool = False
    source: Optional[str] = None  # folder of source videos <name>.mp4 or <name>/
    clip: Optional[str] = None  # CLIP model for CLIP-V (transformers format: Hub id or folder)
    match_size: int = 512  # longer side of the frames fed to SIFT for Mat. Pix. (0: as they are)

    def check(self) -> "EvaluateSettings":
        from .evaluate.sfm import MAPPERS

        if self.mapper not in MAPPERS:
            raise RealcamError(f"SfM mapper must be one of {', '.join(MAPPERS)}, got {self.mapper!r}", "--sfm")
        if self.depth_dir is not None:
            checks.input_dir(self.depth_dir, "folder of <name>.npz depth (--depth)")
        if self.fvd:
            if self.i3d is None:
                raise RealcamError("FVD needs the I3D network (--i3d PATH)", "--fvd")
            checks.input_file(self.i3d, "I3D checkpoint")
        if self.fid is not None:
            checks.input_file(self.fid, "FID feature network")
        sync = bool(self.sync or self.source is not None or self.clip is not None)
        if self.source is not None:
            checks.input_dir(self.source, "folder of source videos (--source)")
        if sync and self.i3d is not None:
            checks.input_file(self.i3d, "I3D checkpoint")
        return replace(
            self,
            sync=sync,
            match_size=checks.integer(self.match_size, "--match-size", minimum=0),
            trials=checks.integer(self.trials, "--trials", minimum=1),
            seed=checks.integer(self.seed, "--seed", minimum=0, maximum=_C_INT_MAX),
            max_depth=checks.number(self.max_depth, "--max-depth", above=0),
            fvd_frames=checks.integer(self.fvd_frames, "--fvd-frames", minimum=1),
        )
