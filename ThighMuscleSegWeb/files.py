"""What the page offers to open (``--data``), and uploads written where the app can read them."""

from __future__ import annotations

from pathlib import Path

from ThighMuscleSegLib import io as tio

MAX_LISTED = 500  # a huge --data tree is cut, not walked for minutes
MAX_DEPTH = 4
DEVICES = ("auto", "cpu", "cuda", "mps")
BUNDLED_MODEL = "bundled model"


def _walk(root: Path, depth: int = 0):
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return
    for p in entries:
        if p.name.startswith("."):
            continue
        yield p
        if p.is_dir() and depth < MAX_DEPTH:
            yield from _walk(p, depth + 1)


def _looks_like_dicom_folder(folder: Path) -> bool:
    """A folder of files that are no NIfTI / NRRD / MHA (cheap: the reader says the rest)."""
    try:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError:
        return False
    return bool(files) and not any(tio.has_ct_suffix(p) for p in files) and any(
        p.suffix.lower() in ("", ".dcm", ".ima") for p in files)


def list_inputs(data_dir: Path | None) -> list[dict]:
    """CT files and DICOM folders under ``data_dir`` as select items (title relative, value absolute)."""
    if data_dir is None:
        return []
    items = []
    for p in _walk(data_dir):
        if len(items) >= MAX_LISTED:
            break
        if (p.is_file() and tio.has_ct_suffix(p)) or (p.is_dir() and _looks_like_dicom_folder(p)):
            title = p.relative_to(data_dir).as_posix() + ("/ (DICOM)" if p.is_dir() else "")
            items.append({"title": title, "value": str(p)})
    return items


def list_models(data_dir: Path | None) -> list[dict]:
    """The bundled model first (value ""), then the .tmsmodel files under ``data_dir``."""
    items = [{"title": BUNDLED_MODEL, "value": ""}]
    if data_dir is not None:
        items += [{"title": p.relative_to(data_dir).as_posix(), "value": str(p)}
                  for p in _walk(data_dir) if p.is_file() and p.suffix == ".tmsmodel"][:MAX_LISTED]
    return items


def is_allowed(path: str, data_dir: Path | None, upload_dir: Path) -> bool:
    """Only what the page listed or an upload may be opened (the page never names other server paths)."""
    p = Path(path).resolve()
    roots = [upload_dir.resolve()] + ([data_dir.resolve()] if data_dir is not None else [])
    return any(p == r or r in p.parents for r in roots)


def save_uploads(files: list[dict], upload_dir: Path) -> Path:
    """Write the browser's files into a new folder: one CT file is that file; several are a DICOM series."""
    if not files:
        raise tio.InputError("no file was uploaded")
    n = sum(1 for _ in upload_dir.iterdir()) if upload_dir.is_dir() else 0
    folder = upload_dir / f"upload-{n:03d}"
    folder.mkdir(parents=True)
    written = []
    for f in files:
        name = Path(str(f.get("name") or "file")).name  # no folders from the client
        if not name or name.startswith("."):
            name = f"file-{len(written):04d}"
        content = f.get("content")
        if isinstance(content, list):  # large files arrive in chunks
            content = b"".join(content)
        if not isinstance(content, (bytes, bytearray)):
            raise tio.InputError(f"{name}: the upload did not arrive whole; try again")
        target = folder / name
        target.write_bytes(bytes(content))
        written.append(target)
    return written[0] if len(written) == 1 and tio.has_ct_suffix(written[0]) else folder
