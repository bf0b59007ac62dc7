"""The model file: one zip holding the weights of every view and the settings to use them.

Layout (stdlib zipfile, deflated):
  settings.json  {"format": "ThighMuscleSeg model", "format_version": 1,
                  "weights_sha256": "<hex of weights.pt>", "settings": {...ModelSettings...}}
  weights.pt     torch.save({view: state_dict}) , loaded with weights_only=True (no pickled code)

Loading checks, in order: a zip with both members, the format name, a version this code
can read, the weights' SHA256, settings that are consistent, and state dicts that match
the architecture; any failure raises ModelFileError saying what is wrong and what to do.

torch is imported only when nets are built: ``load_model(..., lazy=True)`` checks the file and
reads its settings without it (importing torch takes 2-4 s of a 16 s segmentation), and the nets
are read from the verified weights when first used. ONNX Runtime inference with graphs already
exported for these weights never needs them (``Model.weights_key``).
"""

from __future__ import annotations

import hashlib
import io as _bytes_io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from .. import io
from .settings import ModelSettings

if TYPE_CHECKING:
    from torch import nn

FORMAT_NAME = "ThighMuscleSeg model"
FORMAT_VERSION = 1
SETTINGS_MEMBER = "settings.json"
WEIGHTS_MEMBER = "weights.pt"
MODEL_SUFFIX = ".tmsmodel"


class ModelFileError(io.InputError):
    """The model file is not one, is damaged, or does not fit this version of the code."""


class Model:
    """Settings plus one network per view (``settings.views``), ready for inference.

    A model read from a file with ``lazy=True`` holds its verified weights' bytes and builds the
    nets (importing torch) the first time ``nets`` is used."""

    def __init__(self, settings: ModelSettings, nets: "dict[str, nn.Module] | None" = None, *,
                 weights: bytes | None = None, weights_sha256: str | None = None, source: str = "model"):
        if nets is None and weights is None:
            raise ValueError("a Model needs its nets or the bytes of its weights")
        self.settings = settings
        self.weights_sha256 = weights_sha256  # of the file's weights.pt; None for nets made in memory
        self._source = source
        self._weights = weights
        self._nets = nets
        self._digests_at_load: dict[str, str] = {}  # view -> state_digest when built from the file's weights

    @property
    def nets(self) -> "dict[str, nn.Module]":
        if self._nets is None:
            self._nets = _nets_from_weights(self._source, self.settings, self._weights)
            self._digests_at_load = {v: state_digest(n) for v, n in self._nets.items()}
            self._weights = None
        return self._nets

    def net(self, view: str) -> "nn.Module":
        return self.nets[view]

    def eval(self) -> "Model":
        for n in self.nets.values():
            n.eval()
        return self

    def weights_key(self, view: str) -> str:
        """What identifies ``view``'s weights as they are now, without torch where it can: the
        file's weights digest while the nets are unbuilt or unchanged since they were read, else a
        digest of the net's current state (training changes the nets of a model it was given)."""
        if self.weights_sha256 and self._nets is None:
            return f"file:{self.weights_sha256}:{view}"
        digest = state_digest(self.nets[view])
        if self.weights_sha256 and digest == self._digests_at_load.get(view):
            return f"file:{self.weights_sha256}:{view}"
        return f"state:{digest}"


def state_digest(net: "nn.Module") -> str:
    """SHA256 of a net's state dict (names and values): the same weights give the same digest."""
    h = hashlib.sha256()
    for name, t in net.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def random_model(settings: ModelSettings | None = None, seed: int = 0) -> Model:
    """Untrained nets with reproducible random weights (tests, benchmarks)."""
    import torch

    from .unet import build_net

    settings = (settings or ModelSettings()).validated()
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        nets = {view: build_net(settings) for view in settings.views}
    finally:
        torch.random.set_rng_state(gen_state)  # leave the caller's random stream alone
    return Model(settings, nets).eval()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA256 of a whole file (what a download page publishes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(path: str | os.PathLike, settings: ModelSettings, nets: "dict[str, nn.Module]") -> Path:
    """Write the model file atomically; ``nets`` needs exactly one net per view."""
    import torch

    settings = settings.validated()
    if set(nets) != set(settings.views):
        raise ValueError(f"nets for views {sorted(nets)} do not match the settings' views {list(settings.views)}")
    buffer = _bytes_io.BytesIO()
    torch.save({v: {k: t.detach().cpu() for k, t in nets[v].state_dict().items()} for v in settings.views}, buffer)
    weights = buffer.getvalue()
    header = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
              "weights_sha256": sha256_bytes(weights), "settings": settings.to_dict()}
    with io.atomic_path(path) as tmp:
        # Deflated, not stored: torch.save writes a zip itself, and a stored copy would let a
        # truncated file pass for that inner archive.
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr(SETTINGS_MEMBER, json.dumps(header, indent=2))
            z.writestr(WEIGHTS_MEMBER, weights)
    return Path(path)


