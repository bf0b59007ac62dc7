"""Does an image file hold all the data its header describes?

ITK fills what is missing from a cut ``.nii`` / ``.nii.gz`` with zeros and reads on, which gives
a partly empty CT and silently wrong volumes. Here each format's header is parsed for the data
it promises (sizes x voxel type, where the data starts, in which file), and the data is
measured: raw data by the file's length, compressed data by reading it to its end, which checks
its checksum too (gzip: CRC-32 and length of every member; zlib: Adler-32).

``plan(path)`` checks at once what is cheap (a raw file's length, a detached data file that is
missing, a header's voxel size) and returns the slow check (inflating compressed data), which
the reader runs beside ITK's own read. Formats or layouts not parsed here (a NRRD data file
list, an ASCII encoding) are left to ITK.
"""

from __future__ import annotations

import bz2
import gzip
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import InputError

CHUNK = 1 << 20


@dataclass
class Expected:
    name: str  # the file named in messages
    data_path: Path  # where the voxels are
    offset: int  # bytes before the voxels (in the data file, or in the inflated stream for .nii.gz)
    data_bytes: int  # what the header's sizes and voxel type need
    encoding: str  # raw, gzip, zlib, bzip2
    described: str  # "256 x 256 x 200 int16" for messages
    floats: str = ""  # numpy dtype of float voxels whose NaNs ITK would read as 0 (NIfTI), else ""


def plan(path: str | os.PathLike) -> Callable[[], None] | None:
    """Check the cheap things now; return the slow check to run (or None when nothing is left)."""
    p = Path(path)
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        exp = _nifti(p)
    elif name.endswith((".nrrd", ".nhdr")):
        exp = _nrrd(p)
    elif name.endswith((".mha", ".mhd")):
        exp = _metaimage(p)
    else:
        return None
    if exp is None:
        return None
    if not exp.data_path.is_file():
        raise InputError(f"{exp.name} is missing: {p.name} is a header whose voxels are in a separate file; "
                         f"copy {exp.data_path.name} next to it")
    if exp.encoding == "raw":
        _check_raw(exp)
        return (lambda: _check_stream(exp)) if exp.floats else None
    return lambda: _check_stream(exp)


def verify_written(path: str | os.PathLike) -> None:
    """After a writer that may not report a failed write (ITK's NIfTI writer only prints
    "wrote only N of M bytes" when the disk is full or a file size limit is reached): the file
    must hold all the data its header describes. RuntimeError (a write failure) when not."""
    try:
        check = plan(path)
        if check is not None:
            check()
    except InputError as e:
        raise RuntimeError(f"the file written is incomplete: {e}") from None


def check_nifti_header(path: str | os.PathLike) -> None:
    """A NIfTI header's own voxel sizes (pixdim): ITK reads 0 or NaN there as 1 mm, silently."""
    p = Path(path)
    if p.name.lower().endswith((".nii", ".nii.gz")):
        _nifti(p)


def truncated_message(name: str, got: int, expected: int, what: str) -> str:
    share = 100.0 * got / expected if expected else 0.0
    return (f"{name} is truncated: {share:.0f} % of the expected data ({got:,} of {expected:,} bytes of "
            f"{what} voxels); the file was cut short (an interrupted copy or download?): copy it again")


def _too_much(name: str, got: int, exp: Expected) -> str:
    return (f"{name} holds more data than its header describes ({got:,} bytes where {exp.described} voxels need "
            f"{exp.data_bytes:,}): its header does not match its data; export the image again")


def _check_raw(exp: Expected) -> None:
    got = os.path.getsize(exp.data_path) - exp.offset
    if got < exp.data_bytes:
        raise InputError(truncated_message(exp.name, max(got, 0), exp.data_bytes, exp.described))
    if got > exp.data_bytes and exp.offset >= 0:
        raise InputError(_too_much(exp.name, got, exp))


def _check_stream(exp: Expected) -> None:
    """Read the data to its end (inflating checks the checksums on the way), count the bytes
    and, for float voxels, the values that are not numbers."""
    import numpy as np

    total = exp.offset + exp.data_bytes
    got, bad, carry = 0, 0, b""
    lead = exp.offset if exp.encoding == "gzip-file" else 0  # header bytes inside the stream
    try:
        with open(exp.data_path, "rb") as raw:
            raw.seek(0 if exp.encoding == "gzip-file" else max(exp.offset, 0))
            stream = raw if exp.encoding == "raw" else _inflating(raw, exp.encoding)
            while True:
                block = stream.read(CHUNK)
                if not block:
                    break
                if exp.floats:
                    skip = max(0, min(len(block), lead - got))
                    data = carry + block[skip:]
                    usable = len(data) - len(data) % np.dtype(exp.floats).itemsize
                    bad += int((~np.isfinite(np.frombuffer(data[:usable], exp.floats))).sum())
                    carry = data[usable:]
                got += len(block)
                if got > total + CHUNK:
                    break
    except EOFError:
        pass  # cut short: reported below from what was read
    except (gzip.BadGzipFile, zlib.error, OSError, ValueError) as e:
        if any(w in str(e).lower() for w in ("crc", "incorrect length", "incorrect data check")):
            raise InputError(f"{exp.name} is damaged: its {_kind(exp)} checksum does not match the data "
                             "(bytes changed in a copy or on the disk); copy it again") from None
        raise InputError(f"{exp.name} is damaged: its {_kind(exp)} data cannot be decompressed ({e}); "
                         "copy it again") from None
    voxels = got - lead
    if voxels < exp.data_bytes or getattr(stream, "incomplete", False):
        raise InputError(truncated_message(exp.name, max(voxels, 0), exp.data_bytes, exp.described))
    if voxels > exp.data_bytes and exp.encoding != "raw":
        raise InputError(_too_much(exp.name, voxels, exp))
    if bad:
        raise InputError(f"{exp.name} holds {bad:,} voxels that are NaN or infinite: a damaged or processed "
                         "image, not a CT in HU; export the original CT again")


