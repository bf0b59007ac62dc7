import numpy as np
import pytest

from ThighMuscleSegLib import classes as C


def test_ten_muscles_in_paper_order_with_model_ids_1_to_10():
    keys = [c.key for c in C.CLASSES]
    assert keys == ["sartorius", "rectus_femoris", "vastus_lateralis", "vastus_intermedius",
                    "vastus_medialis", "gracilis", "adductors", "biceps_femoris",
                    "semitendinosus", "semimembranosus"]
    assert [c.model_id for c in C.CLASSES] == list(range(1, 11))
    assert C.NUM_MODEL_CLASSES == 11


def test_ct_label_values_right_1_10_left_11_20_and_back():
    segs = C.segments()
    assert [s.label_value for s in segs] == list(range(1, 21))
    for s in segs:
        muscle, side = C.split_label_value(s.label_value)
        assert (muscle, side) == (s.muscle, s.side)
    with pytest.raises(ValueError):
        C.split_label_value(21)


def test_grouped_classes_name_their_parts():
    assert C.by_key("adductors").parts == ("AdductorLongus", "AdductorBrevis", "AdductorMagnus")
    assert C.by_key("biceps_femoris").parts == ("BicepsFemorisLong", "BicepsFemorisShort")


def test_every_class_has_a_distinct_colour_and_snomed_code_with_source():
    colours = {s.color for s in C.segments()}
    assert len(colours) == 20
    codes = [c.code for c in C.CLASSES]
    assert len({c.value for c in codes}) == 10
    for c in C.CLASSES:
        if c.code.scheme == "SCT":  # a SNOMED code must name the public source it was checked in
            assert c.code.value.isdigit() and c.code_source != C.SRC_UNCONFIRMED
        else:  # never a guessed SNOMED code: a private one, and it says so
            assert c.code.scheme.startswith("99") and c.code_source == C.SRC_UNCONFIRMED
    assert C.LATERALITY["left"].value == "7771000" and C.LATERALITY["right"].value == "24028007"


def test_slicer_terminology_string_has_seven_components_with_laterality():
    s = C.segments()[12]  # left vastus medialis... index 12 is left, model id 3
    parts = s.slicer_terminology().split("~")
    assert len(parts) == 7
    assert parts[0] == C.TERMINOLOGY_CONTEXT
    assert parts[2] == s.muscle.code.slicer_string()
    assert parts[3] == "SCT^7771000^Left"


def test_label_arrays_convert_between_ct_and_model_ids():
    ct = np.array([0, 1, 10, 11, 20, 5, 15], np.uint8)
    right = C.ct_labels_to_model_ids(ct, "right")
    left = C.ct_labels_to_model_ids(ct, "left")
    assert right.tolist() == [0, 1, 10, 0, 0, 5, 0]
    assert left.tolist() == [0, 0, 0, 1, 10, 0, 5]
    assert C.model_ids_to_ct_labels(left, "left").tolist() == [0, 0, 0, 11, 20, 0, 15]
    assert C.model_ids_to_ct_labels(right, "right").tolist() == right.tolist()
    with pytest.raises(ValueError):
        C.model_ids_to_ct_labels(right, "middle")


def test_vastus_intermedius_has_its_snomed_code_and_the_two_hamstrings_stay_private():
    vi = C.by_key("vastus_intermedius")
    assert (vi.code.scheme, vi.code.value) == ("SCT", "181682001") and "R2BO" in vi.code_source
    for key in ("semitendinosus", "semimembranosus"):  # no public source names them yet (issue #15)
        assert C.by_key(key).code.scheme == C.PRIVATE_SCHEME
