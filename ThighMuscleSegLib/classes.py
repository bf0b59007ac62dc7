"""The class table: the one source of truth for what the model segments.

Model space holds one thigh (the left one mirrored to look like a right one) with class
ids 0 (background) and 1-10. CT space holds both thighs: right 1-10, left 11-20.
Slicer's colour table and terminology file in ``Resources/`` are generated from this
table (``python -m ThighMuscleSegLib.resources``); a test fails when they drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

NUM_MUSCLES = 10
NUM_MODEL_CLASSES = NUM_MUSCLES + 1  # background + 10 muscles
LEFT_OFFSET = NUM_MUSCLES  # left label value = model id + 10
SIDES = ("right", "left")


@dataclass(frozen=True)
class Code:
    """A coded concept as DICOM writes it: (scheme designator, code value, meaning)."""

    scheme: str
    value: str
    meaning: str

    def slicer_string(self) -> str:
        """Slicer's ``scheme^value^meaning`` form used in terminology entries."""
        return f"{self.scheme}^{self.value}^{self.meaning}"


@dataclass(frozen=True)
class MuscleClass:
    model_id: int  # 1..10
    key: str  # machine name, also the stem of file and column names
    name: str  # display name
    color: tuple[int, int, int]  # RGB 0-255 of the right side; the left is a darker shade
    code: Code  # SNOMED CT body structure, or a private code until one is confirmed
    code_source: str  # the public document the code was checked against
    parts: tuple[str, ...]  # anatomical muscles merged into this class

    def label_value(self, side: str) -> int:
        """The CT-space label value of this muscle on ``side`` ("right" or "left")."""
        return self.model_id + (LEFT_OFFSET if _side(side) == "left" else 0)

    def side_color(self, side: str) -> tuple[int, int, int]:
        if _side(side) == "right":
            return self.color
        return tuple(int(round(c * 0.72)) for c in self.color)  # type: ignore[return-value]

    def side_name(self, side: str) -> str:
        return f"{_side(side).capitalize()} {self.name.lower()}"


def _side(side: str) -> str:
    s = side.lower()
    if s not in SIDES:
        raise ValueError(f"side must be 'right' or 'left', not {side!r}")
    return s


# Where each code was checked. A muscle whose SNOMED CT code could not be confirmed in a
# public source carries a private code (scheme "99THIGHSEG", as DICOM allows) until it is:
# a wrong SNOMED code in a DICOM SEG is worse than an honest private one.
SRC_SLICER_TOTALSEG = ("lassoan/SlicerTotalSegmentator, "
                       "TotalSegmentator/Resources/totalsegmentator_snomed_mapping.csv")
SRC_FHIR_APPROACH_SITE = "HL7 FHIR R4 ValueSet approach-site-codes (hl7.org/fhir/R4/valueset-approach-site-codes.html)"
SRC_SILPH = ("Philippine road-safety FHIR IG, ValueSet SILPH List of Body Sites "
             "(roadsafetyph.doh.gov.ph/ValueSet/SILPH-ListofBodySites)")
SRC_NZHTS = ("Health New Zealand NZHTS ValueSet canshare-soft-tissue-extremity-topography "
             "(github.com/tewhatuora/nzhts-ig, input/resources/canshare-soft-tissue-extremity-topography.json; "
             "SNOMED CT NZ edition 20241001: 89241006 \"Biceps femoris muscle structure\")")
SRC_PS3_16 = "DICOM PS3.16 (pydicom.sr.codedict codes.SCT)"
SRC_R2BO = ("Chile MINSAL R2BO FHIR IG, cached SNOMED CT International 20250701 expansion "
            "(github.com/Minsal-CL/R2BO, input/txcache/snomed.cache, commit cdd3db0: "
            "181682001 \"Entire vastus intermedius muscle\"); also in UBERON's SCTID bridge, per issue #15 "
            "(github.com/obophenotype/uberon, src/ontology/bridge/uberon-bridge-to-sctid)")
PRIVATE_SCHEME = "99THIGHSEG"
SRC_UNCONFIRMED = "no public SNOMED CT source confirmed yet: private code"