def _kind(exp: Expected) -> str:
    return {"gzip-file": "gzip", "gzip": "gzip", "zlib": "zlib", "bzip2": "bzip2"}.get(exp.encoding, "")


class _Zlib:
    """A zlib or gzip stream read to its end, every gzip member of it when ``members``; zlib
    checks each member's CRC-32 and length (gzip) or Adler-32 (zlib). Unlike ``gzip.GzipFile``
    it hands out what it inflated before a cut, so a truncated file's share can be told."""

    def __init__(self, raw, wbits: int, members: bool = False):
        self.raw, self.wbits, self.members = raw, wbits, members
        self.d, self.incomplete, self.buffer = zlib.decompressobj(wbits), False, b""

    def read(self, n: int) -> bytes:
        while True:
            if not self.buffer:
                self.buffer = self.raw.read(n)
                if not self.buffer:  # the end of the file
                    if self.d.eof:
                        return b""
                    self.incomplete = True
                    return self.d.flush()
            if self.d.eof:
                if not self.members:
                    return b""  # MetaIO: what follows the stream is not the image's
                if not self.buffer.strip(b"\0"):
                    self.buffer = b""  # zero padding after the last member
                    continue
                if not self.buffer.startswith(b"\x1f\x8b"):
                    raise zlib.error("data after the last gzip member is not gzip")
                self.d = zlib.decompressobj(self.wbits)
            out = self.d.decompress(self.buffer)
            self.buffer = self.d.unused_data if self.d.eof else b""
            if out:
                return out


def _inflating(raw, encoding: str):
    if encoding in ("gzip-file", "gzip"):
        return _Zlib(raw, 31, members=True)
    if encoding == "zlib":
        return _Zlib(raw, 47)  # zlib or gzip header, as MetaIO writes either
    if encoding == "bzip2":
        return bz2.BZ2File(raw)
    raise ValueError(encoding)


# --- NIfTI-1 / NIfTI-2 --------------------------------------------------------------------------

def _nifti(p: Path) -> Expected | None:
    gz = p.name.lower().endswith(".gz")
    try:
        with (gzip.open(p, "rb") if gz else open(p, "rb")) as f:
            head = f.read(544)
    except (OSError, EOFError, zlib.error):
        return None  # not readable as gzip at all: ITK's error says so
    if len(head) < 348:
        return None
    for endian in "<>":
        size = struct.unpack(endian + "i", head[:4])[0]
        if size == 348 and head[344:347] in (b"n+1", b"ni1"):
            if head[344:347] == b"ni1":
                return None  # .hdr/.img pair: not a CT_SUFFIX file
            dims = struct.unpack(endian + "8h", head[40:56])
            datatype = struct.unpack(endian + "h", head[70:72])[0]
            bitpix = struct.unpack(endian + "h", head[72:74])[0]
            pixdim = struct.unpack(endian + "8f", head[76:108])
            offset = int(struct.unpack(endian + "f", head[108:112])[0])
            break
        if size == 540 and head[4:7] == b"n+2" and len(head) >= 540:
            datatype = struct.unpack(endian + "h", head[12:14])[0]
            bitpix = struct.unpack(endian + "h", head[14:16])[0]
            dims = struct.unpack(endian + "8q", head[16:80])
            pixdim = struct.unpack(endian + "8d", head[104:168])
            offset = struct.unpack(endian + "q", head[168:176])[0]
            break
    else:
        return None
    ndim = dims[0]
    if not 1 <= ndim <= 7 or bitpix <= 0 or bitpix % 8:
        raise InputError(f"{p.name} has a broken NIfTI header ({ndim} dimensions, {bitpix} bits per voxel)")
    shape = [max(int(d), 0) for d in dims[1:ndim + 1]]
    for axis, v in zip("xyz", pixdim[1:min(ndim, 3) + 1]):
        if not math.isfinite(v) or v <= 0:
            raise InputError(f"{p.name} has a voxel size of {v:g} mm along {axis} in its NIfTI header (pixdim): "
                             "a broken header; set the voxel size (e.g. in 3D Slicer) and save the image again")
    offset = max(offset, 352 if size == 348 else 544)
    floats = {16: "f4", 64: "f8"}.get(datatype, "")
    return Expected(p.name, p, offset, math.prod(shape) * bitpix // 8, "gzip-file" if gz else "raw",
                    " x ".join(map(str, shape)) + f" {bitpix}-bit", endian + floats if floats else "")


