"""Surface meshes of a lower-body anatomy folder: STL reading and robust name matching.

A folder is laid out like the Visible Human Female surfaces: ``*_<Left|Right>_<Muscle|Bone|
Cartilage>_<Name>[_smooth].stl`` anywhere below it. Spellings vary between data sets
(Semitendonosus, BicepsFemorisLongHead, QuadratisFemoris ...), so names are reduced to a
canonical key by patterns; a structure present on one side only is mirrored from the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import InputError

FILE_PATTERN = re.compile(r"(left|right)_(muscle|bone|cartilage)_(.+?)(?:_smooth)?\.stl$", re.IGNORECASE)
# Structures on the body's midline: one mesh, never mirrored.
MIDLINE = frozenset({"bone_sacrum", "bone_coccyx"})

# (pattern on the normalised name, canonical key). First match wins; order matters
# (e.g. "bicepsfemorisshort" before the long head's looser pattern).
_MUSCLE_RULES: tuple[tuple[str, str], ...] = (
    (r"sartor", "sartorius"),
    (r"rectusfem", "rectus_femoris"),
    (r"vast\w*lat", "vastus_lateralis"),
    (r"vast\w*inter", "vastus_intermedius"),
    (r"vast\w*med", "vastus_medialis"),
    (r"gracil", "gracilis"),
    (r"adduct\w*long", "adductor_longus"),
    (r"adduct\w*brev", "adductor_brevis"),
    (r"adduct\w*mag", "adductor_magnus"),
    (r"bicep\w*short|bicep\w*brev", "biceps_femoris_short"),
    (r"bicep", "biceps_femoris_long"),
    (r"semiten", "semitendinosus"),
    (r"semimem", "semimembranosus"),
    (r"glut\w*max", "gluteus_maximus"),
    (r"glut\w*med", "gluteus_medius"),
    (r"glut\w*min", "gluteus_minimus"),
    (r"^tensor", "tensor_fasciae_latae"),  # not "extensor"
    (r"pectin", "pectineus"),
    (r"il+iac", "iliacus"),
    (r"psoas", "psoas_major"),
    (r"quadrat\w*fem", "quadratus_femoris"),
    (r"obtur\w*ext", "obturator_externus"),
    (r"obtur\w*int", "obturator_internus"),
    (r"gemel\w*sup|sup\w*gemel", "gemellus_superior"),
    (r"gemel\w*inf|inf\w*gemel", "gemellus_inferior"),
    (r"pirif", "piriformis"),
    (r"gastroc\w*lat", "gastrocnemius_lateral"),
    (r"gastroc\w*med", "gastrocnemius_medial"),
    (r"soleus", "soleus"),
    (r"tibial\w*ant", "tibialis_anterior"),
    (r"tibial\w*post", "tibialis_posterior"),
    (r"extens\w*dig", "extensor_digitorum_longus"),
    (r"extens\w*hal", "extensor_hallucis_longus"),
    (r"flex\w*dig", "flexor_digitorum_longus"),
    (r"flex\w*hal", "flexor_hallucis_longus"),
    (r"perone|fibular", "peroneus_longus"),
    (r"plantar", "plantaris"),
    (r"poplit", "popliteus"),
)

# Canonical muscle key -> model class id (1..10); the rest are non-target muscles.
THIGH_CLASS_OF = {
    "sartorius": 1, "rectus_femoris": 2, "vastus_lateralis": 3, "vastus_intermedius": 4,
    "vastus_medialis": 5, "gracilis": 6, "adductor_longus": 7, "adductor_brevis": 7,
    "adductor_magnus": 7, "biceps_femoris_long": 8, "biceps_femoris_short": 8,
    "semitendinosus": 9, "semimembranosus": 10,
}
REQUIRED_MUSCLES = tuple(THIGH_CLASS_OF)


def normalise(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def canonical_key(kind: str, name: str) -> str:
    """``muscle``/``bone``/``cartilage`` + file name part -> a canonical key like
    ``semitendinosus`` (muscles) or ``bone_tibia`` / ``cartilage_femurhead``."""
    kind = kind.lower()
    n = normalise(name)
    if kind == "muscle":
        for pattern, key in _MUSCLE_RULES:
            if re.search(pattern, n):
                return key
        return "muscle_" + n
    return f"{kind}_{n}"


def read_stl(path: str | Path) -> np.ndarray:
    """Triangles of a binary or ASCII STL file as a float64 array (n, 3, 3), file units."""
    data = Path(path).read_bytes()
    if len(data) >= 84:
        n = int(np.frombuffer(data, "<u4", 1, 80)[0])
        if 84 + 50 * n == len(data):
            rec = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            return np.frombuffer(data, rec, n, 84)["v"].astype(np.float64)
    text = data.decode("ascii", errors="replace")
    if not text.lstrip().lower().startswith("solid"):
        raise InputError(f"{path} is neither a binary nor an ASCII STL file")
    nums = re.findall(r"vertex\s+(\S+)\s+(\S+)\s+(\S+)", text)
    if not nums or len(nums) % 3:
        raise InputError(f"{path}: ASCII STL with {len(nums)} vertices (not whole triangles)")
    return np.asarray(nums, dtype=np.float64).reshape(-1, 3, 3)


@dataclass(frozen=True)
class Structure:
    side: str  # "right", "left" or "midline"
    key: str  # canonical key
    path: Path
    mirrored: bool = False  # built from the other side's mesh


def find_structures(folder: str | Path) -> dict[tuple[str, str], Path]:
    """(side, canonical key) -> STL file, for every matching file below ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"anatomy folder {folder} does not exist")
    found: dict[tuple[str, str], Path] = {}
    for p in sorted(folder.rglob("*")):
        m = FILE_PATTERN.search(p.name)
        if not m or not p.is_file():
            continue
        key = canonical_key(m.group(2), m.group(3))
        side = "midline" if key in MIDLINE else m.group(1).lower()
        found.setdefault((side, key), p)
    return found


def plan_structures(folder: str | Path) -> list[Structure]:
    """Every structure to voxelize on both sides; one-sided ones mirrored from the other side.

    Raises InputError when a thigh muscle is missing on both sides.
    """
    found = find_structures(folder)
    if not found:
        raise InputError(f"no '*_<Left|Right>_Muscle_<Name>.stl' surfaces found under {folder}")
    keys = {k for _, k in found}
    missing = [k for k in REQUIRED_MUSCLES if k not in keys]
    if missing:
        raise InputError(f"{folder} lacks these thigh muscles on both sides: {', '.join(missing)}")
    plan: list[Structure] = []
    for key in sorted(keys):
        if ("midline", key) in found:
            plan.append(Structure("midline", key, found[("midline", key)]))
            continue
        for side, other in (("right", "left"), ("left", "right")):
            if (side, key) in found:
                plan.append(Structure(side, key, found[(side, key)]))
            else:
                plan.append(Structure(side, key, found[(other, key)], mirrored=True))
    return plan
