"""The published constants and shared defaults, each defined here only.

Plain values, no imports: the command line reads its defaults here (and in ``stages.settings``)
without loading torch. Each constant's formula is in docs/method.md.
"""

#: The OpenCLIP ViT-H-14 tokenizer of the DynamiCrafter text encoder (Hugging Face id).
TOKENIZER = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
#: Metric depth model of the annotation and the preview (Depth Anything V2 metric, indoor).
DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Metric-Indoor-Large-hf"
#: Noise-shaping mask: edge filter size K (docs/method.md#scene-constrained-noise-shaping).
MASK_KERNEL = 5
#: Pixels per latent cell of the DynamiCrafter autoencoder (the latent masks' grid).
LATENT_STRIDE = 8
#: Frame rate of the videos the preview and generate stages write.
VIDEO_FPS = 8.0
#: Diffusion training timesteps of every DynamiCrafter schedule.
NUM_TRAIN_TIMESTEPS = 1000
CAMERA_CFG_SCHEDULES = ("constant", "cosine")
#: The negative prompt of the official RealCam-I2V demo (``realcami2v_gradio_app.py``), used in the
#: unconditional branch of text-image CFG.
OFFICIAL_NEGATIVE_PROMPT = (
    "Fast movement, jittery motion, abrupt transitions, distorted body, missing limbs, "
    "unnatural posture, blurry, cropped, extra limbs, bad anatomy, deformed, glitchy "
    "motion, artifacts."
)
#: align-scale: valid depth/z ratios needed for a frame factor; frames a point must be seen in.
ALIGN_MIN_POINTS = 10
ALIGN_MIN_TRACK = 3
#: filter: the quantile q of the rule on clip factors (docs/method.md#quantile-filter).
FILTER_QUANTILE = 0.02
GENERATE_MODES = ("basic", "interp", "loop", "continue")
DTYPE_NAMES = ("fp32", "fp16", "bf16")
