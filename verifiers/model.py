"""The verifier model: Llama 3.2 Vision (``MllamaForConditionalGeneration``) with one LoRA adapter per task.

A question is an image plus a prompt (verifiers/prompts) that lists the options as letters; the model's answer is
the next token. The score of each option is the softmax over the option-letter logits at the answer position,
divided by the task's calibrated temperature (docs/data-engine.md §3). EV presence = 1 − P(accept | zero boxes).

A checkpoint is a folder (or ``s3://bucket/prefix`` holding the same files)::

    manifest.json         format, versions, per-task temperature/thresholds/metrics, sha256 of every file
    base/                 MllamaForConditionalGeneration.save_pretrained + MllamaProcessor.save_pretrained
    adapters/mv/, ev/     peft LoRA adapters (adapter_config.json, adapter_model.safetensors)
    README.md             optional, free text (not hashed)

Loading verifies every sha256 and refuses missing or unexpected weights. Nothing here downloads from a hub.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import shutil
import tempfile
import threading
import urllib.parse
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import torch
import transformers
from PIL import Image
from transformers import (
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessor,
    MllamaProcessor,
    PreTrainedTokenizerFast,
)

from model.media import sha256_of
from model.provenance import code_version
from verifiers.errors import VerifierInputError, VerifierModelError
from verifiers.options import LETTERS, MV_ACCEPTS, options_for
from verifiers.prompts import TEMPLATE_VERSIONS, Template, check_phrase, load_template, template_for
from verifiers.render import render_ev, render_mv

CHECKPOINT_FORMAT = "dataengine.verifier-checkpoint.v1"
MANIFEST_NAME = "manifest.json"
UNHASHED = {MANIFEST_NAME, "README.md"}
TASKS = ("mv", "ev")
# LoRA on the language model's attention (self and cross) and MLP projections (docs/infrastructure.md).
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

BOS, EOS, PAD, UNK = "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>", "<unk>"
IMAGE_TOKEN, PYTHON_TOKEN = "<|image|>", "<|python_tag|>"


@dataclass(frozen=True)
class MVItem:
    """One MV question: a mask (COCO RLE of the image's size) of ``image`` for ``phrase``."""

    image: Image.Image
    rle: dict
    phrase: str


@dataclass(frozen=True)
class EVItem:
    """One EV question: the accepted masks (possibly none) of ``image`` for ``phrase``."""

    image: Image.Image
    rles: list[dict]
    phrase: str


# ----------------------------------------------------------------------------------------------
# Tiny preset: word-level tokenizer, ~2 M-parameter Mllama, processor with 112-px tiles
# ----------------------------------------------------------------------------------------------


def tiny_words() -> list[str]:
    """Every word the tiny tokenizer knows: the current templates, option names, letters, the synthetic world."""
    from model.synthetic import DOMAINS, phrase_vocabulary
    from verifiers.options import DISPLAY_NAMES

    text = " ".join(template_for(task).body for task in TASKS) + " " + " ".join(DISPLAY_NAMES.values())
    text += " zero one boxes box " + " ".join(str(n) for n in range(2, 33))
    for domain in DOMAINS:
        text += " " + " ".join(phrase_vocabulary(domain))
    from verifiers.synthetic import VAGUE_PHRASES  # vague/ungroundable phrases used in training

    text += " " + " ".join(VAGUE_PHRASES)
    text = text.replace(IMAGE_TOKEN, " ").replace("{", " ").replace("}", " ")
    words = set(re.findall(r"\w+|[^\w\s]+", text)) | set(LETTERS) | {"(", ")"}
    return sorted(words)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer: specials, then the known words; ``<|image|>`` is the last id (= text vocab size)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokens = [PAD, BOS, EOS, UNK, PYTHON_TOKEN, *tiny_words(), IMAGE_TOKEN]
    vocab = {token: i for i, token in enumerate(tokens)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        additional_special_tokens=[IMAGE_TOKEN, PYTHON_TOKEN], padding_side="right", model_max_length=512,
    )
    return tokenizer


def tiny_processor(tile: int = 112) -> MllamaProcessor:
    """MllamaProcessor with the tiny tokenizer and ``tile``-px tiles, at most 2 (the MV composite is 2:1)."""
    image_processor = MllamaImageProcessor(size={"height": tile, "width": tile}, max_image_tiles=2)
    return MllamaProcessor(image_processor=image_processor, tokenizer=build_tiny_tokenizer())


def tiny_config(tokenizer, *, tile: int = 112, width: int = 128, text_layers: int = 4) -> MllamaConfig:
    """A ~2 M-parameter MllamaConfig (docs/infrastructure.md: pad inside the vocab, image token = vocab size)."""
    vocab_size = len(tokenizer) - 1
    image_token = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert image_token == vocab_size, "the image token must be the last id"
    return MllamaConfig(
        vision_config=dict(
            hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_global_layers=1,
            attention_heads=4, image_size=tile, patch_size=16, max_num_tiles=2,
            supported_aspect_ratios=[[1, 1], [1, 2], [2, 1]], intermediate_layers_indices=[0, 1],
            vision_output_dim=3 * width,
        ),
        text_config=dict(
            vocab_size=vocab_size, hidden_size=width, intermediate_size=3 * width, num_hidden_layers=text_layers,
            num_attention_heads=4, num_key_value_heads=2, cross_attention_layers=[1, 3],
            max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        ),
        image_token_index=image_token,
    )


def build_tiny_base(seed: int = 0) -> tuple[MllamaForConditionalGeneration, MllamaProcessor]:
    """A randomly initialised tiny Mllama (eval mode) and its processor; same seed, same weights."""
    processor = tiny_processor()
    config = tiny_config(processor.tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MllamaForConditionalGeneration(config)
    return model.eval(), processor


def open_cross_attention_gates(model, value: float) -> int:
    """Set every cross-attention gate (attention and MLP) of a Mllama text model to ``value``; returns how many.

    Mllama initialises these gates to 0, so tanh(gate) = 0 and the text model starts blind to the image. A
    pretrained model has learned them; trained from scratch they stay near 0 (the gradient of a gate is the
    product of random image features and the answer's error, mostly noise), and a tiny verifier learns only the
    text prior: MV collapsed to "reject" for 2,930 steps with gates at ~1e-3 and image effect on the logits ~1e-4.
    An open gate (value 1.0: tanh = 0.76) lets the image in from the first step. 0 leaves the model as it is.
    """
    if not value:
        return 0
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    n = 0
    with torch.no_grad():
        for name, param in core.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate")):
                param.fill_(value)
                n += 1
    return n


def rescale_render(verifier: "Verifier", size: int) -> None:
    """Show ``verifier`` its composites at ``size`` px, a whole multiple f of its render size, on the same patch grid:
    the patch embedding's kernel grows f times and starts as the old kernel spread over f × f pixels, so the model
    first computes what it computed on the smaller render (the same sum over an f-pooled image) and training can
    then use the detail the smaller render lost (a 7-px shape at 112 px is 14 px at 224)."""
    factor, rest = divmod(size, verifier.render_size)
    if factor < 1 or rest:
        raise ValueError(f"render size {size} is not a whole multiple of {verifier.render_size}")
    if factor == 1:
        return
    core = verifier.model.get_base_model() if hasattr(verifier.model, "get_base_model") else verifier.model
    vision = core.model.vision_model
    old = vision.patch_embedding
    patch = old.kernel_size[0] * factor
    new = torch.nn.Conv2d(old.in_channels, old.out_channels, kernel_size=patch, stride=patch, padding="valid",
                          bias=old.bias is not None).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(old.weight.repeat_interleave(factor, 2).repeat_interleave(factor, 3) / factor**2)
        if old.bias is not None:
            new.bias.copy_(old.bias)
    vision.patch_embedding, vision.image_size, vision.patch_size = new, size, patch
    core.config.vision_config.image_size, core.config.vision_config.patch_size = size, patch
    image_processor = verifier.processor.image_processor
    verifier.processor.image_processor = type(image_processor).from_dict(
        {**image_processor.to_dict(), "size": {"height": size, "width": size}})
    verifier.render_size = verifier.manifest["render_size"] = size


@contextmanager
def _quiet_peft():
    # peft 0.21 reads transformers' deprecated ``is_gradient_checkpointing``: not our call to fix.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def lora_config(r: int = 8, alpha: int = 16, dropout: float = 0.0):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=LORA_TARGETS, bias="none")


def attach_adapters(base: MllamaForConditionalGeneration, *, r: int = 8, alpha: int = 16):
    """Wrap ``base`` in a PeftModel with fresh (identity: B = 0) LoRA adapters "mv" and "ev"."""
    from peft import get_peft_model

    with _quiet_peft():
        model = get_peft_model(base, lora_config(r, alpha), adapter_name="mv")
        model.add_adapter("ev", lora_config(r, alpha))
    return model


def build_tiny_verifier(seed: int = 0) -> "Verifier":
    """A random tiny verifier (base + identity adapters): for tests and as the start of training."""
    base, processor = build_tiny_base(seed)
    model = attach_adapters(base)
    manifest = {"model_version": f"verifier-tiny-random-{seed}", "preset": "tiny", "seed": seed,
                "render_size": processor.image_processor.size["height"],
                "template_versions": dict(TEMPLATE_VERSIONS)}
    return Verifier(model, processor, manifest=manifest, uri=f"preset:tiny?seed={seed}")


# ----------------------------------------------------------------------------------------------
# Encoding and option logits
# ----------------------------------------------------------------------------------------------


def letter_token_ids(tokenizer) -> list[int]:
    """Token id of each option letter as the answer after "Answer :" (" A" is one token in Llama 3's BPE too)."""
    ids = []
    for letter in LETTERS:
        encoded = tokenizer.encode(" " + letter, add_special_tokens=False)
        if len(encoded) != 1 or encoded[0] == tokenizer.unk_token_id:
            raise VerifierModelError(f"the tokenizer does not have option letter {letter!r} as one token")
        ids.append(encoded[0])
    return ids


def encode(processor: MllamaProcessor, images: Sequence[Image.Image], texts: Sequence[str],
           *, max_tokens: int | None = None) -> dict[str, torch.Tensor]:
    """Model inputs for a batch of (image, prompt): right-padded ids, tiles, aspect ratios, cross-attention mask."""
    batch = processor(images=[[image] for image in images], text=list(texts), padding=True, return_tensors="pt")
    if max_tokens is not None and batch["input_ids"].shape[1] > max_tokens:
        raise VerifierInputError(f"the question is {batch['input_ids'].shape[1]} tokens; the model's context "
                                 f"allows {max_tokens} (phrase too long)")
    return dict(batch)


def _shared_prefix(inputs: dict[str, torch.Tensor], image_token_id: int) -> int:
    """Length of the text before the image token when it is the same in every row (0 when it is not)."""
    ids = inputs["input_ids"]
    positions = (ids == image_token_id).int().argmax(dim=1)
    p = int(positions[0])
    if p == 0 or not bool((positions == p).all()) or not bool((ids[:, :p] == ids[:1, :p]).all()):
        return 0
    return p


def option_logits(model, inputs: dict[str, torch.Tensor], letter_ids: Sequence[int], n_options: int,
                  *, image_token_id: int | None = None) -> torch.Tensor:
    """Logits [B, n_options] of the first ``n_options`` letters at each prompt's last (answer) position.

    ``model`` is an MllamaForConditionalGeneration or a PeftModel around one; only the letters' rows of the
    LM head are computed. With ``image_token_id``, the text before the image token (the task's guidelines,
    identical in every row, and blind to the image since cross-attention starts at the image token) is run
    once and its cache shared by the batch: same logits, a fraction of the cost.
    """
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    batch = ids.shape[0]
    p = _shared_prefix(inputs, image_token_id) if image_token_id is not None else 0
    if p:
        prefix = core.model(input_ids=ids[:1, :p], attention_mask=mask[:1, :p], use_cache=True)
        cache = prefix.cache if getattr(prefix, "cache", None) is not None else prefix.past_key_values
        cache.batch_repeat_interleave(batch)
        rest = {k: v for k, v in inputs.items() if k not in ("input_ids", "cross_attention_mask")}
        out = core.model(input_ids=ids[:, p:], cross_attention_mask=inputs["cross_attention_mask"][:, p:],
                         cache=cache, use_cache=True, **rest)
    else:
        out = core.model(**inputs, use_cache=False)
    hidden = out.last_hidden_state  # [B, T - p, H]
    last = mask.sum(dim=1) - 1 - p  # right padding: the last real token
    h = hidden[torch.arange(batch), last]  # [B, H]
    weight = core.lm_head.weight[list(letter_ids)[:n_options]]  # [n, H]
    return h @ weight.T


# ----------------------------------------------------------------------------------------------
# The verifier
# ----------------------------------------------------------------------------------------------


class Verifier:
    """A loaded verifier: a PeftModel with adapters "mv" and "ev", its processor and its manifest.

    ``score_mv`` / ``score_ev`` are batched and thread-safe (one lock per model); each returns one
    probability dict per item over the task's options, summing to 1, after the task's stored temperature.
    """

    def __init__(self, model, processor: MllamaProcessor, *, manifest: dict, uri: str = "",
                 device: str | None = None, batch_size: int = 16):
        self.model = model.eval()
        self.processor = processor
        self.processor.tokenizer.padding_side = "right"
        self.manifest = manifest
        self.uri = uri
        self.version = str(manifest.get("model_version") or uri)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.batch_size = batch_size
        self.letter_ids = letter_token_ids(processor.tokenizer)
        self.image_token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        self.render_size = int(manifest.get("render_size", processor.image_processor.size["height"]))
        self.max_tokens = int(manifest.get("max_tokens", getattr(processor.tokenizer, "model_max_length", 512)))
        self._lock = threading.Lock()

    @property
    def template_versions(self) -> dict[str, str]:
        return dict(self.manifest.get("template_versions") or TEMPLATE_VERSIONS)

    def temperature(self, task: str) -> float:
        return float((self.manifest.get("temperature") or {}).get(task) or 1.0)

    def question(self, task: str, phrase: str, *, n_boxes: int = 0, order: Sequence[str] | None = None) -> str:
        """The prompt text for ``task`` (canonical option order unless ``order`` is given)."""
        return self.template(task).render(phrase=phrase, order=order or options_for(task), n_boxes=n_boxes)

    def template(self, task: str) -> Template:
        """The template this verifier was trained with (its manifest), else the current one."""
        return load_template(self.template_versions.get(task) or TEMPLATE_VERSIONS[task])

    @torch.no_grad()
    def raw_logits(self, task: str, images: Sequence[Image.Image], texts: Sequence[str]) -> torch.Tensor:
        """Option-letter logits [N, n_options] (no temperature) for rendered images and prompts, batched."""
        n = len(options_for(task))
        chunks = []
        with self._lock:
            if hasattr(self.model, "set_adapter"):
                self.model.set_adapter(task)
            for start in range(0, len(images), self.batch_size):
                inputs = encode(self.processor, images[start:start + self.batch_size],
                                texts[start:start + self.batch_size], max_tokens=self.max_tokens)
                inputs = {k: v.to(self.device) for k, v in inputs.items()}
                chunks.append(option_logits(self.model, inputs, self.letter_ids, n,
                                            image_token_id=self.image_token_id).float().cpu())
        return torch.cat(chunks) if chunks else torch.zeros((0, n))

    def _probabilities(self, task: str, logits: torch.Tensor) -> list[dict[str, float]]:
        probs = torch.softmax(logits / self.temperature(task), dim=-1)
        names = options_for(task)
        return [{name: float(p) for name, p in zip(names, row)} for row in probs.tolist()]

    def score_mv(self, items: Sequence[MVItem]) -> list[dict[str, float]]:
        """P(option) over MV_OPTIONS for each mask. VerifierInputError for an empty/mis-sized mask or bad phrase."""
        images, texts = [], []
        for item in items:
            phrase = check_phrase(item.phrase)
            images.append(render_mv(item.image, item.rle, phrase, size=self.render_size))
            texts.append(self.question("mv", phrase))
        return self._probabilities("mv", self.raw_logits("mv", images, texts))

    def score_ev(self, items: Sequence[EVItem]) -> list[dict[str, float]]:
        """P(option) over EV_OPTIONS for each datapoint (its accepted masks drawn as boxes)."""
        images, texts = [], []
        for item in items:
            phrase = check_phrase(item.phrase)
            images.append(render_ev(item.image, item.rles, phrase, size=self.render_size,
                                    line=self.template("ev").box_line(self.render_size)))
            texts.append(self.question("ev", phrase, n_boxes=len(item.rles)))
        return self._probabilities("ev", self.raw_logits("ev", images, texts))

    def presence(self, image: Image.Image, phrase: str) -> float:
        """EV presence score: 1 − P(accept | zero boxes), the probability that the concept is in the image."""
        return 1.0 - self.score_ev([EVItem(image, [], phrase)])[0]["accept"]


def mv_accept_probability(probabilities: dict[str, float]) -> float:
    """P(the mask is kept) = P(accept) + P(accept as text)."""
    return sum(probabilities.get(option, 0.0) for option in MV_ACCEPTS)


# ----------------------------------------------------------------------------------------------
# Save
# ----------------------------------------------------------------------------------------------


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).as_posix() not in UNHASHED)


