import pytest

from vesalius.agent.router import plan_route

TOOLS = {
    "image_quality": frozenset({"quality"}),
    "ct_attenuation": frozenset({"measurement"}),
    "asymmetry_map": frozenset({"abnormality"}),
}


@pytest.mark.parametrize(
    "question,tools,intent",
    [
        ("Is there a pleural effusion?", {"asymmetry_map", "image_quality"}, "abnormality"),
        ("What is the attenuation of the liver in HU?", {"ct_attenuation", "image_quality"}, "measurement"),
        ("Is the image quality good enough?", {"image_quality"}, "quality"),
        ("Describe this study", set(TOOLS), "describe"),
        ("What does pneumothorax mean?", set(), "explain"),
        ("What is atelectasis?", set(), "explain"),
        ("What are the signs of pneumonia on a chest X-ray?", {"asymmetry_map", "image_quality"}, "abnormality"),
        ("Hmm", set(TOOLS), "describe"),
        ("What does the opacity in this image mean?", {"asymmetry_map", "image_quality"}, "abnormality"),
        # Questions about the body that name the image ask for knowledge, not a measurement.
        ("What is the function of the main organ in this picture?", set(), "explain"),
        ("How to treat the disease located on the right lung in this image?", set(), "explain"),
        # Words that may point to a finding do not when the question is about anatomy.
        ("How many lungs are shown in this image?", set(TOOLS), "describe"),
        ("Where is the lesion?", {"asymmetry_map", "image_quality"}, "abnormality"),
        # Densities that are findings, and words that only look like stems.
        ("Are there air fluid levels in the bowel?", set(TOOLS), "abnormality"),
        ("Which part of the human body is this?", set(TOOLS), "describe"),
        ("Was contrast used to take this image?", set(TOOLS), "describe"),
        ("How would you describe the borders of the lesion?", {"asymmetry_map", "image_quality"}, "abnormality"),
        ("Is the lung healthy?", {"asymmetry_map", "image_quality"}, "abnormality"),
    ],
)
def test_route_chooses_tools_from_the_question(question, tools, intent):
    plan = plan_route(question, TOOLS)
    assert set(plan.tools) == tools
    assert plan.intent == intent
    assert set(plan.reasons) == tools and all(plan.reasons.values())


def test_patient_questions_are_detected():
    assert plan_route("Should I worry about my scan?", TOOLS).audience == "patient"
    assert plan_route("Any consolidation in the left lower lobe?", TOOLS).audience == "clinician"


def test_stems_match_word_starts_only():
    # "bone" must not match inside "trombone"
    assert plan_route("Is the trombone visible here?", TOOLS).tools == ["image_quality", "asymmetry_map"]
