"""The world's doctors: consistent with the departments and conditions, and a deterministic
assignment of a doctor to every case."""

from __future__ import annotations

from collections import Counter

from data_recipes.synthetic.doctors import DOCTORS, assigned_doctor, doctor_problems, doctor_profile, doctors_for
from data_recipes.synthetic.world import CONDITIONS, CONDITIONS_BY_KEY


def test_a_few_dozen_doctors_consistent_with_the_world():
    assert 24 <= len(DOCTORS) <= 60
    assert doctor_problems() == []
    assert all(doctors_for(c.key) for c in CONDITIONS), "every condition has a doctor who treats it"


def test_assignment_is_a_deterministic_pick_among_the_doctors_of_the_condition():
    picks = Counter(assigned_doctor("migraine", f"zh-{i}").key for i in range(400))
    assert set(picks) == {d.key for d in doctors_for("migraine")} == {"neuro_a", "neuro_b"}
    assert min(picks.values()) > 150                       # a hash, not always the first doctor
    assert assigned_doctor("migraine", "zh-7") == assigned_doctor("migraine", "zh-7")
    assert assigned_doctor("hypertension", "en-3").key == "cardio_b"    # its only doctor
    assert assigned_doctor("no_such_condition", "zh-1") is None


def test_profiles_name_department_title_specialties_and_their_symptoms():
    doctor = next(d for d in DOCTORS if d.key == "neuro_b")
    zh, en = doctor_profile(doctor, "zh"), doctor_profile(doctor, "en")
    assert zh.startswith("神经内科副主任医师，从医15年。擅长：偏头痛、紧张型头痛的诊治。")
    assert CONDITIONS_BY_KEY["migraine"].symptoms["zh"][0] in zh
    assert en.startswith("Associate chief physician in neurology, 15 years in practice. "
                         "Specialises in migraine, tension-type headache.")
