"""vLLM's in-process engine (`vllm.LLM`) as a worker process: batches of chat conversations in, answers out.

Run by `vesalius.eval.engine_predictor` with the Python of an environment that has vLLM (vLLM pins its own torch and
transformers, so it often lives in an environment of its own). Only the standard library is imported here before
vLLM, so the file runs in any such environment without Vesalius installed.

Protocol, one JSON object per line: the worker writes {"ready": ...} once the engine is up, then reads
{"conversations": [...], "images": {digest: data URL}, "max_tokens": N} and writes {"outputs": [...]} with one
output per conversation, each {"text", "finish_reason", "prompt_tokens", "completion_tokens"} or {"error"}. An
image goes once per batch however many questions ask about it, as {"type": "image_ref", "digest": ...} parts; it is
decoded once and kept (a bounded number), and handed to vLLM with its digest as its id, so the engine's own
multimodal cache knows it too. A conversation the engine refuses
(too long, a bad image) fails alone: the batch is retried one conversation at a time. Everything vLLM prints goes
to standard error, which the parent keeps in a log file.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import os
import sys
from collections import OrderedDict

DECODED_IMAGES = 64


def _protocol_stream():
    """Standard output for the protocol alone: vLLM and its engine processes print to file descriptor 1, which from
    here on is standard error."""
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _engine_args(model: str, given: dict) -> dict:
    from vllm.platforms import current_platform

    args = {"model": model, "seed": 0, "max_model_len": 4096, "limit_mm_per_prompt": {"image": 1}}
    if current_platform.is_cpu():
        # A CPU engine needs its KV cache sized (platform notes); eager mode starts in half the time.
        args["enforce_eager"] = True
        if "VLLM_CPU_KVCACHE_SPACE" not in os.environ:
            args["kv_cache_memory_bytes"] = 512 * 2**20
    return {**args, **given}


def _image(url: str):
    from PIL import Image

    head, _, data = url.partition(",")
    if not head.startswith("data:image/"):
        raise ValueError("an image must come as a data URL")
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    return image.convert("RGB")


def _resolve(conversation: list, images: dict, decoded: OrderedDict) -> list:
    """The conversation with each image reference replaced by the decoded image."""
    out = []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if part.get("type") == "image_ref":
                    digest = part["digest"]
                    if digest not in decoded:
                        decoded[digest] = _image(images[digest])
                        while len(decoded) > DECODED_IMAGES:
                            decoded.popitem(last=False)
                    decoded.move_to_end(digest)
                    part = {"type": "image_pil", "image_pil": decoded[digest], "uuid": digest}
                parts.append(part)
            message = {**message, "content": parts}
        out.append(message)
    return out


def _output(result) -> dict:
    out = result.outputs[0]
    return {
        "text": out.text,
        "finish_reason": out.finish_reason,
        "prompt_tokens": len(result.prompt_token_ids or []),
        "completion_tokens": len(out.token_ids),
    }


def _answer(llm, params, conversations: list) -> list[dict]:
    try:
        return [_output(r) for r in llm.chat(conversations, params, use_tqdm=False)]
    except Exception as exc:  # noqa: BLE001 - one bad conversation fails the whole call: find it
        if len(conversations) == 1:
            return [{"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}]
        return [o for c in conversations for o in _answer(llm, params, [c])]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--engine-args", default="{}", help="JSON object of vllm.LLM keyword arguments")
    args = parser.parse_args()
    proto = _protocol_stream()
    import vllm
    from vllm import LLM, SamplingParams

    engine_args = _engine_args(args.model, json.loads(args.engine_args))
    llm = LLM(**engine_args)
    served = {k: v for k, v in engine_args.items() if k != "model"}
    proto.write(json.dumps({"ready": True, "vllm": vllm.__version__, "engine_args": served}) + "\n")
    decoded: OrderedDict = OrderedDict()
    for line in sys.stdin:
        request = json.loads(line)
        params = SamplingParams(temperature=0, max_tokens=int(request["max_tokens"]), seed=0)
        outputs: list = [None] * len(request["conversations"])
        ready, asked = [], []
        for n, conversation in enumerate(request["conversations"]):
            try:
                ready.append(_resolve(conversation, request.get("images") or {}, decoded))
                asked.append(n)
            except (KeyError, ValueError, OSError, binascii.Error) as exc:
                outputs[n] = {"error": f"the image could not be decoded ({type(exc).__name__}: {exc})"}
        for n, output in zip(asked, _answer(llm, params, ready) if ready else [], strict=True):
            outputs[n] = output
        proto.write(json.dumps({"outputs": outputs}) + "\n")
    return 0


if __name__ == "__main__":  # vLLM's engine starts processes of its own: only from the main module
    raise SystemExit(main())
