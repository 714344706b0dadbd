"""`vesalius train` reproduces a model from the shared data: same seed, same bytes (in a fresh process and in one that
did other work first); splits never share a patient."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
import torch
from test_cli import VESALIUS

from vesalius.vision.models.card import load_bundle
from vesalius.vision.train.datasets import fold_of, kermany_files, kermany_patient


def _train(model: str, out, data, env, *extra: str) -> subprocess.CompletedProcess:
    """`vesalius train` in a process of its own."""
    return subprocess.run(
        [VESALIUS, "train", model, "--data", str(data), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_training_is_reproducible_and_writes_a_complete_bundle(shared_data, tmp_path, cli_env, train_here):
    # One run in a fresh process, one in this process after other work: the seed alone decides the weights.
    runs = [
        _train("breastmnist", tmp_path / "a", shared_data, cli_env, "--epochs", "3"),
        train_here("breastmnist", tmp_path / "b", shared_data, "--epochs", "3"),
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "training breastmnist" in run.stderr  # the progress bar
    (card, a), (_, b) = (load_bundle(tmp_path / n, "breastmnist") for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same seed, same weights
    assert json.loads(runs[0].stdout)["metrics"] == card.metrics
    assert 0 <= card.metrics["auroc"] <= 1 and card.metrics["n"] == 78
    assert card.recipe["epochs"] == 3 and card.recipe["seed"] == 0
    for plot in card.plots:
        assert (tmp_path / "a" / "plots" / plot).stat().st_size > 1000
    assert (tmp_path / "a" / "breastmnist.md").read_text().count("![") == len(card.plots)
    assert not list((tmp_path / "a").glob(".*tmp"))  # bundles are written under temporary names, then renamed


def test_bad_requests_are_clear_errors(tmp_path, train_here, shared_data):
    run = train_here("resnet152", tmp_path, shared_data)
    assert run.returncode == 2 and "no model called 'resnet152'" in run.stderr and "pneumonia" in run.stderr
    run = train_here("pneumonia", tmp_path, tmp_path / "nowhere")
    assert run.returncode == 2 and "Kermany chest X-ray folder not found" in run.stderr
    # The anomaly detector reads the pneumonia network of its --out folder (else the shipped one): a broken one there
    # is named, with the command that rebuilds it.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "pneumonia.json").write_text("{}")
    run = train_here("chest_anomaly", broken, shared_data)
    assert run.returncode == 2 and "vesalius train pneumonia` first" in run.stderr


def test_kermany_split_keeps_each_patient_on_one_side(shared_data):
    _, labels, groups, held = kermany_files(shared_data)
    groups = np.array(groups)
    assert not set(groups[held]) & set(groups[~held])
    assert 0.17 < held.mean() < 0.23 and abs(labels[held].mean() - labels.mean()) < 0.02
    again = kermany_files(shared_data)[3]
    assert (again == held).all()
    folds = fold_of(groups[held], 0)
    for g in set(groups[held]):
        assert len(set(folds[groups[held] == g])) == 1  # calibration folds split patients, not images


@pytest.mark.parametrize(
    "name,patient",
    [
        ("IM-0115-0001.jpeg", "normal-0115"),
        ("NORMAL2-IM-1427-0001.jpeg", "normal-NORMAL2-1427"),
        ("IM-0429-0001-0002.jpeg", "normal-0429"),
        ("person447_virus_921_1.jpeg", "pneumonia-447"),
        ("person1000_bacteria_2931.jpeg", "pneumonia-1000"),
    ],
)
def test_patient_ids_are_read_from_kermany_names(name, patient):
    assert kermany_patient(name) == patient
