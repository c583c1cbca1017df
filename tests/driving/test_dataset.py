"""Dataset folders: streaming index, lazy reads, splits by seed, byte-identical output for a seed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from cluster.config import load_config
from driving.dataset import SceneDataset, split_of, write_dataset


def _config(count: int = 10, workers: int = 1, seed: int = 3):
    return load_config(
        None,
        [
            f"scenes.count={count}",
            f"scenes.workers={workers}",
            f"scenes.seed={seed}",
            "scenes.camera={preset: tiny}",
        ],
    ).scenes


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> SceneDataset:
    root = tmp_path_factory.mktemp("ds") / "scenes"
    write_dataset(_config(), root)
    return SceneDataset(root)


def test_manifest_and_index_agree(dataset):
    entries = list(dataset.entries())
    assert len(dataset) == len(entries) == 10
    assert [e.number for e in entries] == list(range(10))
    assert sum(dataset.manifest["families"].values()) == 10
    assert sum(dataset.manifest["splits"].values()) == 10
    assert len({e.id for e in entries}) == 10


def test_scenes_and_images_load_lazily(dataset):
    entry = next(dataset.entries())
    scene = dataset.load(entry)
    assert scene.id == entry.id and scene.sample.family == entry.family
    assert scene.sample.images["front"].path == entry.images["front"]
    img = dataset.image(entry, "front")
    assert img.size == (64, 64)
    assert dataset.scene_by_number(entry.number) == scene
    with pytest.raises(KeyError, match="no 'bev' image"):
        dataset.image(entry, "bev")


def test_split_filter_and_split_function(dataset):
    for split in ("train", "val", "test"):
        got = [e.number for e in dataset.entries(split=split)]
        assert got == [
            n for n in range(10) if split_of(3, n, {"train": 0.8, "val": 0.1, "test": 0.1}) == split
        ]
    counts = {s: 0 for s in ("train", "val", "test")}
    for n in range(5000):
        counts[split_of(0, n, {"train": 0.8, "val": 0.1, "test": 0.1})] += 1
    assert abs(counts["train"] / 5000 - 0.8) < 0.03 and abs(counts["test"] / 5000 - 0.1) < 0.02


def test_same_seed_same_bytes_whatever_the_workers(tmp_path, dataset):
    write_dataset(_config(workers=2), tmp_path / "b")
    assert _digest(tmp_path / "b") == _digest(dataset.root)
    write_dataset(_config(seed=4), tmp_path / "c")
    assert _digest(tmp_path / "c") != _digest(dataset.root)


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(_config(count=2), tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "precious"


def test_not_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        SceneDataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="format is 'other'"):
        SceneDataset(tmp_path)