CATEGORY = Code("SCT", "123037004", "Anatomical Structure")
CATEGORY_SOURCE = SRC_SLICER_TOTALSEG + " (the category 3D Slicer segmentations use)"
LATERALITY = {
    "right": Code("SCT", "24028007", "Right"),
    "left": Code("SCT", "7771000", "Left"),
}
LATERALITY_SOURCE = SRC_PS3_16 + ", CID 244 Laterality"


def _private(value: str, meaning: str) -> Code:
    return Code(PRIVATE_SCHEME, value, meaning)


CLASSES: tuple[MuscleClass, ...] = (
    MuscleClass(1, "sartorius", "Sartorius", (230, 159, 0),
                Code("SCT", "12595009", "Sartorius muscle"), SRC_SLICER_TOTALSEG, ("Sartorius",)),
    MuscleClass(2, "rectus_femoris", "Rectus femoris", (220, 50, 47),
                Code("SCT", "72226001", "Rectus femoris muscle"), SRC_SILPH, ("RectusFemoris",)),
    MuscleClass(3, "vastus_lateralis", "Vastus lateralis", (86, 180, 233),
                Code("SCT", "1403006", "Vastus lateralis muscle"), SRC_FHIR_APPROACH_SITE, ("VastusLateralis",)),
    MuscleClass(4, "vastus_intermedius", "Vastus intermedius", (0, 114, 178),
                Code("SCT", "181682001", "Entire vastus intermedius muscle"), SRC_R2BO, ("VastusIntermedius",)),
    MuscleClass(5, "vastus_medialis", "Vastus medialis", (0, 158, 115),
                Code("SCT", "3478008", "Vastus medialis muscle"), SRC_FHIR_APPROACH_SITE, ("VastusMedialis",)),
    MuscleClass(6, "gracilis", "Gracilis", (240, 228, 66),
                Code("SCT", "2577006", "Gracilis muscle"), SRC_FHIR_APPROACH_SITE, ("Gracilis",)),
    MuscleClass(7, "adductors", "Adductors", (204, 121, 167),
                Code("SCT", "303803003", "Adductor muscle of hip joint"), SRC_SILPH,
                ("AdductorLongus", "AdductorBrevis", "AdductorMagnus")),
    MuscleClass(8, "biceps_femoris", "Biceps femoris", (148, 103, 189),
                Code("SCT", "89241006", "Biceps femoris muscle"), SRC_NZHTS,
                ("BicepsFemorisLong", "BicepsFemorisShort")),
    MuscleClass(9, "semitendinosus", "Semitendinosus", (140, 86, 75),
                _private("ST", "Semitendinosus muscle"), SRC_UNCONFIRMED, ("Semitendinosus",)),
    MuscleClass(10, "semimembranosus", "Semimembranosus", (127, 200, 140),
                _private("SM", "Semimembranosus muscle"), SRC_UNCONFIRMED, ("Semimembranosus",)),
)

BACKGROUND_NAME = "Background"
TERMINOLOGY_CONTEXT = "Segmentation category and type - ThighMuscleSeg"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def by_model_id(model_id: int) -> MuscleClass:
    if not 1 <= model_id <= NUM_MUSCLES:
        raise ValueError(f"model class id must be 1..{NUM_MUSCLES}, not {model_id}")
    return CLASSES[model_id - 1]


def by_key(key: str) -> MuscleClass:
    for c in CLASSES:
        if c.key == key:
            return c
    raise KeyError(f"no muscle class {key!r}; known: {', '.join(c.key for c in CLASSES)}")


def split_label_value(value: int) -> tuple[MuscleClass, str]:
    """CT-space label value (1..20) -> (class, side)."""
    if 1 <= value <= NUM_MUSCLES:
        return CLASSES[value - 1], "right"
    if NUM_MUSCLES < value <= 2 * NUM_MUSCLES:
        return CLASSES[value - 1 - LEFT_OFFSET], "left"
    raise ValueError(f"CT label value must be 1..{2 * NUM_MUSCLES}, not {value}")


