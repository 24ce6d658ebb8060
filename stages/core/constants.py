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

# ReCamMaster on Wan2.1 (docs/method.md#recammaster)
#: Wan2.1's standard negative prompt (``wan/configs/shared_config.py``, ``sample_neg_prompt``).
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，"
    "JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，"
    "形态畸形的肢体，手指融合，静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)
#: UMT5 tokens per prompt (embeddings past the prompt's length are zero).
WAN_TEXT_TOKENS = 512
#: Frames per latent frame of the Wan VAE (the first frame alone, then groups of 4).
WAN_TEMPORAL_STRIDE = 4
#: Pixels per latent cell of the Wan VAE.
WAN_SPATIAL_STRIDE = 8
#: ReCamMaster's sampling defaults: size (W, H), frames, steps, text CFG, flow shift, output fps.
RECAM_SIZE = (832, 480)
RECAM_FRAMES = 81
RECAM_STEPS = 50
RECAM_CFG = 5.0
RECAM_SHIFT = 5.0
RECAM_FPS = 30.0
#: Wan2.1's own frame rate (its text-to-video and image-to-video pipelines write 16 fps).
WAN_FPS = 16.0
#: CameraCtrl II's data mix (seed 003, section 7): camera-labelled : unlabelled = 4 : 1; stage 1
#: tasks text-to-video : image-to-video = 7 : 3 (stage 2: extension : I2V : T2V = 2 : 3 : 5), an
#: extension's condition frames from the previous clip 5 to 50.
WAN_CAMERA_UNLABELLED = 0.2
WAN_CAMERA_TASKS = (0.7, 0.3, 0.0)  # text-to-video, image-to-video, extension
WAN_CAMERA_EXTEND_FRAMES = (5, 50)
#: VAE tiling of the official pipeline in pixels: tiles of 30x52 latents, stride 15x26.
WAN_VAE_TILE = (240, 416)
WAN_VAE_TILE_STRIDE = (120, 208)
