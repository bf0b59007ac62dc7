"""A population of bodies: what each phantom case draws before it is built.

The template is one person (the Visible Human Female). A model trained on her alone learns
her: the layout, the sizes of her muscles relative to each other, her fat. So every case
first draws a *body* from an adult population, and the case is built to match it. Every
distribution, its range and its source is listed in ``docs/phantom.md`` (section
"Population"); the numbers live here only.

Sources (values rounded; recalled, not re-read, where marked):
- stature and body mass index: CDC/NCHS Anthropometric Reference Data, United States
  2015-2018 (Vital Health Stat 3(46), 2021): adult mean height men ~175 cm, women ~161 cm,
  SD ~7 cm; mean BMI ~29.5 with a right-skewed spread.
- lower-limb muscle volume against height x mass: Handsfield et al. 2014, J Biomech 47:631
  (total volume ~ 47 cm3 per m.kg x height x mass + 1285 cm3, recalled; individual muscles
  scale with the total, with a spread of roughly 10-20 % around it).
- age-related loss: ~1 % of thigh muscle a year after 50 (Goodpaster et al. 2006, J Gerontol
  A 61:1059); quadriceps atrophy after knee injury or surgery 10-30 % on the injured side
  (e.g. Thomas et al. 2016, J Athl Train); one-sided disuse (hip fracture, stroke) up to 30 %
  left/right asymmetry.
- muscle attenuation: healthy thigh muscle ~45-55 HU, severe myosteatosis ~15-25 HU
  (Goodpaster et al. 2000, J Appl Physiol 89:104; Aubrey et al. 2014, Acta Physiol 210:489).
- subcutaneous fat at mid-thigh: women thicker than men at the same BMI, a few mm (lean men)
  to 60 mm (obese women), from CT/MRI studies of thigh composition (e.g. Goodpaster 2000).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..classes import LEFT_OFFSET, NUM_MUSCLES

POPULATIONS = ("adult", "template")  # "template": the one body as before (legacy phantoms)
DEFAULT_POPULATION = "adult"

# Model class id -> group. The groups vary together within a person (training, disease).
GROUP_OF = {1: "other", 2: "quadriceps", 3: "quadriceps", 4: "quadriceps", 5: "quadriceps",
            6: "other", 7: "adductors", 8: "hamstrings", 9: "hamstrings", 10: "hamstrings"}
GROUPS = ("quadriceps", "hamstrings", "adductors", "other")

STATURE_CM = {"female": (161.0, 6.5), "male": (175.0, 7.0)}  # mean, SD (CDC 2015-2018)
BMI_MEDIAN, BMI_LOG_SD, BMI_RANGE = 27.5, 0.18, (17.0, 45.0)
TEMPLATE_STATURE_CM = 161.0  # the template is scaled as a woman of average height...
TEMPLATE_BMI = 24.0  # ...and lean-normal build (the VHF's thighs)
HANDSFIELD_SLOPE, HANDSFIELD_INTERCEPT = 47.0, 1285.0  # cm3 per (m kg), cm3 (recalled)
PATTERNS = {  # name: probability
    "healthy": 0.45, "sarcopenia": 0.2, "knee_injury": 0.15, "one_sided_disuse": 0.12, "athletic": 0.08}
MUSCLE_HU_HEALTHY = (50.0, 5.0)  # mean, SD across people
MUSCLE_HU_RANGE = (12.0, 62.0)
SEPTA_VOXELS = (0, 1, 2)  # extra intermuscular fat between touching muscles (2 mm template voxels)
SCALE_RANGE = {"length": (0.82, 1.25), "girth": (0.78, 1.35)}
FACTOR_RANGE = (0.4, 1.5)  # per-muscle volume factor left to the template peeling / growing


@dataclass(frozen=True)
class Body:
    """One drawn person. Factors are relative to the template."""

    sex: str
    stature_cm: float
    bmi: float
    age_years: float
    pattern: str
    affected_side: str | None  # knee injury / disuse side
    length_scale: float  # femur and thigh length (z)
    girth_scale: tuple[float, float]  # in-plane x, y of the whole body
    volume_factor: dict[int, float]  # CT label 1-20 -> muscle volume factor after scaling
    muscle_hu: dict[int, float]  # CT label 1-20 -> mean HU of the muscle (fat infiltration lowers it)
    subcutaneous_fat_mm: float
    septa_voxels: int
    fine_warp_mm: float  # amplitude of the per-muscle-scale (25 mm lattice) warp
    femur_bow_mm: float  # anterior bow of the thigh at mid-shaft
    appearance: dict = field(default_factory=dict)  # scanner and scene draws

    def to_params(self) -> dict:
        d = asdict(self)
        d["volume_factor"] = {str(k): round(v, 3) for k, v in self.volume_factor.items()}
        d["muscle_hu"] = {str(k): round(v, 1) for k, v in self.muscle_hu.items()}
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}


def _total_muscle(stature_cm: float, bmi: float) -> float:
    """Lower-limb muscle volume (cm3, Handsfield 2014); mass above BMI 25 counts a third
    (fat, not muscle, is what obesity mostly adds)."""
    h = stature_cm / 100.0
    lean_bmi = min(bmi, 25.0) + max(bmi - 25.0, 0.0) / 3.0
    return HANDSFIELD_SLOPE * h * (lean_bmi * h * h) + HANDSFIELD_INTERCEPT


def draw_body(seed: int) -> Body:
    """The body of case ``seed``: its own random stream, so the rest of the case's draws
    (pose, scanner) stay as they were."""
    rng = np.random.default_rng([int(seed), 0xB0D7])
    sex = "male" if rng.uniform() < 0.5 else "female"
    mean, sd = STATURE_CM[sex]
    stature = float(np.clip(rng.normal(mean, sd), mean - 2.5 * sd, mean + 2.5 * sd))
    bmi = float(np.clip(BMI_MEDIAN * np.exp(rng.normal(0.0, BMI_LOG_SD)), *BMI_RANGE))
    age = float(rng.uniform(20.0, 90.0))
    names = list(PATTERNS)
    pattern = str(rng.choice(names, p=np.array(list(PATTERNS.values())) / sum(PATTERNS.values())))
    side = str(rng.choice(["right", "left"]))
    length = float(np.clip(stature / TEMPLATE_STATURE_CM * rng.normal(1.0, 0.03), *SCALE_RANGE["length"]))
    muscle = _total_muscle(stature, bmi) / _total_muscle(TEMPLATE_STATURE_CM, TEMPLATE_BMI)
    muscle *= 1.08 if sex == "male" else 0.95  # men carry more muscle at the same size
    muscle *= 1.0 - 0.01 * max(age - 50.0, 0.0) * rng.uniform(0.5, 1.5)  # ~1 %/year after 50
    muscle *= float(np.exp(rng.normal(0.0, 0.10)))
    # The whole body scales in-plane with the muscle cross-section (volume / length); what is
    # left of the volume change goes to the individual muscles.
    girth = float(np.clip(np.sqrt(muscle / length), *SCALE_RANGE["girth"]))
    aniso = rng.normal(1.0, 0.04, 2)
    girth_xy = (float(np.clip(girth * aniso[0], *SCALE_RANGE["girth"])),
                float(np.clip(girth * aniso[1], *SCALE_RANGE["girth"])))
    residual = muscle / (length * girth_xy[0] * girth_xy[1])
    group = {g: float(np.exp(rng.normal(0.0, 0.10))) for g in GROUPS}
    own = np.exp(rng.normal(0.0, 0.12, NUM_MUSCLES))
    asym = np.exp(rng.normal(0.0, 0.03, (2, NUM_MUSCLES)))
    pattern_f = _pattern_factors(rng, pattern, side)
    factors, hu = {}, {}
    base_hu = rng.normal(*MUSCLE_HU_HEALTHY) - 0.25 * max(age - 40.0, 0.0) - 0.3 * max(bmi - 27.0, 0.0)
    if pattern == "sarcopenia":
        base_hu -= rng.uniform(5.0, 20.0)
    for s_i, s in enumerate(("right", "left")):
        for m in range(1, NUM_MUSCLES + 1):
            v = m + (LEFT_OFFSET if s == "left" else 0)
            f = residual * group[GROUP_OF[m]] * own[m - 1] * asym[s_i, m - 1] * pattern_f[(s, m)]
            factors[v] = float(np.clip(f, *FACTOR_RANGE))
            # Atrophic muscle is fattier: lower attenuation where the pattern took volume.
            loss = max(0.0, 1.0 - pattern_f[(s, m)])
            hu[v] = float(np.clip(base_hu - 35.0 * loss + rng.normal(0.0, 3.0), *MUSCLE_HU_RANGE))
    fat_mm = _subcutaneous_fat(rng, sex, bmi)
    septa = int(rng.choice(SEPTA_VOXELS, p=(0.55, 0.37, 0.08)))
    if age > 70 and bmi > 30:  # older, obese thighs carry more intermuscular fat
        septa = min(septa + 1, SEPTA_VOXELS[-1])
    return Body(sex, round(stature, 1), round(bmi, 2), round(age, 1), pattern,
                side if pattern in ("knee_injury", "one_sided_disuse") else None,
                length, girth_xy, factors, hu, fat_mm, septa,
                fine_warp_mm=float(rng.uniform(1.0, 5.0)), femur_bow_mm=float(rng.uniform(0.0, 10.0)),
                appearance=draw_appearance(rng))


def _pattern_factors(rng: np.random.Generator, pattern: str, side: str) -> dict[tuple[str, int], float]:
    """(side, model id) -> volume factor of the atrophy / hypertrophy pattern."""
    f = {(s, m): 1.0 for s in ("right", "left") for m in range(1, NUM_MUSCLES + 1)}
    if pattern == "sarcopenia":
        g = rng.uniform(0.6, 0.88)
        for k in f:
            f[k] = g * rng.uniform(0.92, 1.05)
    elif pattern == "knee_injury":
        g = rng.uniform(0.65, 0.9)
        for m in (2, 3, 4, 5):
            f[(side, m)] = g * rng.uniform(0.9, 1.05)
    elif pattern == "one_sided_disuse":
        g = rng.uniform(0.7, 0.92)
        for m in range(1, NUM_MUSCLES + 1):
            f[(side, m)] = g * rng.uniform(0.92, 1.05)
    elif pattern == "athletic":
        for k in f:
            f[k] = rng.uniform(1.05, 1.25)
    return f


def _subcutaneous_fat(rng: np.random.Generator, sex: str, bmi: float) -> float:
    base = (8.0 + 1.6 * (bmi - 18.0)) if sex == "female" else (3.0 + 0.9 * (bmi - 18.0))
    return float(np.clip(base * np.exp(rng.normal(0.0, 0.25)), 3.0, 60.0))


def draw_appearance(rng: np.random.Generator) -> dict:
    """Scanner and scene: slice thickness, pixel size, noise and kernel, vessels, blanket,
    metal, field-of-view offset (see docs/phantom.md, "Real-CT appearance")."""
    u = rng.uniform()
    thick = rng.uniform(0.6, 1.5) if u < 0.3 else rng.uniform(1.5, 3.0) if u < 0.7 else rng.uniform(3.0, 5.0)
    contrast = rng.uniform() < 0.4
    return {
        "slice_mm": float(thick),
        "pixel_mm": float(rng.uniform(0.6, 1.0)),
        "noise_hu": float(rng.uniform(5.0, 30.0)),
        "noise_grain_px": float(rng.uniform(0.5, 1.6)),  # sharp kernel: fine grain; soft: coarse
        "blur_mm": float(rng.uniform(0.3, 1.2)),
        "vessel_contrast": bool(contrast),
        "artery_hu": float(rng.uniform(180.0, 380.0) if contrast else rng.uniform(35.0, 50.0)),
        "vein_hu": float(rng.uniform(90.0, 200.0) if contrast else rng.uniform(35.0, 50.0)),
        "blanket": bool(rng.uniform() < 0.3),
        "metal": str(rng.choice(["none", "hip", "knee"], p=(0.9, 0.05, 0.05))),
        "metal_side": str(rng.choice(["right", "left"])),
        "fov_offset_mm": [float(v) for v in rng.normal(0.0, 25.0, 2)],
    }


# Regions of the population kept out of training to test generalization inside the project
# (`make evaluate-model` scores there): the most muscular and the most atrophic tenth (by
# muscle_index, thresholds measured on 4000 draws: `python -m ThighMuscleSegLib.phantom.population`),
# the thickest septa and the thinnest subcutaneous fat.
MUSCLE_INDEX_DECILES = (0.613, 1.452)  # 10th and 90th percentile of muscle_index
THIN_FAT_MM = 7.0
HOLDOUT_REGIONS = ("most_muscular", "most_atrophic", "thickest_septa", "thinnest_fat")


def muscle_index(body: Body) -> float:
    """The body's thigh-muscle volume relative to the template: scale times mean factor."""
    gx, gy = body.girth_scale
    return float(np.mean(list(body.volume_factor.values())) * gx * gy * body.length_scale)


