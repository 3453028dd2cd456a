"""The synthetic world's doctors (RealMedDial's doctor recommendation task).

``data/doctors.yaml`` lists a few dozen doctors, each in one department with a title, years in
practice and specialties (condition keys of that department); profiles are composed from its
``profile_templates``. The world assigns every case a doctor: one of those whose specialties
include the case's condition, picked by a hash of the case id (so where two doctors share a
condition, the case text alone cannot say which one saw it, as in real referrals)::

    from data_recipes.synthetic.doctors import DOCTORS, assigned_doctor, doctor_profile
    doctor = assigned_doctor("migraine", "zh-17")
    doctor_profile(doctor, "zh")   # "神经内科副主任医师，从医15年。擅长：偏头痛、紧张型头痛的诊治。..."
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from pydantic import Field

from data_recipes.synthetic.tables import DATA_DIR, KEY_PATTERN, Names, load_table
from medalign.config import ConfigError, StrictModel

DOCTORS_FILE = "doctors.yaml"
SYMPTOMS_PER_SPECIALTY = 2          # symptoms of each specialty named in a profile


class DoctorEntry(StrictModel):
    """A doctor of the world."""

    key: str = Field(pattern=KEY_PATTERN, description="stable id, e.g. neuro_a")
    department: str = Field(description="key of the department the doctor works in")
    title: str = Field(description="a key of `titles`")
    years: int = Field(ge=0, le=60, description="years in practice")
    specialties: list[str] = Field(min_length=1, description="condition keys of the doctor's department")


class ProfileTemplates(StrictModel):
    """How a profile reads; placeholders {department} {title} {years} {specialties} {symptoms}."""

    zh: str = Field(min_length=1, description="Chinese profile template")
    en: str = Field(min_length=1, description="English profile template")


class DoctorsFile(StrictModel):
    profile_templates: ProfileTemplates = Field(description="profile text per language")
    titles: dict[str, Names] = Field(min_length=1, description="title key -> its name per language")
    doctors: list[DoctorEntry] = Field(min_length=1, description="the world's doctors, in order")


@dataclass(frozen=True)
class Doctor:
    key: str
    department: str                       # a Department.key
    title: dict[str, str]                 # {"zh": "主任医师", "en": "Chief physician"}
    years: int
    specialties: tuple[str, ...]          # Condition.keys


@lru_cache(maxsize=1)
def _table() -> DoctorsFile:
    return load_table(DATA_DIR / DOCTORS_FILE, DoctorsFile)


def load_doctors() -> tuple[Doctor, ...]:
    """The doctors of ``data/doctors.yaml`` (validated against the schema above; a title that
    ``titles`` does not list is a ConfigError)."""
    table = _table()
    unknown = [f"{DATA_DIR / DOCTORS_FILE}: doctor {d.key!r}: unknown title {d.title!r}; known: {sorted(table.titles)}"
               for d in table.doctors if d.title not in table.titles]
    if unknown:
        raise ConfigError(unknown)
    return tuple(Doctor(key=d.key, department=d.department, years=d.years, specialties=tuple(d.specialties),
                        title={"zh": table.titles[d.title].zh, "en": table.titles[d.title].en})
                 for d in table.doctors)


DOCTORS: tuple[Doctor, ...] = load_doctors()
DOCTORS_BY_KEY: dict[str, Doctor] = {d.key: d for d in DOCTORS}


def doctor_profile(doctor: Doctor, lang: str) -> str:
    """The doctor's profile text in ``lang`` (department, title, years, specialties, the
    first symptoms of each specialty)."""
    from data_recipes.synthetic.world import CONDITIONS_BY_KEY, DEPARTMENTS

    conditions = [CONDITIONS_BY_KEY[k] for k in doctor.specialties]
    sep = "、" if lang == "zh" else ", "
    symptoms = [s for c in conditions for s in c.symptoms[lang][:SYMPTOMS_PER_SPECIALTY]]
    return getattr(_table().profile_templates, lang).format(
        department=DEPARTMENTS[doctor.department].name[lang], title=doctor.title[lang], years=doctor.years,
        specialties=sep.join(c.name[lang] for c in conditions), symptoms=sep.join(symptoms))


def doctors_for(condition_key: str) -> list[Doctor]:
    """The doctors whose specialties include the condition, in file order."""
    return [d for d in DOCTORS if condition_key in d.specialties]


def assigned_doctor(condition_key: str, case_id: str) -> Doctor | None:
    """The doctor the world assigns to a case: one of :func:`doctors_for` picked by a hash of
    the case id (None when no doctor lists the condition)."""
    candidates = doctors_for(condition_key)
    if not candidates:
        return None
    pick = int.from_bytes(hashlib.blake2b(case_id.encode("utf-8"), digest_size=4).digest(), "little")
    return candidates[pick % len(candidates)]


def doctor_problems() -> list[str]:
    """Inconsistencies between the doctors and the world (empty when there are none)."""
    from data_recipes.synthetic.world import CONDITIONS_BY_KEY, DEPARTMENTS

    problems, table = [], _table()
    if len(DOCTORS_BY_KEY) != len(DOCTORS):
        problems.append(f"{DOCTORS_FILE}: doctor keys are not unique")
    for d in table.doctors:
        where = f"{DOCTORS_FILE}: doctor {d.key!r}"
        if d.department not in DEPARTMENTS:
            problems.append(f"{where}: unknown department {d.department!r}")
        for key in d.specialties:
            cond = CONDITIONS_BY_KEY.get(key)
            if cond is None:
                problems.append(f"{where}: unknown condition {key!r} in specialties")
            elif cond.department != d.department:
                problems.append(f"{where}: specialty {key!r} belongs to {cond.department}, not {d.department}")
    return problems