def load_model(path: str | os.PathLike, expected_file_sha256: str | None = None, lazy: bool = False) -> Model:
    """Read and verify a model file; nets on the CPU in eval mode.

    ``expected_file_sha256`` (optional) is the published digest of the whole file. ``lazy``:
    check the file, its settings and its weights' digest now, build the nets when first used
    (a damaged weights member still fails here: its digest is checked).
    """
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"model file {p} does not exist")
    if expected_file_sha256 and file_sha256(p) != expected_file_sha256.lower():
        raise ModelFileError(f"{p.name}: checksum mismatch with the published SHA256: "
                             "the file is damaged or not the expected one; download it again")
    header, weights = _read_members(p)
    if header.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{p.name} is not a ThighMuscleSeg model file (format {header.get('format')!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{p.name} has model format version {version!r}; this ThighMuscleSeg reads "
                             f"version {FORMAT_VERSION} and older: update ThighMuscleSeg")
    if sha256_bytes(weights) != header.get("weights_sha256"):
        raise ModelFileError(f"{p.name}: checksum mismatch: the file is damaged; download it again")
    try:
        settings = ModelSettings.from_dict(header["settings"])
    except (KeyError, TypeError, ValueError) as e:
        raise ModelFileError(f"{p.name} has unusable settings ({e}): it was made by an "
                             "incompatible version; use a model file made for this version") from None
    model = Model(settings, weights=weights, weights_sha256=header["weights_sha256"], source=p.name)
    return model if lazy else model.eval()


def _read_members(p: Path) -> tuple[dict, bytes]:
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            if not {SETTINGS_MEMBER, WEIGHTS_MEMBER} <= names:
                raise ModelFileError(f"{p.name} is not a ThighMuscleSeg model file, or it is truncated "
                                     f"(it lacks {SETTINGS_MEMBER} / {WEIGHTS_MEMBER}); download it again")
            raw_header = z.read(SETTINGS_MEMBER)
            weights = z.read(WEIGHTS_MEMBER)
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{p.name} is not a ThighMuscleSeg model file, or it is truncated "
                             f"({e}); download it again") from None
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise ModelFileError(f"{p.name} cannot be read ({e}): the file is damaged or truncated; "
                             "download it again") from None
    try:
        header = json.loads(raw_header.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{p.name}: {SETTINGS_MEMBER} is not valid JSON: the file is damaged; "
                             "download it again") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{p.name} is not a ThighMuscleSeg model file ({SETTINGS_MEMBER} is not an object)")
    return header, weights


def _nets_from_weights(name: str, settings: ModelSettings, weights: bytes) -> "dict[str, nn.Module]":
    import torch

    from .unet import build_net

    try:
        states = torch.load(_bytes_io.BytesIO(weights), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for broken pickles
        raise ModelFileError(f"{name}: the weights cannot be read ({type(e).__name__}): "
                             "the file is damaged; download it again") from None
    if not isinstance(states, dict) or set(states) != set(settings.views):
        found = sorted(states) if isinstance(states, dict) else type(states).__name__
        raise ModelFileError(f"{name}: the weights hold views {found} but the settings say "
                             f"{list(settings.views)}: the file is inconsistent; use another model file")
    nets = {}
    for view in settings.views:
        net = build_net(settings)
        try:
            net.load_state_dict(states[view])
        except (RuntimeError, TypeError, AttributeError) as e:
            first = str(e).strip().splitlines()[0]
            raise ModelFileError(f"{name}: the {view} weights do not fit a {settings.architecture} "
                                 f"U-Net of width {settings.width} with {settings.num_classes} classes "
                                 f"({first}); the file is inconsistent") from None
        nets[view] = net.eval()
    return nets