def holdout_region(body: Body) -> str | None:
    """The held-out region the body falls in, or None for a body that training may see."""
    mi = muscle_index(body)
    if mi >= MUSCLE_INDEX_DECILES[1]:
        return "most_muscular"
    if mi <= MUSCLE_INDEX_DECILES[0]:
        return "most_atrophic"
    if body.septa_voxels >= SEPTA_VOXELS[-1]:
        return "thickest_septa"
    if body.subcutaneous_fat_mm <= THIN_FAT_MM:
        return "thinnest_fat"
    return None


def seeds_in(selection: str, first: int, count: int) -> list[int]:
    """``count`` seeds from ``first`` on whose bodies fit ``selection``: "all", "train" (no
    held-out region), "holdout" (any held-out region) or one region's name."""
    if selection not in ("all", "train", "holdout") + HOLDOUT_REGIONS:
        raise ValueError(f"unknown selection {selection!r}")
    out, seed = [], first
    while len(out) < count:
        region = holdout_region(draw_body(seed)) if selection != "all" else None
        if (selection == "all" or (selection == "train" and region is None)
                or (selection == "holdout" and region is not None) or region == selection):
            out.append(seed)
        seed += 1
    return out


if __name__ == "__main__":  # the population's summary, and the thresholds above
    bodies = [draw_body(s) for s in range(4000)]
    mi = np.array([muscle_index(b) for b in bodies])
    print("muscle_index 10/50/90 %:", np.percentile(mi, [10, 50, 90]).round(3))
    for r in HOLDOUT_REGIONS:
        print(f"{r}: {np.mean([holdout_region(b) == r for b in bodies]):.3f}")
    print("patterns:", {p: round(float(np.mean([b.pattern == p for b in bodies])), 3) for p in PATTERNS})
