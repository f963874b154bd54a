"""Which photos a list of inputs names: image files, flat folders of photos, or folders of identity
folders (`<root>/<person>/<img>`, the crop stage's layout, whose folder names are the identities).

A folder holding image files directly is flat (its subfolders are not read); a folder holding none
is a root of identity folders (`facenet_core.identities.list_identities`). Only names in
`facenet_core.images.IMAGE_EXTENSIONS` count as photos; hidden entries are skipped, listings are
sorted, and a photo listed twice (two inputs naming it) is kept once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from facenet_core.errors import UserError
from facenet_core.identities import list_identities
from facenet_core.images import is_image_name


@dataclass(frozen=True)
class PhotoInput:
    """A photo to read, and the identity its folder names (None outside a folder of identity folders)."""

    path: Path
    identity: str | None


def _image_files(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if not e.name.startswith(".") and is_image_name(e.name) and _is_file(e))
    return [folder / name for name in names]


def _is_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file()  # follows links; False for a broken one
    except OSError:
        return False


def _folder_photos(folder: Path) -> list[PhotoInput]:
    flat = _image_files(folder)
    if flat:
        return [PhotoInput(path, None) for path in flat]
    return [
        PhotoInput(path, identity)
        for identity in list_identities(folder)
        for path in _image_files(folder / identity)  # a name listed from the folder itself: one component
    ]


def list_photos(inputs: list[str | os.PathLike]) -> list[PhotoInput]:
    """The photos of `inputs` (files and folders, in the order given), each once.

    A file is taken as a photo whatever its extension (reading it says whether it is one); a missing
    input, or a folder without a photo, is a UserError naming it.
    """
    photos: dict[Path, PhotoInput] = {}
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found = _folder_photos(path)
            if not found:
                raise UserError(
                    f"folder {path} holds no photo (no image file in it or in its subfolders): give photos, "
                    "a folder of photos or a folder of identity folders"
                )
        elif path.is_file():
            found = [PhotoInput(path, None)]
        else:
            raise UserError(f"photo {path} does not exist: check the path")
        for photo in found:
            photos.setdefault(photo.path, photo)
    return list(photos.values())
