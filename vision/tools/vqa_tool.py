"""The embedded VQA model as a tool result: the question's short answer with its calibrated probability, or that
it cannot tell. Unlike the other tools it reads the question, as a sentence vector its caller computes
(all-MiniLM-L6-v2), so vision still knows nothing of text models. It runs behind the modality gate: only on kinds
of image it was trained on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vesalius.vision.errors import ModelWeightsError
from vesalius.vision.models.gate import StudyKind
from vesalius.vision.models.probability import Probability, shown
from vesalius.vision.tools.base import ModelInfo, ToolResult

if TYPE_CHECKING:  # the agent imports NAME without pixels or torch
    import numpy as np

    from vesalius.vision.models.store import ModelStore
    from vesalius.vision.study import Study

NAME = "vqa_model"


def _info(card, store: ModelStore) -> ModelInfo:
    rad = card.metrics.get("dev_by_image", {}).get("vqa-rad", {})
    by_q = card.metrics.get("dev_by_question", {}).get("vqa-rad", {})
    return ModelInfo(
        name=card.name,
        version=card.version,
        validation=(
            f"VQA-RAD development accuracy {by_q.get('overall', 0):.2f} on images seen in training, "
            f"{rad.get('overall', 0):.2f} on VQA-RAD images it never saw; other sources are unmeasured"
        ),
        card=str(store.folder(card.name) / f"{card.name}.md"),
    )


def answer_question(store: ModelStore, study: Study, kind: StudyKind, question: np.ndarray) -> ToolResult:
    if not kind.accepted:
        return ToolResult(tool=NAME, applied=False, reason=f"not for this image: it is {kind.described()}")
    try:
        model = store.vqa()
    except ModelWeightsError as exc:
        return ToolResult(tool=NAME, applied=False, reason=exc.one_line())
    if kind.kind not in model.kinds:
        return ToolResult(tool=NAME, applied=False, reason=f"not trained on {kind.described()}")
    reading = model.read(study.image, question)
    top, p = reading.alternatives[0]
    others = ", ".join(f"{a} {shown(q)}" for a, q in reading.alternatives[1:])
    if reading.answer is None:
        summary = f"cannot tell: its best answer '{top}' has probability {shown(p)}, below {model.abstain_below:.2f}"
    else:
        summary = f"answer '{top}', probability {shown(p)}"
    return ToolResult(
        tool=NAME,
        applied=True,
        reason=f"a question about {kind.described()}, a kind of image it was trained on",
        summary=f"{summary} (then {others})" if others else summary,
        probabilities=[
            Probability(
                label=top, probability=p, threshold=model.abstain_below, above_threshold=reading.answer is not None
            )
        ],
        model=_info(model.card, store),
        caveats=[
            "It chooses among the answers of its training questions (VQA-RAD, PathVQA) and cannot name anything else",
            "Its development accuracy on new images is far below that on images it saw: treat it as a hint",
        ],
    )
