"""RealMedDial (Xu et al., 2022) -> dialogue records with department, disease, doctor and symptoms.

RealMedDial transcribes short videos of real consultations (2,637 dialogues, 17 departments, 55
diseases) and annotates each dialogue with its department, disease, the doctor's profile and the
patient's symptoms; its tasks are response generation, department routing and doctor
recommendation. THIS READER IS WRITTEN FROM THAT PUBLISHED DESCRIPTION, not from the released
files (they cannot be downloaded here): the field names below are our reading of it, and the
test fixture (``tests/data_recipes/fixtures/readers/realmeddial.json``) is written by us in that
shape. Check them against the files you hold; a key that differs is one line to change in
``_KEYS``.

One JSON list (or JSONL, one dialogue a line) of objects::

    {"dialogue_id": "rmd-0001",                  # or "id"
     "department": "皮肤科",
     "disease": "湿疹",
     "symptoms": ["皮肤瘙痒", "红疹"],            # a list or one string
     "doctor": {"id": "d07", "title": "主任医师", "hospital": "...", "department": "皮肤科",
                "profile": "擅长湿疹、荨麻疹的诊治……"},   # or the profile as one string
     "dialogue": [{"speaker": "患者", "text": "..."}, {"speaker": "医生", "text": "..."}]}

``dialogue`` may be called ``utterances``; an utterance's speaker ``speaker`` or ``role``
(患者 / 病人 / 医生 / 大夫 / patient / doctor), its text ``text`` or ``utterance``.

Record: ``kind`` "dialogue", ``meta``: ``department``, ``diagnosis`` and ``disease`` (the
disease), ``symptoms`` (list), ``doctor_id`` (the doctor's ``id``, else ``name``, else a hash of
the profile), ``doctor_profile`` (the profile text, or the doctor's fields joined when there is
no ``profile``). Quarantined: no dialogue, an unknown speaker, an empty utterance, no doctor or
no patient turn (a video clip without the patient's words has nothing to answer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from data_recipes.readers.fields import RecordError, Where, as_object, get_str, json_type, own_id, parsed_records
from data_recipes.readers.speakers import MEDDIALOG_ROLES, require_dialogue_roles
from data_recipes.readers.streams import first_significant_char, iter_json_array, iter_jsonl
from data_recipes.records import Quarantined, Record, Turn

_KEYS = {"id": ("dialogue_id", "id"), "dialogue": ("dialogue", "utterances"),
         "speaker": ("speaker", "role"), "text": ("text", "utterance")}
_PROFILE_FIELDS = ("title", "hospital", "department", "specialties", "introduction")


def read_realmeddial(path: str | Path, *, language: str | None = None) -> Iterator[Record | Quarantined]:
    """Stream the dialogues of a RealMedDial JSON list or JSONL file."""
    items = iter_json_array(path) if first_significant_char(path) == "[" else iter_jsonl(path)
    return parsed_records(items, path, _parse, language)


def _first(obj: dict, names: tuple[str, ...], what: str) -> Any:
    for name in names:
        if obj.get(name) is not None:
            return obj[name]
    raise RecordError(f"missing field {' or '.join(repr(n) for n in names)}{what}")


def _parse(value: Any, where: Where) -> Record:
    obj = as_object(value)
    record_id = str(obj["dialogue_id"]) if obj.get("dialogue_id") is not None else own_id(obj, where)
    utterances = _first(obj, _KEYS["dialogue"], "")
    if not isinstance(utterances, list):
        raise RecordError(f"field 'dialogue' must be a list of utterances, got {json_type(utterances)}")
    if not utterances:
        raise RecordError("empty dialogue")
    turns = [_turn(u, i) for i, u in enumerate(utterances)]
    require_dialogue_roles(turns)
    meta: dict = {}
    for key in ("department", "disease"):
        text = get_str(obj, key, required=False)
        if text:
            meta[key] = text.strip()
    if "disease" in meta:
        meta["diagnosis"] = meta["disease"]
    symptoms = obj.get("symptoms")
    if symptoms is not None:
        meta["symptoms"] = [symptoms] if isinstance(symptoms, str) else [str(s) for s in symptoms]
    meta.update(_doctor(obj.get("doctor")))
    return Record(id=record_id, kind="dialogue", turns=turns, meta=meta)


def _turn(utterance: Any, i: int) -> Turn:
    obj = as_object(utterance, f"dialogue[{i}]")
    speaker = str(_first(obj, _KEYS["speaker"], f" in dialogue[{i}]")).strip()
    role = MEDDIALOG_ROLES.get(speaker.lower())
    if role is None:
        raise RecordError(f"unknown speaker {speaker!r} in dialogue[{i}]")
    text = _first(obj, _KEYS["text"], f" in dialogue[{i}]")
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"empty utterance in dialogue[{i}]")
    return Turn(role, text.strip())


def _doctor(doctor: Any) -> dict:
    """``doctor_id`` and ``doctor_profile`` of the doctor field (an object or a profile string)."""
    if doctor is None:
        return {}
    if isinstance(doctor, str):
        profile = doctor.strip()
        return {"doctor_id": _hash_id(profile), "doctor_profile": profile} if profile else {}
    doctor = as_object(doctor, "field 'doctor'")
    profile = doctor.get("profile")
    if not isinstance(profile, str) or not profile.strip():
        parts = [doctor.get(k) for k in _PROFILE_FIELDS]
        profile = "；".join("、".join(map(str, p)) if isinstance(p, list) else str(p) for p in parts if p)
    profile = profile.strip()
    key = doctor.get("id", doctor.get("name"))
    out = {"doctor_profile": profile} if profile else {}
    if key is not None and str(key).strip():
        out["doctor_id"] = str(key).strip()
    elif profile:
        out["doctor_id"] = _hash_id(profile)
    return out


def _hash_id(text: str) -> str:
    return "doctor-" + hashlib.blake2b(text.encode("utf-8"), digest_size=6).hexdigest()