# --- NRRD -----------------------------------------------------------------------------------------

_NRRD_SIZES = ((("char", "int8", "uchar"), 1), (("short", "int16"), 2), (("longlong", "long long", "int64"), 8),
               (("double",), 8), (("float",), 4), (("int", "int32", "uint"), 4))


def _nrrd_type_size(t: str) -> int | None:
    t = t.strip().lower()
    for words, n in _NRRD_SIZES:
        if any(w in t for w in words):
            return n
    return None


def _header_lines(p: Path, limit: int = 1 << 16) -> tuple[list[bytes], int]:
    """The header's lines up to the first empty one, and the byte offset after it."""
    with open(p, "rb") as f:
        head = f.read(limit)
    lines, pos = [], 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        if end < 0:
            break
        line = head[pos:end].rstrip(b"\r")
        pos = end + 1
        if not line:
            return lines, pos
        lines.append(line)
    return lines, pos


def _nrrd(p: Path) -> Expected | None:
    lines, data_start = _header_lines(p)
    if not lines or not lines[0].startswith(b"NRRD"):
        return None
    fields = {}
    for raw in lines[1:]:
        line = raw.decode("latin-1")
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip().lower()] = value.lstrip("=").strip()
    try:
        sizes = [int(v) for v in fields["sizes"].split()]
    except (KeyError, ValueError):
        return None
    n = _nrrd_type_size(fields.get("type", ""))
    encoding = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(
        fields.get("encoding", "raw").lower())
    if n is None or encoding is None or "line skip" in fields and fields["line skip"] != "0":
        return None
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if data_file.upper().startswith("LIST") or len(data_file.split()) > 1:
            return None  # several data files: left to ITK
        data_path, offset = (p.parent / data_file), 0
        name = f"{p.name}'s data file {data_path.name}"
    else:
        if p.name.lower().endswith(".nhdr"):
            return None
        data_path, offset = p, data_start
    skip = int(fields.get("byte skip", "0") or 0)
    name = name if data_file else p.name
    data_bytes = math.prod(sizes) * n
    if skip == -1:  # the data are the file's last bytes
        offset = -1 if encoding == "raw" else offset
        if encoding == "raw":
            exp = Expected(name, data_path, 0, data_bytes, "raw", " x ".join(map(str, sizes)) + f" {n}-byte")
            if data_path.is_file() and os.path.getsize(data_path) < data_bytes:
                raise InputError(truncated_message(name, os.path.getsize(data_path), data_bytes, exp.described))
            return None
    elif skip > 0:
        offset += skip if encoding == "raw" else 0
    return Expected(name, data_path, offset, data_bytes, encoding, " x ".join(map(str, sizes)) + f" {n}-byte")


# --- MetaImage ------------------------------------------------------------------------------------

_MET_SIZES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4,
              "MET_LONG": 4, "MET_ULONG": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}


def _metaimage(p: Path) -> Expected | None:
    with open(p, "rb") as f:
        head = f.read(1 << 16)
    fields, data_start = {}, None
    for m in re.finditer(rb"([^\r\n=]+?)\s*=\s*([^\r\n]*)\r?\n", head):
        key = m.group(1).decode("latin-1").strip()
        fields[key.lower()] = m.group(2).decode("latin-1").strip()
        if key.lower() == "elementdatafile":
            data_start = m.end()
            break
    if data_start is None or "dimsize" not in fields:
        return None
    try:
        sizes = [int(v) for v in fields["dimsize"].split()]
        channels = int(fields.get("elementnumberofchannels", "1"))
    except ValueError:
        return None
    n = _MET_SIZES.get(fields.get("elementtype", "").upper())
    if n is None:
        return None
    compressed = fields.get("compresseddata", "false").lower() == "true"
    data_file = fields["elementdatafile"]
    if data_file.upper() == "LOCAL":
        data_path, offset = p, data_start
    elif data_file.upper().startswith("LIST") or len(data_file.split()) > 1:
        return None
    else:
        data_path, offset = p.parent / data_file, 0
    name = p.name if data_file.upper() == "LOCAL" else f"{p.name}'s data file {data_path.name}"
    header_size = int(fields.get("headersize", "0") or 0)
    data_bytes = math.prod(sizes) * n * channels
    if header_size == -1:
        return None
    offset += max(header_size, 0)
    packed = fields.get("compresseddatasize", "")
    if compressed and packed.isdigit() and data_path.is_file():  # MetaIO tells the compressed size: cheap
        have = os.path.getsize(data_path) - offset
        if have < int(packed):
            raise InputError(truncated_message(name, max(have, 0), int(packed), "compressed"))
    return Expected(name, data_path, offset, data_bytes, "zlib" if compressed else "raw",
                    " x ".join(map(str, sizes)) + f" {fields.get('elementtype', '').upper()}")
