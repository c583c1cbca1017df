"""The scene dataset folder: a manifest, a streaming index, one JSON file per scene, and its images.

    DIR/manifest.json               what the folder holds: counts per family and split, generator settings
    DIR/index.jsonl                 one line per scene, in order: id, family, split, command, files
    DIR/scenes/000/s0-000123.json   scene JSON (SCENE_FORMAT.md), `sample.images` pointing at ...
    DIR/images/000/s0-000123.front.png

Scene i lives in shard i // 1000, so the path of any scene follows from its number: a reader opens
only what it is asked for and streams the index line by line, which keeps 100k-scene folders cheap.
Splits are a pure function of (seed, scene number). Every file is a pure function of the config, so
the same seed writes byte-identical folders whatever the number of worker processes.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image

from driving.config import SPLITS, ScenesConfig
from driving.scene import CameraImage, Scene, dumps_scene, load_scene

FORMAT = "elf-vla-scenes"
FORMAT_VERSION = 1
SHARD_SIZE = 1000


@dataclass(frozen=True)
class IndexEntry:
    """One line of index.jsonl."""

    number: int
    id: str
    family: str
    difficulty: str
    split: str
    command: str
    scene: str  # path of the scene JSON, relative to the dataset root
    images: dict[str, str]  # view -> PNG path relative to the root


def scene_id(seed: int, number: int) -> str:
    """Unique across datasets of different seeds (the scorer caches by scene id)."""
    return f"s{seed}-{number:06d}"


def scene_seed(seed: int, number: int) -> int:
    """The generator seed of scene `number`: independent streams per scene."""
    digest = hashlib.blake2b(f"scene:{seed}:{number}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def split_of(seed: int, number: int, fractions: dict[str, float]) -> str:
    digest = hashlib.blake2b(f"split:{seed}:{number}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2**64
    acc = 0.0
    for name in SPLITS:
        acc += fractions.get(name, 0.0)
        if u < acc:
            return name
    return [n for n in SPLITS if fractions.get(n, 0.0) > 0][-1]


def _relative_paths(sid: str, number: int, views: list[str]) -> tuple[str, dict[str, str]]:
    shard = f"{number // SHARD_SIZE:03d}"
    return f"scenes/{shard}/{sid}.json", {v: f"images/{shard}/{sid}.{v}.png" for v in views}


# -------------------------------------------------------------------------------------- reading ---


class SceneDataset:
    """Lazy reader of a dataset folder: nothing but the manifest is read up front."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        manifest = self.root / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(
                f"{self.root}: no manifest.json; is this a folder written by `elf-vla make-scenes`?"
            )
        self.manifest = json.loads(manifest.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{manifest}: format is {self.manifest.get('format')!r}, expected {FORMAT!r}")

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def entries(self, split: str | None = None, families: list[str] | None = None) -> Iterator[IndexEntry]:
        """Stream the index, optionally filtered by split and family."""
        with open(self.root / "index.jsonl") as f:
            for line in f:
                entry = IndexEntry(**json.loads(line))
                if split is not None and entry.split != split:
                    continue
                if families is not None and entry.family not in families:
                    continue
                yield entry

    def load(self, entry: IndexEntry) -> Scene:
        return load_scene(self.root / entry.scene)

    def image(self, entry: IndexEntry, view: str = "front") -> Image.Image:
        if view not in entry.images:
            raise KeyError(
                f"scene {entry.id} has no {view!r} image; it has: {', '.join(entry.images) or 'none'}"
            )
        with Image.open(self.root / entry.images[view]) as img:
            return img.convert("RGB")

    def scenes(self, split: str | None = None, families: list[str] | None = None) -> Iterator[Scene]:
        for entry in self.entries(split, families):
            yield self.load(entry)

    def scene_by_number(self, number: int) -> Scene:
        sid = scene_id(int(self.manifest["seed"]), number)
        return load_scene(self.root / _relative_paths(sid, number, [])[0])


# -------------------------------------------------------------------------------------- writing ---


@dataclass(frozen=True)
class _Job:
    root: str
    config: ScenesConfig
    number: int
    family: str


def _make_one(job: _Job) -> IndexEntry:
    """Generate, render and write scene `job.number` (runs in a worker process)."""
    from driving.camera import render_camera
    from driving.generator import generate_scene

    cfg = job.config
    sid = scene_id(cfg.seed, job.number)
    scene_path, image_paths = _relative_paths(sid, job.number, cfg.views)
    scene = generate_scene(job.family, scene_seed(cfg.seed, job.number), sid)
    root = Path(job.root)
    images: dict[str, CameraImage] = {}
    for view, rel in image_paths.items():
        img = render_camera(scene, cfg.camera) if view == "front" else _render_bev(scene, cfg)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        img.save(root / rel, format="PNG", optimize=False)
        images[view] = CameraImage(path=rel, width=img.width, height=img.height)
    assert scene.sample is not None, "the generator always fills `sample`"
    if images:
        scene = scene.model_copy(update={"sample": scene.sample.model_copy(update={"images": images})})
    (root / scene_path).parent.mkdir(parents=True, exist_ok=True)
    (root / scene_path).write_text(dumps_scene(scene))
    return IndexEntry(
        number=job.number,
        id=sid,
        family=scene.sample.family,
        difficulty=scene.sample.difficulty,
        split=split_of(cfg.seed, job.number, cfg.splits),
        command=scene.sample.command,
        scene=scene_path,
        images=image_paths,
    )


def _render_bev(scene: Scene, cfg: ScenesConfig) -> Image.Image:
    from driving.bev import render_bev

    return render_bev(scene, size_px=cfg.camera.width)


def write_dataset(
    config: ScenesConfig,
    out: str | Path,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate `config.count` scenes into `out` (which must be empty or absent); returns the manifest."""
    from driving.generator import sample_families

    root = Path(out)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty; choose a new --out folder or delete this one")
    root.mkdir(parents=True, exist_ok=True)
    families = sample_families(config.count, config.seed, _effective_mix(config))
    jobs = [_Job(str(root), config, i, fam) for i, fam in enumerate(families)]
    per_family: Counter[str] = Counter()
    per_split: Counter[str] = Counter()
    per_difficulty: Counter[str] = Counter()
    start = time.perf_counter()
    with open(root / "index.jsonl", "w") as index:
        for done, entry in enumerate(_run_jobs(jobs, config.workers), start=1):
            index.write(json.dumps(asdict(entry), sort_keys=True) + "\n")
            per_family[entry.family] += 1
            per_split[entry.split] += 1
            per_difficulty[entry.difficulty] += 1
            if on_progress:
                on_progress(done, len(jobs))
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "count": config.count,
        "seed": config.seed,
        "config": config.model_dump(mode="json", exclude={"workers"}),  # not a property of the data
        "families": dict(sorted(per_family.items())),
        "difficulty": dict(sorted(per_difficulty.items())),
        "splits": {s: per_split.get(s, 0) for s in SPLITS},
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    manifest["seconds"] = time.perf_counter() - start  # reported, not written: files stay reproducible
    return manifest


def _effective_mix(config: ScenesConfig) -> dict[str, float] | None:
    """`families` restricts the mix (default weights) to a subset."""
    if config.families is None:
        return config.mix
    from driving.generator import DEFAULT_MIX

    base = config.mix or DEFAULT_MIX
    return {f: base.get(f, 0.0) or 1.0 for f in config.families}


def _run_jobs(jobs: list[_Job], workers: int) -> Iterator[IndexEntry]:
    if workers <= 1 or len(jobs) < 8:
        yield from map(_make_one, jobs)
        return
    ctx = multiprocessing.get_context("spawn")  # no fork: callers may hold threads (Ray, torch)
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_make_one, jobs, chunksize=8)
