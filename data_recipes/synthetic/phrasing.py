"""Sentence templates of the synthetic corpus, per language and slot.

Several phrasings per slot keep the text varied enough to be worth learning while staying
templated enough for a tiny model. Placeholders: ``{cond}`` condition name, ``{dept}`` department
name, ``{sym}``/``{syms}`` symptom(s), ``{onset}``, ``{advice}``, ``{rf}`` red flag(s),
``{q}`` a follow-up question, ``{list}`` a list of condition names, ``{depts}`` department names.
No template contains a condition or department name (tests check it), so every name in an answer
comes from a placeholder.
"""

from __future__ import annotations

import re

T: dict[str, dict[str, tuple[str, ...]]] = {
    "zh": {
        # ---- patient
        "greet": ("医生您好，", "大夫你好，", "你好医生，", "", "医生，", "您好，"),
        "ask_patient": ("请问这是什么病？", "这是怎么回事？", "需要去医院吗？", "应该挂什么科？",
                        "该怎么办？", "严重吗？", "想问问是什么问题。"),
        "answer_patient": ("{onset}，另外{sym}。", "{onset}。还有就是{sym}。", "嗯，{onset}，{sym}。",
                           "{onset}。对了，{sym}。"),
        "thanks_patient": ("谢谢医生", "好的，谢谢", "明白了，谢谢大夫", "好的，我去医院看看"),
        "ping_patient": ("医生在吗？", "您好，在吗", "麻烦帮我看一下"),
        "followup_patient": ("需要吃药吗？", "平时要注意什么？", "这个要紧吗？", "多久能好？"),
        # ---- real doctor: terse and informal
        "doc_ask_prefix": ("", "先问一下，", "请问", "我问几个问题：", "你好，"),
        "doc_diagnosis": ("考虑{cond}，建议{dept}就诊。", "{cond}可能性大，去{dept}看看。",
                          "像是{cond}，挂{dept}。", "初步考虑{cond}，建议到{dept}进一步检查。",
                          "应该是{cond}，到{dept}看一下。"),
        "doc_advice": ("{advice}。", "先{advice}。", "平时{advice}。"),
        "doc_welcome": ("不客气", "好的，祝早日康复", "不客气，有问题再问", "嗯，去看看吧"),
        # ---- distilled (ChatGPT-like): long, structured, hedging
        "dis_greet": ("您好，感谢您的提问。", "您好！很理解您现在的担心。",
                      "您好，根据您描述的情况，我来为您详细分析一下。"),
        "dis_restate": ("您提到{syms}。", "从您的描述来看，主要表现为{syms}。", "您目前的情况是{syms}。"),
        "dis_hedge_list": ("这些症状可能与多种情况有关，例如{list}等，仅凭文字描述很难确定具体是哪一种。",
                           "引起这种情况的原因有很多，常见的包括{list}，具体需要医生面诊后才能判断。",
                           "从症状来看，{list}都有可能，需要进一步检查才能区分。"),
        "dis_hedge_none": ("引起这些症状的原因很多，在没有面诊和检查的情况下，我无法给出明确的诊断。",
                           "由于无法进行体格检查，目前还不能确定具体原因。",
                           "很抱歉，仅凭线上描述无法判断是哪种疾病，需要到医院检查后才能明确。"),
        "dis_advice_intro": ("在此期间，建议您：", "以下建议供您参考：", "您可以先从以下几个方面做起："),
        "dis_generic_advice": ("保持良好的作息和均衡的饮食", "注意观察症状的变化并做好记录",
                               "保持心情舒畅，避免过度焦虑", "遵从医生的建议，不要自行用药"),
        "dis_visit": ("建议您尽快到正规医院就诊，由医生进行详细检查。", "如果症状持续或加重，请及时到医院就诊。"),
        "dis_visit_depts": ("可以考虑到{depts}就诊，由专业医生进一步评估。", "建议到{depts}做进一步检查。"),
        "dis_red_flag": ("需要特别提醒的是，如果出现{rf}，请立即就医。", "请注意：一旦出现{rf}，应立即前往急诊。"),
        "dis_ask": ("如果方便的话，能否告诉我：{q}", "另外想了解一下：{q}"),
        "dis_close": ("希望以上信息对您有所帮助，祝您早日康复！", "祝您身体健康！如有其他问题，欢迎继续咨询。",
                      "以上内容仅供参考，不能替代医生的诊断，祝您早日康复。"),
        "dis_care_intro": ("关于日常护理，建议您注意以下几点：", "在生活中，您可以这样做："),
        "dis_danger_intro": ("大多数情况下不必过于担心，但以下情况需要警惕：", "一般来说不用太紧张，不过要留意以下危险信号："),
        # ---- hybrid: the doctor's commitment and question plus the distilled structure
        "hyb_diagnosis": ("根据您的描述，考虑{cond}的可能性大，建议到{dept}就诊。",
                          "从症状来看，比较符合{cond}，建议挂{dept}。",
                          "您的情况最像{cond}，可以去{dept}看一下。"),
        "hyb_ask": ("为了进一步确认，想问一下：{q}", "还需要了解一下：{q}"),
        "hyb_advice_intro": ("建议：", "目前可以这样做："),
        "hyb_red_flag": ("如果出现{rf}，请立即就医。", "注意：一旦出现{rf}，要马上去医院。"),
        # ---- weak model: vague or wrong
        "weak_vague": ("多喝热水，注意休息，观察一下。", "这个不好说，可能是上火了，过几天就好。",
                       "建议去医院看看。", "没什么大问题，不用太担心。"),
        "weak_wrong": ("考虑{cond}，建议{dept}就诊。", "应该是{cond}，吃点药就好了，去{dept}开点药。"),
        "weak_ask": ("平时身体怎么样？", "还有别的不舒服吗？"),
    },
    "en": {
        "greet": ("Hi doctor, ", "Hello doctor. ", "", "Doctor, ", "Hello, "),
        "ask_patient": ("What could this be?", "What is going on?", "Do I need to see a doctor?",
                        "Which department should I go to?", "What should I do?", "Is it serious?"),
        "answer_patient": ("{Onset}. I also noticed {sym}.", "{Onset}, and I also noticed {sym}.",
                           "Well, {onset}. Also, {sym}.", "{Onset}. Oh, and {sym}."),
        "thanks_patient": ("Thank you, doctor.", "OK, thanks.", "Got it, thank you.", "OK, I will get it checked."),
        "ping_patient": ("Hello, are you there?", "Doctor, can you help?", "Please have a look at this."),
        "followup_patient": ("Do I need medicine?", "What should I watch out for?", "Is it dangerous?",
                             "How long until it gets better?"),
        "doc_ask_prefix": ("", "A few questions first. ", "Quick question: ", "Hi. "),
        "doc_diagnosis": ("Likely {cond}. See {dept}.", "Sounds like {cond}; visit {dept}.",
                          "Probably {cond}. Go to {dept}.", "This looks like {cond}. Please see {dept}.",
                          "Most likely {cond}. Book an appointment with {dept}."),
        "doc_advice": ("{Advice}.", "Meanwhile, {advice}.", "For now, {advice}."),
        "doc_welcome": ("You're welcome.", "OK, get well soon.", "No problem, ask again if needed.", "Sure, go and get it checked."),
        "dis_greet": ("Hello, and thank you for your question.", "Hello! I understand this must be worrying.",
                      "Hello. Based on what you describe, let me go through this in detail."),
        "dis_restate": ("You mention {syms}.", "From your description, the main problems are {syms}.",
                        "At the moment you have {syms}."),
        "dis_hedge_list": ("These symptoms can have several causes, such as {list}, and it is hard to say which from a written description alone.",
                           "Many things can cause this; common possibilities include {list}, and a doctor needs to examine you to tell them apart.",
                           "Based on the symptoms, {list} are possible, and further tests are needed to distinguish them."),
        "dis_hedge_none": ("Many conditions can cause these symptoms, and without an examination I cannot give you a definite diagnosis.",
                           "Since I cannot examine you, the exact cause cannot be determined yet.",
                           "I'm sorry, but it is not possible to tell which condition this is from an online description; tests at a hospital are needed."),
        "dis_advice_intro": ("In the meantime, you could:", "Here are some suggestions:", "Some things you can do now:"),
        "dis_generic_advice": ("keep a healthy routine and a balanced diet", "watch how the symptoms change and keep notes",
                               "try to stay calm and avoid worrying too much", "follow medical advice and do not self-medicate"),
        "dis_visit": ("I recommend seeing a doctor at a hospital for a proper examination.",
                      "If the symptoms persist or get worse, please see a doctor promptly."),
        "dis_visit_depts": ("You could consider visiting {depts} for a professional assessment.",
                            "I suggest further tests at {depts}."),
        "dis_red_flag": ("Important: if you notice {rf}, seek medical care immediately.",
                         "Please note: if you notice {rf}, go to an emergency department right away."),
        "dis_ask": ("If you don't mind me asking: {q}", "It would also help to know: {q}"),
        "dis_close": ("I hope this helps, and I wish you a quick recovery!",
                      "Take care, and feel free to ask if you have more questions.",
                      "This information is for reference only and does not replace a doctor's diagnosis. Get well soon."),
        "dis_care_intro": ("For day-to-day care, please keep the following in mind:", "In daily life, you can:"),
        "dis_danger_intro": ("In most cases there is no need to worry too much, but watch for these warning signs:",
                             "Usually this is not dangerous, but be alert to the following:"),
        "hyb_diagnosis": ("From your description, this is most likely {cond}; please see {dept}.",
                          "Your symptoms fit {cond} best, so I suggest visiting {dept}.",
                          "This looks most like {cond}. You can go to {dept}."),
        "hyb_ask": ("To confirm, can you tell me: {q}", "One more thing I need to know: {q}"),
        "hyb_advice_intro": ("What to do:", "For now:"),
        "hyb_red_flag": ("If you notice {rf}, seek urgent care.", "Go to a hospital at once if you notice {rf}."),
        "weak_vague": ("Drink some water, rest and see how it goes.", "Hard to say, it will probably pass in a few days.",
                       "Go to a hospital and get checked.", "Nothing serious, don't worry."),
        "weak_wrong": ("Probably {cond}. See {dept}.", "It is {cond}; some medicine from {dept} will fix it."),
        "weak_ask": ("How is your health in general?", "Anything else bothering you?"),
    },
}