@dataclass(frozen=True)
class Segment:
    """One CT-space label: a muscle on one side, as Slicer and DICOM SEG show it."""

    label_value: int
    muscle: MuscleClass
    side: str

    @property
    def name(self) -> str:
        return self.muscle.side_name(self.side)

    @property
    def color(self) -> tuple[int, int, int]:
        return self.muscle.side_color(self.side)

    @property
    def laterality(self) -> Code:
        return LATERALITY[self.side]

    @property
    def column_key(self) -> str:
        return f"{self.muscle.key}_{self.side}"

    def slicer_terminology(self) -> str:
        """Slicer's serialized terminology entry for this segment.

        Components: context~category~type~type modifier~region context~region~region modifier.
        """
        empty = "^^"
        return "~".join([
            TERMINOLOGY_CONTEXT, CATEGORY.slicer_string(), self.muscle.code.slicer_string(),
            self.laterality.slicer_string(), ANATOMIC_CONTEXT, empty, empty,
        ])


def segments() -> tuple[Segment, ...]:
    """All 20 CT-space segments, right 1-10 then left 11-20."""
    return tuple(Segment(c.label_value(side), c, side) for side in SIDES for c in CLASSES)


def ct_labels_to_model_ids(labels, side: str):
    """CT-space label array -> model class ids (0..10) of one side; the other side is 0."""
    import numpy as np

    arr = np.asarray(labels)
    offset = LEFT_OFFSET if _side(side) == "left" else 0
    ids = arr.astype(np.int16) - offset
    ids[(ids < 1) | (ids > NUM_MUSCLES)] = 0
    return ids.astype(np.uint8)


def model_ids_to_ct_labels(ids, side: str):
    """Model class ids (0..10) -> CT label values of ``side`` (background stays 0)."""
    import numpy as np

    arr = np.asarray(ids).astype(np.uint8)
    if _side(side) == "right":
        return arr.copy()
    return np.where(arr > 0, arr + LEFT_OFFSET, 0).astype(np.uint8)


@dataclass(frozen=True)
class MuscleGroup:
    """Muscles of one thigh reported together (a row of measurements.csv per side)."""

    key: str  # machine name; never a class key, so a row's ``muscle`` names one thing
    name: str  # display name
    members: tuple[str, ...]  # class keys
    source: str  # where the grouping is stated

    def side_name(self, side: str) -> str:
        return f"{_side(side).capitalize()} {self.name[0].lower()}{self.name[1:]}"

    def label_values(self, side: str) -> tuple[int, ...]:
        return tuple(by_key(k).label_value(side) for k in self.members)


# The groups follow the thigh's fascial compartments. The quadriceps femoris is the four
# muscles inserting through the quadriceps tendon (sartorius shares the anterior compartment
# but not the tendon, so it is only in "all ten"). The hamstrings are the posterior
# compartment; the class "biceps_femoris" merges the long head with the short head, which
# does not cross the hip, so the group holds both heads. The adductor group is the medial
# compartment: adductor longus, brevis and magnus (the class "adductors") and gracilis, the
# grouping both sources below state (pectineus and obturator externus are not segmented).
SRC_QUADRICEPS = ("anatomyexpert.com/app/structure/5740/1630/ (thigh anterior compartment muscles: "
                  "the four forming the quadriceps tendon); Gray's Anatomy 41st ed. (2016), thigh")
SRC_HAMSTRINGS = "teachmeanatomy.info/lower-limb/muscles/thigh/hamstrings/ (posterior compartment)"
SRC_ADDUCTORS = ("teachmeanatomy.info/lower-limb/muscles/thigh/medial-compartment/; "
                 "imaios.com/en/e-Anatomy/Anatomical-Parts/Medial-compartment-of-thigh (medial compartment)")

GROUPS: tuple[MuscleGroup, ...] = (
    MuscleGroup("quadriceps", "Quadriceps",
                ("rectus_femoris", "vastus_lateralis", "vastus_intermedius", "vastus_medialis"), SRC_QUADRICEPS),
    MuscleGroup("hamstrings", "Hamstrings", ("biceps_femoris", "semitendinosus", "semimembranosus"), SRC_HAMSTRINGS),
    MuscleGroup("adductor_group", "Adductor group (adductors and gracilis)", ("adductors", "gracilis"), SRC_ADDUCTORS),
    MuscleGroup("all_muscles", "All ten muscles", tuple(c.key for c in CLASSES), "the class table"),
)
