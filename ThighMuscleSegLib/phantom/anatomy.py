"""Surface meshes of a lower-body anatomy folder: STL reading and robust name matching.

A folder is laid out like the Visible Human Female surfaces: ``*_<Left|Right>_<Muscle|Bone|
Cartilage>_<Name>[_smooth].stl`` anywhere below it. File names vary between data sets: the side
may be ``Left``/``Right`` or ``L``/``R`` (``VHM_L_Muscle_Gracilis.stl``), or only the name of a
``Left``/``Right`` folder above the file (``Left/Muscle_Gracilis.stl``); words may be joined by
underscores, spaces or hyphens, in any case; ``_smooth`` is optional. Spellings vary too
(Semitendonosus, BicepsFemorisLongHead, QuadratisFemoris, Illiacus ...), so names are reduced
to a canonical key by patterns; a structure present on one side only is mirrored from the other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import InputError

_SEP = r"[_\s\-]+"
_KIND = r"(muscles?|bones?|cartilages?)"
_NAME = r"(.+?)(?:[_\s\-]+smooth(?:ed)?)?\.stl$"
# Side, kind and name in the file name ("VHF_Left_Muscle_X_smooth.stl", "VHM_L_Muscle_X.stl").
FILE_PATTERN = re.compile(rf"(?:^|[_\s\-.])(left|right|l|r){_SEP}{_KIND}{_SEP}{_NAME}", re.IGNORECASE)
# No side in the file name ("Muscle_X.stl"): the side is a Left/Right folder above the file.
SIDELESS_PATTERN = re.compile(rf"(?:^|[_\s\-.]){_KIND}{_SEP}{_NAME}", re.IGNORECASE)
_SIDE_WORD = {"left": "left", "l": "left", "right": "right", "r": "right"}
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
    (r"quadrat\w*fem|^quadrat[iu]s$", "quadratus_femoris"),
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
# Landmarks the body's frame is found from (``orient``), each needed on at least one side:
# file-name form shown in messages -> canonical keys, any of which will do.
REQUIRED_LANDMARKS: dict[str, tuple[str, ...]] = {
    "Cartilage_FemurHead (femoral-head cartilage)": ("cartilage_femurhead",),
    "Cartilage_FemurDistal (distal-femur cartilage)": ("cartilage_femurdistal",),
    "Bone_Patella or Cartilage_Patella (patella)": ("bone_patella", "cartilage_patella"),
}
# Bones and cartilages whose names vary (FemoralHead, HeadOfFemur, DistalFemur, Patellar ...).
_OTHER_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "cartilage": (
        (r"acetab", "cartilage_pelvisacetabulum"),
        (r"fem\w*head|head\w*fem", "cartilage_femurhead"),
        (r"fem\w*(?:dist|condyl)|dist\w*fem|^condyl", "cartilage_femurdistal"),
        (r"patel", "cartilage_patella"),
    ),
    "bone": (
        (r"patel", "bone_patella"), (r"tibia", "bone_tibia"), (r"fibula", "bone_fibula"),
        (r"sacr", "bone_sacrum"), (r"coccy", "bone_coccyx"),
    ),
}


def normalise(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def canonical_key(kind: str, name: str) -> str:
    """``muscle``/``bone``/``cartilage`` + file name part -> a canonical key like
    ``semitendinosus`` (muscles) or ``bone_tibia`` / ``cartilage_femurhead``."""
    kind = kind.lower().rstrip("s")
    n = normalise(name)
    rules = _MUSCLE_RULES if kind == "muscle" else _OTHER_RULES.get(kind, ())
    for pattern, key in rules:
        if re.search(pattern, n):
            return key
    return f"{kind}_{n}"


def read_stl(path: str | Path) -> np.ndarray:
    """Triangles of a binary or ASCII STL file as a float64 array (n, 3, 3), file units."""
    data = Path(path).read_bytes()
    if len(data) >= 84:
        n = int(np.frombuffer(data, "<u4", 1, 80)[0])
        if 84 + 50 * n == len(data) or (84 + 50 * n < len(data) and not data[:5].lower() == b"solid"):
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
        parsed = parse_name(p.relative_to(folder)) if p.is_file() else None
        if parsed:
            found.setdefault(parsed, p)
    return found


def _folder_side(rel: Path) -> str | None:
    """``left``/``right`` from the nearest folder above the file named so (Left/, R/ ...)."""
    for part in reversed(rel.parts[:-1]):
        side = _SIDE_WORD.get(part.lower())
        if side:
            return side
    return None


def parse_name(rel: str | Path) -> tuple[str, str] | None:
    """(side, canonical key) of a surface file (path relative to the anatomy folder), or None
    when the name is not a ``<side>_<kind>_<name>.stl`` surface."""
    rel = Path(rel)
    m = FILE_PATTERN.search(rel.name)
    if m:
        side, kind, name = _SIDE_WORD[m.group(1).lower()], m.group(2), m.group(3)
    else:
        m = SIDELESS_PATTERN.search(rel.name)
        if not m:
            return None
        side, kind, name = _folder_side(rel), m.group(1), m.group(2)
    key = canonical_key(kind, name)
    if key in MIDLINE:
        return "midline", key
    return (side, key) if side else None


def plan_structures(folder: str | Path) -> list[Structure]:
    """Every structure to voxelize on both sides; one-sided ones mirrored from the other side.

    Raises InputError naming every thigh muscle or frame landmark missing on both sides (what
    no mirroring can replace).
    """
    found = find_structures(folder)
    if not found:
        raise InputError(f"no '*_<Left|Right>_Muscle_<Name>.stl' surfaces found under {folder}")
    keys = {k for _, k in found}
    problems = []
    missing = [k for k in REQUIRED_MUSCLES if k not in keys]
    if missing:
        problems.append(f"these thigh muscles: {', '.join(missing)}")
    absent = [name for name, alts in REQUIRED_LANDMARKS.items() if not keys & set(alts)]
    if absent:
        problems.append(f"these landmarks of the body's frame: {'; '.join(absent)}")
    if problems:
        raise InputError(f"{folder} lacks, on both sides, " + " and ".join(problems))
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
