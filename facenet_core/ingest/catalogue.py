"""The dataset catalogue (deployments/datasets.yaml plus user files) merged into a DatasetConfig.

A catalogue entry holds what the project knows about a dataset (files with checksums, where the
identity folders end up, format, alignment) and what it is (description, contents, licence, disk).
The user's DatasetConfig wins wherever it differs from the schema default; its `files` are matched
to the entry's by file name and replace their URL (a mirror or a local path), keeping the entry's
checksums unless the user gives others. Entry names and file names are checked with
`safe_name` when a catalogue is read, so a bad name fails before any work.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deployments import CATALOGUE
from facenet_core.config.schema import DatasetConfig, DownloadFile
from facenet_core.errors import UserError
from facenet_core.ingest.download import default_filename
from facenet_core.safepath import safe_name

BUILTIN = CATALOGUE
ENV_VAR = "FACENET_DATASETS"
MERGED_FIELDS = ("concatenate_parts", "images_subdir", "format", "aligned", "max_extract_ratio")


class CatalogueFile(BaseModel):
    """A file of a catalogue entry; no URL means the user must supply it (login, torrent)."""

    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    sha256: str | None = None
    md5: str | None = None
    filename: str | None = None

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, value: str | None) -> str | None:
        return None if value is None else safe_name(value, what="catalogue file name")

    @model_validator(mode="after")
    def _has_a_name(self) -> CatalogueFile:
        self.name()
        return self

    def name(self) -> str:
        """The file's name under downloads/: `filename`, else the URL's last segment (checked)."""
        if self.filename:
            return self.filename
        if not self.url:
            raise UserError("a catalogue file needs a url or a filename")
        return default_filename(self.url)


class CatalogueEntry(BaseModel):
    """One dataset of the catalogue."""

    model_config = ConfigDict(extra="forbid")
    description: str
    contains: str = ""
    licence: str = ""
    homepage: str | None = None
    disk: str = ""
    files: list[CatalogueFile] = Field(default_factory=list)
    concatenate_parts: bool = False
    images_subdir: str | None = None
    format: str = "folders"
    aligned: bool = False
    max_extract_ratio: float | None = Field(None, gt=0, description="extracted/archive size bound (default 100)")

    @field_validator("images_subdir")
    @classmethod
    def _relative_subdir(cls, value: str | None) -> str | None:
        if value is not None:
            if value.startswith(("/", "\\")):
                raise UserError(f"images_subdir {value!r} must be relative to the dataset folder")
            for part in value.split("/"):
                safe_name(part, what="images_subdir component")
        return value


def _read_file(path: Path) -> dict[str, CatalogueEntry]:
    if not path.is_file():
        raise FileNotFoundError(f"dataset catalogue {path} not found")
    data = yaml.safe_load(path.read_text()) or {}
    entries = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise UserError(f"dataset catalogue {path} must hold a mapping under 'datasets:'")
    checked = {}
    for name, entry in entries.items():
        safe_name(str(name), what=f"dataset catalogue {path}: entry name")
        try:
            checked[str(name)] = CatalogueEntry.model_validate(entry)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in error.errors())
            raise UserError(f"dataset catalogue {path}: entry {name!r}: {problems}") from None
    return checked


def catalogue_files() -> list[Path]:
    """The built-in catalogue, then the files listed in $FACENET_DATASETS (later ones win)."""
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    return [BUILTIN, *extra]


def load_catalogue(paths: list[Path] | None = None) -> dict[str, CatalogueEntry]:
    """Every entry of the catalogue files, by name."""
    entries: dict[str, CatalogueEntry] = {}
    for path in paths or catalogue_files():
        entries.update(_read_file(path))
    return entries


def lookup(reference: str) -> CatalogueEntry:
    """An entry by name, or `file.yaml#name` for an entry of another file."""
    if "#" in reference:
        file_name, name = reference.rsplit("#", 1)
        entries = _read_file(Path(file_name).expanduser())
    else:
        name, entries = reference, load_catalogue()
    if name not in entries:
        raise UserError(f"dataset {name!r} is not in the catalogue; known: {', '.join(sorted(entries))}")
    return entries[name]


def _merge_files(entry_files: list[CatalogueFile], user_files: list[DownloadFile]) -> list[CatalogueFile]:
    merged = {item.name(): item for item in entry_files}
    for user in user_files:
        name = user.filename or default_filename(user.url)
        base = merged.get(name, CatalogueFile(filename=name))
        merged[name] = CatalogueFile(
            url=user.url,
            filename=name,
            sha256=user.sha256 or (None if user.md5 else base.sha256),
            md5=user.md5 or (None if user.sha256 else base.md5),
        )
    return list(merged.values())


def resolve_dataset(dataset: DatasetConfig) -> DatasetConfig:
    """The dataset with its catalogue entry's values filled in; unchanged when it names none.

    Raises ValueError naming each file that still has no URL (it needs a local path or mirror).
    """
    if not dataset.catalogue:
        return dataset
    entry = lookup(dataset.catalogue)
    defaults = DatasetConfig.model_fields
    values = dataset.model_dump()
    for field in MERGED_FIELDS:
        if values[field] == defaults[field].default:
            values[field] = getattr(entry, field)
    if values["name"] == defaults["name"].default:
        values["name"] = dataset.catalogue.rsplit("#", 1)[-1]
    files = _merge_files(entry.files, dataset.files)
    if not dataset.path:
        missing = [item.name() for item in files if not item.url]
        if missing:
            raise ValueError(
                f"dataset {dataset.catalogue!r}: no public URL for {', '.join(missing)} (it needs a login or a "
                "torrent). Give each file's local path or mirror URL in dataset.files (matched by filename), "
                "use `facenet download --mirror DIR_OR_URL`, or set dataset.path to the extracted folder."
            )
    values["files"] = [{**item.model_dump(), "filename": item.name()} for item in files if item.url]
    return DatasetConfig.model_validate(values)


def with_mirror(dataset: DatasetConfig, mirror: str) -> DatasetConfig:
    """The dataset's catalogue files all fetched from `mirror` (a folder or base URL) instead."""
    entry_files = lookup(dataset.catalogue).files if dataset.catalogue else []
    given = {item.filename or default_filename(item.url): item for item in dataset.files}
    names = dict.fromkeys([item.name() for item in entry_files] + list(given))
    base = mirror.rstrip("/")
    files = [
        DownloadFile(
            url=f"{base}/{name}",
            filename=name,
            sha256=given[name].sha256 if name in given else None,
            md5=given[name].md5 if name in given else None,
        )
        for name in names
    ]
    return dataset.model_copy(update={"files": files})
