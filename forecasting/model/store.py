"""Where model artifacts live: `models_root`, a local folder or an fsspec URL (s3://bucket/models).

    <models_root>/<model_id>/          one artifact directory (forecasting.model.artifact)
    <models_root>/<model_id>/manifest.json
                                       every other file of the artifact with its size and SHA-256,
                                       written last

GluonTS serializes a predictor into a local folder only, so an artifact is always written to a local
folder first (`save_pipeline`) and read from one (`load_pipeline`); this module puts that folder in
place and fetches it back.

Atomicity. On a local models_root the folder is written under a temporary name and renamed into
place (lake/files.py, `atomic_write`). An object store has no rename: the files are uploaded to their
final keys, and the manifest last: it is the commit point. A replaced copy loses its manifest before
the first file of the new one is uploaded, and a load downloads exactly the files the manifest names
and checks each against it. So an upload cut short (a crash, a lost connection, two hosts writing the
same model at once) never loads: it has no manifest, or files that differ from it (ArtifactError;
retraining writes it again). Loading still runs the artifact's code (see artifact.py): keep the
models root as trusted as the code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from forecasting.lake.files import LakeFS, atomic_write, one_line

if TYPE_CHECKING:  # the model (torch, scikit-learn) is imported only where one is saved or loaded
    from forecasting.config import Settings
    from forecasting.model.pipeline import DeepARPipeline

MANIFEST_FILE = "manifest.json"
CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> dict[str, dict[str, object]]:
    """List every file below `folder` (size, SHA-256) in its manifest.json; returns the listing."""
    files = {
        path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILE
    }
    (folder / MANIFEST_FILE).write_text(json.dumps({"files": files}, indent=2, sort_keys=True) + "\n")
    return files


@dataclass(frozen=True)
class ModelStore:
    """The configured models root: a local folder, or a prefix on an object store (reached like the
    lake: the same endpoint, credentials from the environment)."""

    store: LakeFS

    @classmethod
    def of(cls, settings: Settings) -> ModelStore:
        return cls(LakeFS.open(settings.models_root, settings.lake_endpoint_url))

    @property
    def is_local(self) -> bool:
        return self.store.is_local

    def location(self, model_id: str) -> str:
        """Where the artifact of `model_id` is: a local path, or a URL (s3://bucket/models/deepar-…)."""
        return self.store.shown(self.store.path(model_id))

    def relative(self, location: str) -> str | None:
        """`location` relative to the models root (`deepar-…`); None when it lies outside it."""
        if self.is_local:
            try:
                return Path(location).relative_to(self.store.root).as_posix()
            except ValueError:
                return None
        root = self.store.shown(self.store.root).rstrip("/") + "/"
        return location.removeprefix(root) if location.startswith(root) else None

    def exists(self, model_id: str) -> bool:
        """Whether anything is stored for `model_id` (complete or not: loading checks that)."""
        return self.store.exists(self.store.path(model_id))

    def save(self, pipeline: DeepARPipeline) -> str:
        """Store the fitted `pipeline` under its model id (replacing an older copy: same data and
        parameters give the same id); returns its location."""
        from forecasting.model.artifact import save_pipeline

        model_id = pipeline.model_id_
        if self.is_local:
            with atomic_write(Path(self.store.path(model_id))) as temporary:
                save_pipeline(pipeline, temporary)
                write_manifest(temporary)
            return self.location(model_id)
        with tempfile.TemporaryDirectory(prefix="spotcast-model-") as tmp:
            folder = save_pipeline(pipeline, Path(tmp) / model_id)
            self._upload(folder, write_manifest(folder), self.store.path(model_id))
        return self.location(model_id)

    def _upload(self, folder: Path, files: dict[str, dict[str, object]], prefix: str) -> None:
        from forecasting.model.artifact import ArtifactError

        fs = self.store.fs
        manifest = f"{prefix}/{MANIFEST_FILE}"
        try:
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(manifest)  # the old copy stops loading before any of its files is replaced
            fs.put([str(folder / name) for name in files], [f"{prefix}/{name}" for name in files])
            fs.put_file(str(folder / MANIFEST_FILE), manifest)  # last: now the artifact is complete
        except OSError as exc:
            raise ArtifactError(
                f"could not upload the model artifact {self.store.shown(prefix)} ({one_line(exc)}); "
                "it is not loadable: train again"
            ) from None

    @contextmanager
    def local_copy(self, model_id: str) -> Iterator[Path]:
        """A local folder holding the artifact of `model_id`, for the block: a local models root's
        own folder; from an object store a checked download, removed after the block (a loaded
        pipeline holds everything in memory)."""
        if self.is_local:
            yield Path(self.store.path(model_id))
            return
        with tempfile.TemporaryDirectory(prefix="spotcast-model-") as tmp:
            yield self._download(model_id, Path(tmp) / model_id)

    def _download(self, model_id: str, folder: Path) -> Path:
        from forecasting.model.artifact import ArtifactError

        fs, prefix, where = self.store.fs, self.store.path(model_id), self.location(model_id)
        try:
            files = json.loads(fs.cat_file(f"{prefix}/{MANIFEST_FILE}"))["files"]
            for name in files:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
            fs.get([f"{prefix}/{name}" for name in files], [str(folder / name) for name in files])
        except FileNotFoundError as exc:
            raise ArtifactError(
                f"{where} is no complete model artifact ({one_line(exc)} is missing: an upload that "
                "did not finish); retrain (`spotcast train`) or promote another run"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{where}/{MANIFEST_FILE} is unreadable ({one_line(exc)}); retrain"
            ) from None
        except OSError as exc:  # the store did not answer: nothing is wrong with the artifact
            raise ArtifactError(f"cannot download the model artifact {where}: {one_line(exc)}") from None
        for name, entry in files.items():
            path = folder / name
            if path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
                raise ArtifactError(
                    f"{where}/{name} differs from the artifact's {MANIFEST_FILE} (an upload cut "
                    "short or overwritten meanwhile); retrain (`spotcast train`) or promote another run"
                )
        return folder
