"""The RealMedDial reader (written from the paper's description) on a fixture in that shape."""

from __future__ import annotations


def test_dialogues_with_department_disease_doctor_and_symptoms(reader_fixtures, read_all):
    path = reader_fixtures / "realmeddial.json"
    records, quarantined = read_all(path, "realmeddial")
    assert [r.id for r in records] == ["rmd-0001", "2", "rmd-0003"]
    eczema, hfmd, back = records
    assert [(t.role, t.content[:6]) for t in eczema.turns] == [
        ("user", "医生，我手臂"), ("assistant", "起了多久了？"), ("user", "一个星期了，"), ("assistant", "考虑湿疹，先")]
    assert eczema.meta == {"department": "皮肤科", "disease": "湿疹", "diagnosis": "湿疹",
                           "symptoms": ["皮肤瘙痒", "红疹"], "doctor_id": "d07",
                           "doctor_profile": "皮肤科主任医师，擅长湿疹、荨麻疹的诊治。"}
    assert (eczema.language, eczema.source_line) == ("zh", 1)
    # "id", "utterances", "role", "utterance" are accepted; a profile made of the doctor's fields
    assert hfmd.meta["symptoms"] == ["手脚起疱疹"] and hfmd.meta["doctor_id"] == "儿科王医生"
    assert hfmd.meta["doctor_profile"] == "副主任医师；手足口病、小儿发热"
    # a doctor given as a profile string gets an id from the profile's hash
    assert back.language == "en" and back.meta["doctor_id"].startswith("doctor-")
    assert back.meta["doctor_profile"] == "骨科医生，擅长腰椎间盘突出症。"
    assert [(q.source_line, q.reason) for q in quarantined] == [
        (4, "unknown speaker '护士' in dialogue[0]"),
        (5, "dialogue has no patient/user turn"),
        (6, "empty dialogue"),
        (7, "empty utterance in dialogue[0]"),
    ]
