"""A RealMedDial-shaped demo file from the synthetic world: consultations annotated with their
department, disease, symptoms and the doctor the world assigns (with the doctor's profile), in
the layout ``data_recipes/readers/realmeddial.py`` reads.

Written by the corpus generator only when asked (``write_corpus(..., sizes={"realmeddial": N})``,
or the data stage's ``synthetic.sizes``), so the default demo corpus is unchanged. The dialogues
are the MedDialog-format consultations' generator (``consultations.make_consultation``) on their
own random stream.
"""

from __future__ import annotations

import random

from data_recipes.synthetic.consultations import make_consultation
from data_recipes.synthetic.doctors import assigned_doctor, doctor_profile
from data_recipes.synthetic.world import CONDITIONS, DEPARTMENTS, department_of

SPEAKERS = {"zh": {"patient": "患者", "doctor": "医生"}, "en": {"patient": "patient", "doctor": "doctor"}}


def build_realmeddial(n: int, rng: random.Random, lang: str) -> list[dict]:
    """``n`` dialogues in RealMedDial's layout; the doctor is the one the world assigns to the
    case id ``<lang>-<i>`` (``doctors.assigned_doctor``)."""
    records = []
    for i in range(n):
        cond = rng.choice(CONDITIONS)
        consultation = make_consultation(i, cond, lang, rng)
        case = consultation.case
        doctor = assigned_doctor(cond.key, f"{lang}-{i}")
        record = {"dialogue_id": f"rmd-{lang}-{i}", "department": department_of(cond, lang),
                  "disease": cond.name[lang],
                  "symptoms": list(case.shown) + ([] if case.complete else [case.withheld])}
        if doctor is not None:
            record["doctor"] = {"id": doctor.key, "title": doctor.title[lang],
                                "department": DEPARTMENTS[doctor.department].name[lang],
                                "profile": doctor_profile(doctor, lang)}
        record["dialogue"] = [{"speaker": SPEAKERS[lang][who], "text": text}
                              for who, text in consultation.turns + consultation.extra_turns]
        records.append(record)
    return records
