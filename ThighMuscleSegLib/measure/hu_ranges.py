"""Hounsfield ranges of muscle quality: the one place they are set, each with its source.

All ranges are inclusive, in HU, applied to the voxels inside a muscle's label:

- IMAT (intramuscular adipose tissue), -190 to -30 HU: the adipose-tissue range of
  Mitsiopoulos et al., J Appl Physiol 85:115-122 (1998), used inside thigh muscle by
  Goodpaster et al., J Appl Physiol 89:104-110 (2000).
- LAMA (low-attenuation muscle), -29 to +29 HU, and NAMA (normal-attenuation muscle), +30 to
  +150 HU: the split of the skeletal-muscle range (-29 to +150 HU) reviewed by Aubrey et al.,
  Acta Physiol 210:489-497 (2014); "LAMA/NAMA" is the convention of the body-composition
  literature that follows it (Goodpaster 2000 calls 0-30 HU low-density muscle).

Voxels of a muscle outside all three (below -190 HU: air, above +150 HU: bone or contrast)
count in its volume but in none of the three shares, so the three shares may sum below 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HURange:
    key: str  # column prefix, e.g. "imat"
    name: str
    low: float  # HU, inclusive
    high: float  # HU, inclusive
    source: str

    def contains(self, hu):
        """Boolean (array) of ``low <= hu <= high``."""
        return (hu >= self.low) & (hu <= self.high)


IMAT = HURange("imat", "intramuscular adipose tissue", -190, -30,
               "Mitsiopoulos et al. 1998 (J Appl Physiol 85:115); Goodpaster et al. 2000 (J Appl Physiol 89:104)")
LAMA = HURange("lama", "low-attenuation muscle", -29, 29, "Aubrey et al. 2014 (Acta Physiol 210:489), LAMA/NAMA convention")
NAMA = HURange("nama", "normal-attenuation muscle", 30, 150, "Aubrey et al. 2014 (Acta Physiol 210:489), LAMA/NAMA convention")
QUALITY_RANGES: tuple[HURange, ...] = (IMAT, LAMA, NAMA)

# Subcutaneous fat (outside the muscle fascia) uses the same adipose range as IMAT.
ADIPOSE = HURange("adipose", "adipose tissue", -190, -30, IMAT.source)

# Bone of the femur (measure.femur_ends): above cartilage, tendon and muscle (~40-130 HU; the
# VHF knee and pelvis CT and the phantom's calibration: cartilage ~110 HU, cortex ~1280 HU,
# phantom.hounsfield.REFERENCE_MEASURED) and reached by the cortex and the subchondral plate;
# the cancellous (~156 HU) and fatty marrow inside the cortex is filled in, not thresholded.
# framing.locate.BONE_HU (180 HU) finds the femoral shaft on its coarse copy the same way.
FEMUR_BONE = HURange("femur_bone", "femur (cortex and subchondral bone)", 300, 4000,
                     "VHF CT as measured by phantom.hounsfield.measure_real_ct (cartilage ~110 HU, marrow 156 HU, "
                     "cortex 1278 HU)")