def config_hash(config) -> str:
    data = config.to_dict()
    data.pop("transformers_version", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str, separators=(",", ":")).encode()).hexdigest()


def write_manifest(folder: str | Path, manifest: dict) -> dict:
    """(Re)write ``folder/manifest.json``: ``manifest`` plus provenance and the sha256 of every hashed file."""
    import peft

    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_of(p) for p in _files(folder)}
    full = dict(manifest)
    full.update({
        "format": CHECKPOINT_FORMAT,
        "model_class": "MllamaForConditionalGeneration",
        "adapters": list(TASKS),
        "transformers_version": transformers.__version__,
        "peft_version": peft.__version__,
        "torch_version": torch.__version__,
        "code_version": full.get("code_version") or code_version(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    })
    full.setdefault("template_versions", dict(TEMPLATE_VERSIONS))
    if "model_version" not in full:
        # Weights and calibration name the version: a recalibrated verifier is a new version.
        calibration = {k: full.get(k) for k in ("temperature", "thresholds", "target_precision")}
        # (absent from older versions, whose names stay as they were)
        for key in ("absence_with_sam3", "with_sam3", "drop_precision"):
            if full.get(key):
                calibration[key] = full[key]
        calibrated = json.dumps(calibration, sort_keys=True)
        digest = hashlib.sha256(("".join(files[k] for k in sorted(files)) + calibrated).encode()).hexdigest()
        full["model_version"] = f"verifier-{digest[:16]}"
    (folder / MANIFEST_NAME).write_text(json.dumps(full, indent=2, sort_keys=True))
    return full


def save_verifier(verifier: Verifier, folder: str | Path, *, manifest: dict | None = None) -> dict:
    """Write base, processor, both adapters and manifest.json into ``folder`` (replacing what was there)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for sub in ("base", "adapters"):
        shutil.rmtree(folder / sub, ignore_errors=True)
    model = verifier.model
    base = model.get_base_model()
    # The base without the LoRA layers: unload a merged-free copy of the weights.
    state = {k.replace("base_layer.", ""): v for k, v in base.state_dict().items() if "lora_" not in k}
    clean = MllamaForConditionalGeneration(base.config)
    missing, unexpected = clean.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VerifierModelError(f"cannot separate base weights: missing {missing[:5]}, unexpected {unexpected[:5]}")
    clean.save_pretrained(folder / "base")
    verifier.processor.save_pretrained(folder / "base")
    for task in TASKS:
        with tempfile.TemporaryDirectory() as tmp, _quiet_peft():
            model.save_pretrained(tmp, selected_adapters=[task])
            source = Path(tmp) / task if (Path(tmp) / task).is_dir() else Path(tmp)
            shutil.copytree(source, folder / "adapters" / task)
        adapter_config = folder / "adapters" / task / "adapter_config.json"
        settings = json.loads(adapter_config.read_text())
        settings["base_model_name_or_path"] = None  # the base travels beside it; a local path would mislead
        adapter_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    info = dict(verifier.manifest)
    info.update(manifest or {})
    for key in ("files", "format", "created_at", "code_version"):
        info.pop(key, None)
    info["config_hash"] = config_hash(base.config)
    info.setdefault("render_size", verifier.render_size)
    full = write_manifest(folder, info)
    verifier.manifest = full
    verifier.version = full["model_version"]
    return full


# ----------------------------------------------------------------------------------------------
# Load
# ----------------------------------------------------------------------------------------------


def verify_checkpoint(folder: str | Path) -> dict:
    """Check manifest.json and every file's sha256; return the manifest. Raises VerifierModelError."""
    from model.sam3.build import verify_checkpoint as verify

    return verify(folder, checkpoint_format=CHECKPOINT_FORMAT, error=VerifierModelError, files=_files,
                  what="verifier checkpoint")


def _own_weights(module: torch.nn.Module) -> None:
    # safetensors views at unaligned offsets round differently on CPU: own copies make loads bit-identical.
    with torch.no_grad():
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            tensor.data = tensor.data.clone()


def load_verifier(uri: str, *, cache_dir: str | Path, s3_client: Any = None, device: str | None = None) -> Verifier:
    """Load a verified checkpoint (folder path, ``file://`` or ``s3://bucket/prefix``) with both adapters.

    ``preset:tiny?seed=N`` builds a random tiny verifier instead. Raises VerifierModelError when the checkpoint
    is unreachable, a file's sha256 differs from the manifest, or weights are missing/unexpected.
    """
    if uri.startswith("preset:"):
        parsed = urllib.parse.urlparse(uri)
        if parsed.path != "tiny":
            raise VerifierModelError(f"unknown verifier preset {uri!r}; known: ['tiny']")
        try:
            seed = int(urllib.parse.parse_qs(parsed.query).get("seed", ["0"])[0])
        except ValueError as exc:
            raise VerifierModelError(f"{uri!r}: seed must be an integer") from exc
        return build_tiny_verifier(seed)
    from model.sam3.build import checkpoint_folder

    folder = checkpoint_folder(uri, cache_dir=cache_dir, s3_client=s3_client, error=VerifierModelError,
                               what="verifier checkpoint", verify=verify_checkpoint, subdir="verifiers")
    manifest = verify_checkpoint(folder)
    from peft import PeftModel

    try:
        base, info = MllamaForConditionalGeneration.from_pretrained(
            str(folder / "base"), output_loading_info=True, local_files_only=True, use_safetensors=True)
        processor = MllamaProcessor.from_pretrained(str(folder / "base"), local_files_only=True)
        problems = [f"{k}: {sorted(map(str, info[k]))[:5]}" for k in
                    ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs") if info.get(k)]
        if problems:
            raise VerifierModelError(f"verifier base {uri} does not match its config: " + "; ".join(problems))
        _own_weights(base)
        with _quiet_peft():
            model = PeftModel.from_pretrained(base, str(folder / "adapters" / "mv"), adapter_name="mv",
                                              is_trainable=False)
            model.load_adapter(str(folder / "adapters" / "ev"), adapter_name="ev", is_trainable=False)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        if isinstance(exc, VerifierModelError):
            raise
        raise VerifierModelError(f"cannot load verifier checkpoint {uri}: {exc}") from exc
    _own_weights(model)
    return Verifier(model, processor, manifest=manifest, uri=uri, device=device)


def registry_fields(uri: str, manifest: dict) -> dict:
    """Keyword arguments for the platform's ``register_model_version`` (kind "verifier"): the name is the
    checkpoint's model_version, so registering the same checkpoint twice is one version."""
    return {"name": manifest["model_version"], "uri": uri, "kind": "verifier", "manifest": manifest,
            "metrics": {task: {k: v for k, v in m.items() if k in ("n", "accuracy", "cohen_kappa", "accept_auc",
                                                                   "at_threshold", "nll")}
                        for task, m in (manifest.get("metrics") or {}).items()}}