# Joining words for lists of phrases.
AND = {"zh": "和", "en": " and "}
OR = {"zh": "，或者", "en": ", or "}
COMMA = {"zh": "，", "en": ", "}
LIST_SEP = {"zh": "、", "en": ", "}


def join_phrases(items: list[str], lang: str, last: dict[str, str] = AND) -> str:
    """"a、b和c" / "a, b and c" (``last`` = AND or OR)."""
    if len(items) <= 1:
        return "".join(items)
    return LIST_SEP[lang].join(items[:-1]) + last[lang] + items[-1]


_SECOND_PERSON = (
    (re.compile(r"\bI am\b"), "you are"), (re.compile(r"\bI'm\b"), "you're"),
    (re.compile(r"\bI\b"), "you"), (re.compile(r"\bmy\b"), "your"), (re.compile(r"\bme\b"), "you"),
)


def second_person(text: str, lang: str) -> str:
    """Turn a patient's English phrase into the answerer's ("pain that wakes me" -> "wakes you")."""
    if lang != "en":
        return text
    for pattern, replacement in _SECOND_PERSON:
        text = pattern.sub(replacement, text)
    return text


def sentence(text: str, lang: str) -> str:
    """Capitalise an English clause; Chinese text is returned unchanged."""
    return text[:1].upper() + text[1:] if lang == "en" else text
