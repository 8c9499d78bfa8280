"""Write the built-in training sets: synthetic, deterministic, stdlib only.

    python -m training.data.datasets.generate            # rewrites training/data/datasets/<set>/*.jsonl
    python -m training.data.datasets.generate OUT_DIR    # writes somewhere else (the tests compare bytes)

Every example is composed from the templates and vocabularies below with one
fixed seed, so the committed files are reproducible byte for byte. No real
patient data: names, ages, dates and findings are drawn at random.

Targets are strict JSON (double quotes, fixed key order, compact
``json.dumps(..., ensure_ascii=False)``), because a model trained on
pseudo-JSON learns to emit pseudo-JSON. Dates in targets are ISO 8601
(YYYY-MM-DD) whatever spelling the note used.
"""
from __future__ import annotations

import datetime as dt
import json
import random
import re
import sys
from pathlib import Path

SEED = 20_250_314
HERE = Path(__file__).resolve().parent

SOAP_SYSTEM = "Convert the clinical note to SOAP JSON. Use null for anything not stated. JSON only."
MEDS_SYSTEM = ("Extract the medications ordered in the pharmacy note as JSON {\"medications\": [...]} with name, "
               "dose, unit, route, frequency, duration_days, as_needed ([] if none). JSON only.")

# A note's near-duplicate is any earlier note sharing this much of its word
# trigrams; such candidates are redrawn so the sets stay varied.
NEAR_DUP_JACCARD = 0.5

NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
             "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
             "nineteen", "twenty", "twenty-one"]

FIRST_F = ["Maria", "Aisha", "Emily", "Priya", "Chen", "Fatima", "Sofia", "Grace", "Olga", "Keisha", "Hannah",
           "Lucia", "Mei", "Amara", "Ingrid", "Rosa", "Yuki", "Nadia", "Claire", "Zainab"]
FIRST_M = ["James", "Omar", "Luis", "Wei", "David", "Kwame", "Arjun", "Tomas", "Ahmed", "Samuel", "Dmitri",
           "Hiro", "Carlos", "Ethan", "Malik", "Jonas", "Rafael", "Peter", "Tariq", "Ivan"]
LAST = ["Garcia", "Okafor", "Nguyen", "Kowalski", "Haddad", "Smith", "Patel", "Rossi", "Johansson", "Mendes",
        "Kim", "Osei", "Novak", "Fischer", "Alvarez", "Ibrahim", "Tanaka", "Murphy", "Silva", "Cohen",
        "Mensah", "Schmidt", "Lopez", "Dubois", "Yilmaz", "Brown", "Singh", "Larsen", "Costa", "Adeyemi"]
DOCTORS = ["Dr. Reyes", "Dr. Lindqvist", "Dr. Obi", "Dr. Harper", "Dr. Sato", "Dr. Mahmoud", "Dr. Walsh",
           "Dr. Ferreira", "Dr. Bauer", "Dr. Chowdhury"]

# ----------------------------------------------------------------------------- medications

# canonical frequency -> spellings seen in notes (terse first, then plain words)
FREQ = {
    "once daily": (["daily", "QD", "qday", "1x/day", "qAM"], ["once a day", "every morning", "once daily"]),
    "twice daily": (["BID", "b.i.d.", "2x/day"], ["twice a day", "twice daily", "morning and evening"]),
    "three times daily": (["TID", "t.i.d."], ["three times a day", "three times daily"]),
    "four times daily": (["QID", "q.i.d."], ["four times a day", "four times daily"]),
    "every 4 hours": (["q4h", "q4hr"], ["every four hours", "every 4 hours"]),
    "every 6 hours": (["q6h", "q6hr"], ["every six hours", "every 6 hours"]),
    "every 8 hours": (["q8h", "q8hr"], ["every eight hours", "every 8 hours"]),
    "every 12 hours": (["q12h"], ["every twelve hours", "every 12 hours"]),
    "at bedtime": (["QHS", "qhs", "HS"], ["at bedtime", "nightly at bedtime", "each night"]),
    "once weekly": (["qweek", "1x/wk"], ["once a week", "weekly", "once weekly"]),
    "once monthly": (["qmonth", "q4wk"], ["once a month", "monthly"]),
    "every 5 minutes": (["q5min"], ["every five minutes", "every 5 minutes"]),
    "once": (["x1", "STAT x1"], ["as a single dose", "once", "one time only"]),
}
ROUTE = {
    "oral": (["PO", "po", "p.o."], ["by mouth", "orally"]),
    "subcutaneous": (["SC", "SQ", "subcut"], ["subcutaneously", "under the skin"]),
    "intravenous": (["IV", "IVPB"], ["intravenously", "by IV"]),
    "intramuscular": (["IM"], ["intramuscularly", "into the muscle"]),
    "inhaled": (["inh", "via MDI"], ["inhaled", "by inhaler"]),
    "intranasal": (["IN", "nasal"], ["in each nostril", "intranasally"]),
    "topical": (["top", "topically"], ["to the affected area", "topically"]),
    "sublingual": (["SL"], ["under the tongue", "sublingually"]),
    "ophthalmic": (["OU", "ophth"], ["in both eyes", "into each eye"]),
}
ROUTE_PLAN = {"oral": "by mouth", "subcutaneous": "subcutaneous", "intravenous": "IV", "intramuscular": "IM",
              "inhaled": "inhaled", "intranasal": "intranasal", "topical": "topical", "sublingual": "sublingual",
              "ophthalmic": "in both eyes"}
UNIT_TEXT = {"mg": ["mg", "mg", "milligrams"], "mcg": ["mcg", "mcg", "micrograms"], "g": ["g", "gram", "grams"],
             "units": ["units", "units", "U"], "puffs": ["puffs"], "sprays": ["sprays"], "spray": ["spray"],
             "drop": ["drop", "gtt"], "mL": ["mL", "ml"]}


class Drug:
    def __init__(self, name, route, regimens, durations=(None,), prn=0.0, forms=("tab",), brand=None):
        self.name, self.route, self.regimens = name, route, regimens  # regimens: (dose, unit, frequency)
        self.durations, self.prn, self.forms, self.brand = list(durations), prn, forms, brand


DRUGS = {d.name: d for d in [
    Drug("amoxicillin", "oral", [(500, "mg", "three times daily"), (875, "mg", "twice daily"), (500, "mg", "twice daily")], [7, 10], forms=("cap", "tab")),
    Drug("azithromycin", "oral", [(250, "mg", "once daily"), (500, "mg", "once daily")], [3, 5], brand="Zithromax"),
    Drug("cephalexin", "oral", [(500, "mg", "four times daily"), (500, "mg", "twice daily")], [7, 10], forms=("cap",)),
    Drug("doxycycline", "oral", [(100, "mg", "twice daily")], [7, 10, 14], forms=("cap", "tab")),
    Drug("nitrofurantoin", "oral", [(100, "mg", "twice daily")], [5, 7], forms=("cap",)),
    Drug("ciprofloxacin", "oral", [(250, "mg", "twice daily"), (500, "mg", "twice daily")], [3, 7]),
    Drug("oseltamivir", "oral", [(75, "mg", "twice daily")], [5], forms=("cap",), brand="Tamiflu"),
    Drug("valacyclovir", "oral", [(1, "g", "three times daily"), (1, "g", "twice daily")], [7, 10]),
    Drug("fluconazole", "oral", [(150, "mg", "once")], [None]),
    Drug("prednisone", "oral", [(40, "mg", "once daily"), (20, "mg", "once daily")], [5, 7]),
    Drug("metformin", "oral", [(500, "mg", "twice daily"), (1000, "mg", "twice daily"), (500, "mg", "once daily")], brand="Glucophage"),
    Drug("lisinopril", "oral", [(10, "mg", "once daily"), (20, "mg", "once daily"), (5, "mg", "once daily")]),
    Drug("amlodipine", "oral", [(5, "mg", "once daily"), (10, "mg", "once daily")], brand="Norvasc"),
    Drug("losartan", "oral", [(50, "mg", "once daily"), (100, "mg", "once daily"), (25, "mg", "once daily")]),
    Drug("hydrochlorothiazide", "oral", [(25, "mg", "once daily"), (12.5, "mg", "once daily")]),
    Drug("metoprolol succinate", "oral", [(25, "mg", "once daily"), (50, "mg", "once daily")]),
    Drug("atorvastatin", "oral", [(20, "mg", "at bedtime"), (40, "mg", "at bedtime"), (10, "mg", "once daily")], brand="Lipitor"),
    Drug("levothyroxine", "oral", [(50, "mcg", "once daily"), (75, "mcg", "once daily"), (100, "mcg", "once daily"), (88, "mcg", "once daily")], brand="Synthroid"),
    Drug("sertraline", "oral", [(50, "mg", "once daily"), (25, "mg", "once daily"), (100, "mg", "once daily")], brand="Zoloft"),
    Drug("escitalopram", "oral", [(10, "mg", "once daily"), (5, "mg", "once daily")]),
    Drug("gabapentin", "oral", [(300, "mg", "three times daily"), (100, "mg", "at bedtime"), (300, "mg", "at bedtime")], forms=("cap",)),
    Drug("omeprazole", "oral", [(20, "mg", "once daily"), (40, "mg", "once daily")], [14, 28, 56, None], forms=("cap",)),
    Drug("famotidine", "oral", [(20, "mg", "twice daily"), (40, "mg", "at bedtime")], [14, 30, None]),
    Drug("furosemide", "oral", [(20, "mg", "once daily"), (40, "mg", "once daily"), (40, "mg", "twice daily")], brand="Lasix"),
    Drug("apixaban", "oral", [(5, "mg", "twice daily"), (2.5, "mg", "twice daily")], brand="Eliquis"),
    Drug("warfarin", "oral", [(5, "mg", "once daily"), (2.5, "mg", "once daily"), (7.5, "mg", "once daily")]),
    Drug("clopidogrel", "oral", [(75, "mg", "once daily")]),
    Drug("montelukast", "oral", [(10, "mg", "at bedtime")]),
    Drug("cetirizine", "oral", [(10, "mg", "once daily"), (5, "mg", "once daily")], [14, 30, None], prn=0.3),
    Drug("tamsulosin", "oral", [(0.4, "mg", "at bedtime"), (0.4, "mg", "once daily")], forms=("cap",)),
    Drug("albuterol", "inhaled", [(2, "puffs", "every 4 hours"), (2, "puffs", "every 6 hours")], [None, 30], prn=1.0, forms=("inhaler",)),
    Drug("fluticasone", "intranasal", [(2, "sprays", "once daily"), (1, "spray", "twice daily")], [14, 30, None], forms=("nasal spray",)),
    Drug("insulin glargine", "subcutaneous", [(10, "units", "at bedtime"), (14, "units", "at bedtime"), (20, "units", "once daily")], forms=("pen",)),
    Drug("enoxaparin", "subcutaneous", [(40, "mg", "once daily")], [10, 14], forms=("syringe",)),
    Drug("heparin", "subcutaneous", [(5000, "units", "every 8 hours"), (5000, "units", "every 12 hours")], forms=("vial",)),
    Drug("ceftriaxone", "intravenous", [(1, "g", "once daily"), (2, "g", "once daily")], [5, 7], forms=("vial",)),
    Drug("ondansetron", "oral", [(4, "mg", "every 8 hours"), (8, "mg", "every 8 hours")], [3, 5], prn=1.0, forms=("ODT", "tab")),
    Drug("ibuprofen", "oral", [(400, "mg", "every 6 hours"), (600, "mg", "every 8 hours"), (800, "mg", "three times daily")], [5, 7, 10], prn=0.7),
    Drug("acetaminophen", "oral", [(500, "mg", "every 6 hours"), (650, "mg", "every 6 hours"), (1000, "mg", "every 8 hours")], [3, 5, None], prn=0.9),
    Drug("naproxen", "oral", [(500, "mg", "twice daily"), (250, "mg", "twice daily")], [7, 10, 14], prn=0.5),
    Drug("benzonatate", "oral", [(100, "mg", "three times daily"), (200, "mg", "three times daily")], [7, 10], prn=0.8, forms=("cap",)),
    Drug("cyclobenzaprine", "oral", [(5, "mg", "at bedtime"), (10, "mg", "three times daily")], [5, 7, 10], prn=0.5),
    Drug("nitroglycerin", "sublingual", [(0.4, "mg", "every 5 minutes")], prn=1.0),
    Drug("cyanocobalamin", "intramuscular", [(1000, "mcg", "once monthly")], forms=("injection",)),
    Drug("methotrexate", "oral", [(15, "mg", "once weekly"), (10, "mg", "once weekly")]),
    Drug("hydrocortisone 1% cream", "topical", [(None, None, "twice daily"), (None, None, "three times daily")], [7, 14], forms=("tube",)),
    Drug("mupirocin 2% ointment", "topical", [(None, None, "three times daily")], [5, 10], forms=("tube",)),
    Drug("timolol 0.5% eye drops", "ophthalmic", [(1, "drop", "twice daily")], forms=("bottle",)),
    Drug("latanoprost 0.005% eye drops", "ophthalmic", [(1, "drop", "at bedtime")], forms=("bottle",)),
    Drug("polyethylene glycol", "oral", [(17, "g", "once daily")], [7, 14, None], prn=0.4, forms=("powder",)),
    Drug("docusate", "oral", [(100, "mg", "twice daily")], [None, 14], prn=0.5, forms=("cap",)),
    Drug("melatonin", "oral", [(3, "mg", "at bedtime"), (5, "mg", "at bedtime")], [None, 30], prn=0.5),
    Drug("amoxicillin-clavulanate", "oral", [(875, "mg", "twice daily")], [7, 10], brand="Augmentin"),
]}


def num_text(rng, x) -> str:
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    if isinstance(x, int) and x >= 1000 and x % 1000 == 0:
        return f"{x:,}" if rng.random() < 0.3 else str(x)
    return str(x)


def dur_text(rng, days, terse):
    if days is None:
        return ""
    if terse:
        opts = [f"x{days}d", f"x {days} days", f"x{days} days", f"for {days}d"]
        if days % 7 == 0:
            opts += [f"x{days // 7}wk", f"x {days // 7} wks"]
    else:
        w = NUM_WORDS[days] if days < len(NUM_WORDS) else str(days)
        opts = [f"for {days} days", f"for {w} days"]
        if days % 7 == 0:
            weeks = days // 7
            opts += ["for one week" if weeks == 1 else f"for {NUM_WORDS[weeks]} weeks"]
    return rng.choice(opts)


def med_order(rng, drug: Drug, regimen=None, duration="pick"):
    dose, unit, freq = regimen or rng.choice(drug.regimens)
    days = rng.choice(drug.durations) if duration == "pick" else duration
    if freq == "once":
        days = None  # a single dose has no course length to extract
    prn = rng.random() < drug.prn
    return {"name": drug.name, "dose": dose, "unit": unit, "route": drug.route, "frequency": freq,
            "duration_days": days, "as_needed": prn}


PRN_TERSE = ["PRN", "prn", "as needed"]
PRN_WORDS = {"albuterol": ["as needed for wheezing", "when short of breath"],
             "ondansetron": ["as needed for nausea"], "nitroglycerin": ["as needed for chest pain"],
             "ibuprofen": ["as needed for pain"], "acetaminophen": ["as needed for pain or fever"],
             "naproxen": ["as needed for pain"], "benzonatate": ["as needed for cough"],
             "cyclobenzaprine": ["as needed for spasm"], "cetirizine": ["as needed for itching"],
             "melatonin": ["as needed for sleep"], "polyethylene glycol": ["as needed for constipation"],
             "docusate": ["as needed for constipation"]}


def med_text(rng, m: dict, terse: bool) -> str:
    """How one order is written in a note; every field of `m` is recoverable from it."""
    drug = DRUGS[m["name"]]
    name = m["name"]
    if drug.brand and rng.random() < 0.2:
        name = f"{name} ({drug.brand})"
    if terse and rng.random() < 0.15:
        name = name.capitalize()
    freq = rng.choice(FREQ[m["frequency"]][0 if terse else 1])
    route = rng.choice(ROUTE[m["route"]][0 if terse else 1])
    prn = ""
    if m["as_needed"]:
        prn = rng.choice(PRN_TERSE) if terse else rng.choice(PRN_WORDS.get(m["name"], ["as needed"]) + ["as needed"])
    dur = dur_text(rng, m["duration_days"], terse)
    if m["dose"] is None:
        apply = rng.choice(["apply thin layer", "apply", "thin film"] if terse else ["apply a thin layer", "apply"])
        parts = [name, apply, route, freq, prn, dur]
    else:
        unit = rng.choice(UNIT_TEXT[m["unit"]])
        dose = num_text(rng, m["dose"])
        glue = "" if terse and unit in ("mg", "mcg", "g") and rng.random() < 0.5 else " "
        if terse:
            parts = [name, f"{dose}{glue}{unit}", route, freq, prn, dur]
        else:
            verb = rng.choice(["take", "use", "give"]) if m["route"] != "oral" else "take"
            form = rng.choice(drug.forms)
            if m["route"] == "oral" and rng.random() < 0.5 and m["unit"] in ("mg", "mcg"):
                parts = [f"{name} {dose} {unit} {form},", verb, "one", route, freq, prn, dur]
            else:
                parts = [name, f"{dose} {unit}", route, freq, prn, dur]
    return re.sub(r"\s+", " ", " ".join(p for p in parts if p)).strip().replace(" ,", ",")


def plan_med(m: dict) -> str:
    dose = "" if m["dose"] is None else f" {num_text_plain(m['dose'])} {m['unit']}"
    text = f"{m['name']}{dose} {ROUTE_PLAN[m['route']]} {m['frequency']}"
    if m["as_needed"]:
        text += " as needed"
    if m["duration_days"]:
        text += f" for {m['duration_days']} days"
    return text


def num_text_plain(x) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


# ----------------------------------------------------------------------------- dates

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]


def date_text(rng, d: dt.date) -> str:
    """One of the spellings clinicians use; the target always gets d.isoformat()."""
    mon = MONTHS[d.month - 1]
    return rng.choice([
        f"{d.month}/{d.day}/{d.year}", f"{d.month:02d}/{d.day:02d}/{d.year}", f"{d.month}/{d.day}/{d.year % 100:02d}",
        f"{mon} {d.day}, {d.year}", f"{mon[:3]} {d.day}, {d.year}", f"{d.day} {mon[:3]} {d.year}",
        f"{d.day} {mon} {d.year}", d.isoformat(),
    ])


def rand_date(rng) -> dt.date:
    return dt.date(2024, 1, 8) + dt.timedelta(days=rng.randrange(0, 700))


# ----------------------------------------------------------------------------- patients

def patient(rng, sex=None):
    sex = sex or rng.choice("MF")
    first = rng.choice(FIRST_M if sex == "M" else FIRST_F)
    return {"sex": sex, "age": rng.randint(19, 88), "first": first, "last": rng.choice(LAST)}


def pt_terse(rng, p):
    a, s = p["age"], p["sex"]
    return rng.choice([f"{a}{s}", f"{a} yo {s}", f"{a}y {s}", f"{a}-year-old {'M' if s == 'M' else 'F'}",
                       f"{p['first'][0]}. {p['last']}, {a}{s}"])


def pt_words(rng, p):
    title = "Mr." if p["sex"] == "M" else "Ms."
    who = rng.choice(["man", "male"] if p["sex"] == "M" else ["woman", "female"])
    name = rng.choice([f"{title} {p['last']}", f"{p['first']} {p['last']}"])
    return name, f"{p['age']}-year-old {who}"


def pronoun(p):
    return ("He", "his") if p["sex"] == "M" else ("She", "her")


# ----------------------------------------------------------------------------- clinical SOAP

TERSE_WORDS = [("shortness of breath", "SOB"), ("right ", "R "), ("left ", "L "), ("bilateral ", "b/l "),
               ("abdominal", "abd"), ("headache", "HA"), ("nausea and vomiting", "N/V"), ("history of", "hx"),
               ("tenderness", "TTP"), ("with ", "w/ "), ("without ", "w/o "), ("lower extremity", "LE"),
               ("chest X-ray", "CXR"), ("urinalysis", "UA"), ("follow-up", "f/u"), ("physical therapy", "PT")]

HISTORY = {"hypertension": "HTN", "type 2 diabetes": "T2DM", "hyperlipidemia": "HLD", "asthma": "asthma",
           "GERD": "GERD", "COPD": "COPD", "hypothyroidism": "hypothyroid", "depression": "MDD",
           "obesity": "obesity", "osteoarthritis": "OA", "atrial fibrillation": "AFib", "migraine": "migraines",
           "chronic kidney disease": "CKD", "anxiety": "anxiety", "gout": "gout", "prior smoker": "ex-smoker"}


def terse(text: str) -> str:
    for long, short in TERSE_WORDS:
        text = text.replace(long, short)
    return text


class Condition:
    def __init__(self, assessment, abbr, cc, symptoms, findings, meds, tests=(), advice=(), referral=(),
                 temp=(36.5, 37.4), hr=(64, 92), bp=((112, 138), (68, 86)), rr=(12, 18), spo2=(96, 100),
                 duration=(1, 10), history=(), sex=None, chronic=False, follow=(7, 14, 28)):
        self.assessment, self.abbr, self.cc = assessment, abbr, cc
        self.symptoms, self.findings, self.meds = symptoms, findings, meds  # meds: [(drug name, regimen index | None)]
        self.tests, self.advice, self.referral = tests, advice, referral
        self.temp, self.hr, self.bp, self.rr, self.spo2 = temp, hr, bp, rr, spo2
        self.duration, self.history, self.sex, self.chronic, self.follow = duration, history, sex, chronic, follow


ADVICE = {
    "rest and fluids": ["rest and fluids", "rest, push fluids", "encouraged rest and plenty of fluids"],
    "oral rehydration": ["oral rehydration", "small frequent sips of oral rehydration solution"],
    "salt restriction": ["low-salt diet", "cut back on salt"],
    "daily weights": ["daily weights", "weigh every morning"],
    "diet and exercise counseling": ["diet and exercise counseling", "discussed diet and regular exercise"],
    "avoid late meals": ["avoid late meals", "no eating within 3 hours of bed"],
    "headache diary": ["headache diary", "keep a headache diary"],
    "heat and gentle stretching": ["heat and gentle stretching", "heat packs and gentle stretches"],
    "ice, compression and elevation": ["RICE", "ice, compression and elevation"],
    "saline nasal rinses": ["saline rinses", "saline nasal rinses twice a day"],
    "avoid the trigger": ["avoid the trigger", "avoid the new soap that started it"],
    "mark the redness border": ["mark borders", "marked the edge of the redness to watch for spread"],
    "sleep hygiene": ["sleep hygiene", "reviewed sleep hygiene"],
    "increase fiber and water": ["fiber + water", "more fiber and water"],
    "home blood pressure log": ["home BP log", "check blood pressure at home and bring a log"],
    "foot care": ["daily foot checks", "inspect feet daily"],
}

CONDITIONS = [
    Condition("acute bronchitis", "acute bronchitis", "cough",
              ["productive cough", "low-grade fever", "chest tightness", "fatigue", "sore throat"],
              ["scattered rhonchi", "mild expiratory wheeze", "no crackles"],
              [("benzonatate", None), ("albuterol", None)], ["chest X-ray"], ["rest and fluids"],
              temp=(37.0, 38.0), duration=(3, 12)),
    Condition("community-acquired pneumonia", "CAP", "cough and fever",
              ["productive cough", "fever", "chills", "shortness of breath", "pleuritic chest pain"],
              ["crackles right lower lobe", "decreased breath sounds right base", "dullness to percussion right base",
               "crackles left lower lobe"],
              [("amoxicillin", 1), ("doxycycline", None), ("azithromycin", None)], ["chest X-ray", "CBC"],
              ["rest and fluids"], temp=(38.1, 39.4), hr=(92, 118), rr=(18, 26), spo2=(91, 96), duration=(2, 7)),
    Condition("streptococcal pharyngitis", "strep pharyngitis", "sore throat",
              ["fever", "painful swallowing", "headache", "swollen glands"],
              ["tonsillar exudates", "tender anterior cervical nodes", "palatal petechiae"],
              [("amoxicillin", 2), ("ibuprofen", None)], ["rapid strep test"], ["rest and fluids"],
              temp=(37.8, 39.2), hr=(84, 110), duration=(1, 4)),
    Condition("acute cystitis", "UTI", "painful urination",
              ["dysuria", "urinary frequency", "urgency", "suprapubic discomfort"],
              ["suprapubic tenderness", "no CVA tenderness"],
              [("nitrofurantoin", None)], ["urinalysis", "urine culture"], [], sex="F", duration=(1, 5)),
    Condition("influenza", "influenza", "fever and body aches",
              ["fever", "myalgias", "dry cough", "headache", "fatigue", "chills"],
              ["clear lungs", "mild pharyngeal erythema", "no focal findings"],
              [("oseltamivir", None), ("acetaminophen", None)], ["rapid influenza test"], ["rest and fluids"],
              temp=(38.2, 39.6), hr=(90, 115), duration=(1, 3)),
    Condition("uncontrolled hypertension", "uncontrolled HTN", "blood pressure check",
              ["morning headaches", "occasional dizziness", "fatigue"],
              ["no edema", "regular rhythm", "no carotid bruits"],
              [("lisinopril", None), ("amlodipine", None), ("hydrochlorothiazide", None), ("losartan", None)],
              ["basic metabolic panel"], ["salt restriction", "home blood pressure log"],
              bp=((148, 174), (90, 104)), history=("hypertension",), chronic=True, follow=(14, 28, 30)),
    Condition("type 2 diabetes, suboptimally controlled", "T2DM, suboptimal control", "diabetes follow-up",
              ["increased thirst", "frequent urination", "blurred vision", "tingling in feet"],
              ["decreased monofilament sensation both feet", "no foot ulcers", "normal pedal pulses"],
              [("metformin", None), ("insulin glargine", None), ("atorvastatin", None)], ["HbA1c", "lipid panel"],
              ["diet and exercise counseling", "foot care"], history=("type 2 diabetes",), chronic=True,
              follow=(28, 90, 84)),
    Condition("asthma exacerbation", "asthma exacerbation", "wheezing",
              ["shortness of breath", "wheezing", "nighttime cough", "chest tightness"],
              ["diffuse expiratory wheezes", "prolonged expiration", "no accessory muscle use"],
              [("albuterol", None), ("prednisone", 0), ("montelukast", None)], ["peak flow"], [],
              hr=(88, 112), rr=(18, 26), spo2=(92, 97), history=("asthma",), duration=(1, 5)),
    Condition("acute low back strain", "acute LBP / lumbar strain", "low back pain",
              ["pain worse with bending", "muscle spasm", "stiffness in the morning"],
              ["paraspinal tenderness", "negative straight leg raise", "normal strength and reflexes"],
              [("ibuprofen", 1), ("naproxen", None), ("cyclobenzaprine", None)], [],
              ["heat and gentle stretching"], ["physical therapy"], duration=(1, 14)),
    Condition("migraine without aura", "migraine w/o aura", "headache",
              ["throbbing headache", "nausea", "light sensitivity", "sound sensitivity"],
              ["normal neurologic exam", "no neck stiffness"],
              [("ibuprofen", None), ("ondansetron", None)], [], ["headache diary"],
              history=("migraine",), duration=(1, 3)),
    Condition("gastroesophageal reflux disease", "GERD", "heartburn",
              ["burning chest pain after meals", "sour taste", "worse lying down", "bloating"],
              ["mild epigastric tenderness", "normal bowel sounds"],
              [("omeprazole", None), ("famotidine", None)], [], ["avoid late meals"], duration=(7, 21)),
    Condition("acute bacterial sinusitis", "acute sinusitis", "facial pressure",
              ["nasal congestion", "facial pain", "thick nasal discharge", "reduced smell"],
              ["maxillary sinus tenderness", "boggy turbinates", "purulent drainage"],
              [("amoxicillin-clavulanate", None), ("fluticasone", None)], [], ["saline nasal rinses"],
              temp=(36.8, 38.3), duration=(10, 16)),
    Condition("allergic rhinitis", "allergic rhinitis", "sneezing and runny nose",
              ["sneezing", "itchy eyes", "clear runny nose", "nasal congestion"],
              ["pale boggy turbinates", "clear nasal discharge", "allergic shiners"],
              [("cetirizine", None), ("fluticasone", None)], [], [], duration=(7, 20)),
    Condition("cellulitis of the left lower leg", "LLE cellulitis", "red swollen leg",
              ["redness", "warmth", "swelling", "pain"],
              ["erythema left lower leg", "warm to touch", "no fluctuance", "tender left shin"],
              [("cephalexin", 0), ("doxycycline", None)], ["CBC"], ["mark the redness border"],
              temp=(37.2, 38.6), hr=(78, 104), duration=(1, 4)),
    Condition("contact dermatitis", "contact dermatitis", "itchy rash",
              ["itching", "red rash on forearms", "rash after new soap"],
              ["erythematous papules on both forearms", "linear vesicles", "no signs of infection"],
              [("hydrocortisone 1% cream", None), ("cetirizine", None)], [], ["avoid the trigger"], duration=(2, 7)),
    Condition("viral gastroenteritis", "viral gastroenteritis", "vomiting and diarrhea",
              ["nausea", "vomiting", "watery diarrhea", "abdominal cramps"],
              ["mild diffuse abdominal tenderness", "dry mucous membranes", "hyperactive bowel sounds"],
              [("ondansetron", None)], ["basic metabolic panel"], ["oral rehydration"],
              temp=(37.0, 38.3), hr=(86, 112), duration=(1, 3)),
    Condition("hypothyroidism", "hypothyroidism", "fatigue",
              ["fatigue", "weight gain", "cold intolerance", "constipation"],
              ["dry skin", "delayed reflexes", "non-tender thyroid"],
              [("levothyroxine", None)], ["TSH"], [], hr=(54, 68), history=("hypothyroidism",),
              chronic=True, follow=(42, 56)),
    Condition("major depressive disorder, follow-up", "MDD f/u", "low mood",
              ["low mood", "poor sleep", "low energy", "loss of interest"],
              ["flat affect", "no suicidal ideation", "linear thought process"],
              [("sertraline", None), ("escitalopram", None)], [], ["sleep hygiene"], ["counseling"],
              history=("depression",), chronic=True, follow=(14, 28, 42)),
    Condition("heart failure exacerbation", "CHF exacerbation", "leg swelling",
              ["ankle swelling", "shortness of breath on exertion", "weight gain", "needing more pillows at night"],
              ["pitting edema both ankles", "bibasilar crackles", "raised jugular venous pressure"],
              [("furosemide", None)], ["basic metabolic panel", "BNP"], ["daily weights", "salt restriction"],
              hr=(78, 104), rr=(18, 24), spo2=(91, 96), history=("hypertension", "atrial fibrillation"),
              duration=(3, 10), follow=(3, 7)),
    Condition("herpes zoster", "shingles", "painful rash",
              ["burning pain", "blistering rash", "itching"],
              ["grouped vesicles in a band on the left chest", "no eye involvement"],
              [("valacyclovir", 0), ("gabapentin", None)], [], [], duration=(2, 5)),
    Condition("benign prostatic hyperplasia", "BPH", "urinary hesitancy",
              ["weak stream", "getting up at night to urinate", "hesitancy", "dribbling"],
              ["enlarged smooth prostate", "no nodules"],
              [("tamsulosin", None)], ["urinalysis", "PSA"], [], sex="M", chronic=True, follow=(28, 42)),
    Condition("vulvovaginal candidiasis", "yeast infection", "vaginal itching",
              ["itching", "thick white discharge", "burning"],
              ["thick white discharge", "vulvar redness"],
              [("fluconazole", None)], [], [], sex="F", duration=(2, 6), follow=(14,)),
    Condition("right ankle sprain", "R ankle sprain", "ankle pain",
              ["ankle swelling", "pain with walking", "rolled ankle stepping off a curb"],
              ["lateral right ankle swelling", "tenderness over the anterior talofibular ligament",
               "able to bear weight"],
              [("ibuprofen", None), ("acetaminophen", None)], [], ["ice, compression and elevation"],
              ["physical therapy"], duration=(1, 3)),
    Condition("functional constipation", "constipation", "constipation",
              ["hard stools", "straining", "bloating", "two bowel movements a week"],
              ["soft non-tender abdomen", "normal bowel sounds"],
              [("polyethylene glycol", None), ("docusate", None)], [], ["increase fiber and water"],
              duration=(10, 21)),
    Condition("stable angina", "stable angina", "chest pressure with exertion",
              ["chest pressure on stairs", "relief with rest", "mild shortness of breath"],
              ["regular rhythm", "no murmurs", "clear lungs"],
              [("nitroglycerin", None), ("atorvastatin", None), ("metoprolol succinate", None)], ["ECG", "lipid panel"],
              [], ["cardiology"], history=("hyperlipidemia", "prior smoker"), duration=(14, 20), follow=(7, 14)),
]

TEST_TERSE = {"chest X-ray": "CXR", "urinalysis": "UA", "basic metabolic panel": "BMP", "rapid strep test": "rapid strep",
              "rapid influenza test": "flu swab", "urine culture": "UCx", "lipid panel": "lipids",
              "HbA1c": "A1c", "peak flow": "PEF"}


def vital_parts(rng, vit: dict, style: str, rr=None) -> list[str]:
    out = []
    for key in ("temp_c", "heart_rate", "bp", "resp_rate", "spo2"):
        v = rr if key == "resp_rate" else vit[key]
        if v is None:
            continue
        if style == "narrative":
            out.append({"temp_c": rng.choice([f"temperature {v} C", f"temp of {v} degrees", f"T {v}°C"]),
                        "heart_rate": rng.choice([f"pulse {v}", f"heart rate {v}"]),
                        "bp": rng.choice([f"blood pressure {v}", f"BP {v}"]),
                        "resp_rate": rng.choice([f"respirations {v}", f"respiratory rate {v}"]),
                        "spo2": rng.choice([f"oxygen saturation {v}% on room air", f"sats {v}%"])}[key])
        else:
            out.append({"temp_c": rng.choice([f"T {v}", f"T {v}C", f"Temp {v}°C", f"T{v}"]),
                        "heart_rate": rng.choice([f"HR {v}", f"P {v}", f"pulse {v}"]),
                        "bp": rng.choice([f"BP {v}", f"{v}"]) if out else f"BP {v}",
                        "resp_rate": rng.choice([f"RR {v}", f"R {v}"]),
                        "spo2": rng.choice([f"SpO2 {v}%", f"O2 sat {v}% RA", f"sat {v}%"])}[key])
    return out


def soap_example(rng):
    cond = rng.choice(CONDITIONS)
    p = patient(rng, cond.sex)
    style = rng.choice(["terse", "narrative", "bulleted"])
    visit = rand_date(rng)
    # Sizes lean small so most prompt+target pairs stay under ~1,000 characters
    # (~256 tokens), which a 135M model on CPU trains on in minutes.
    symptoms = rng.sample(cond.symptoms, rng.choices([1, 2], weights=[1, 1])[0])
    findings = rng.sample(cond.findings, rng.choices([1, 2], weights=[2, 1])[0])
    hist_pool = [h for h in HISTORY if h not in cond.history]
    history = list(cond.history) + (rng.sample(hist_pool, rng.choice([0, 0, 0, 1, 1])))
    rng.shuffle(history)
    duration = None if cond.chronic else rng.randint(*cond.duration)
    vit = {
        "temp_c": round(rng.uniform(*cond.temp), 1) if rng.random() < 0.8 else None,
        "heart_rate": rng.randint(*cond.hr) if rng.random() < 0.85 else None,
        "bp": f"{rng.randint(*cond.bp[0])}/{rng.randint(*cond.bp[1])}" if rng.random() < 0.8 else None,
        "spo2": rng.randint(*cond.spo2) if rng.random() < 0.65 else None,
    }
    # Respiratory rate is written in some notes but is not part of the schema:
    # a fixed schema means learning to leave out what it does not ask for.
    rr = rng.randint(*cond.rr) if rng.random() < 0.3 else None
    # 1-2 medications from the condition's usual choices, each drawn with one of its regimens
    n_meds = min(len(cond.meds), rng.choice([1, 1, 1, 2]))
    meds = []
    for name, reg in rng.sample(cond.meds, n_meds):
        drug = DRUGS[name]
        meds.append(med_order(rng, drug, drug.regimens[reg] if reg is not None else None))
    tests = rng.sample(list(cond.tests), min(len(cond.tests), rng.choice([0, 0, 1])))
    advice = rng.sample(list(cond.advice), min(len(cond.advice), rng.choice([0, 0, 1])))
    referral = list(cond.referral) if cond.referral and rng.random() < 0.5 else []
    fu_kind = rng.random()
    follow_date = visit + dt.timedelta(days=rng.choice(cond.follow)) if fu_kind < 0.6 else None
    follow_weeks = max(1, rng.choice(cond.follow) // 7) if 0.6 <= fu_kind < 0.8 else None

    # plan items in the order the note will state them
    plan = [("med", m) for m in meds] + [("test", t) for t in tests] + [("advice", a) for a in advice] + \
        [("referral", r) for r in referral]
    if follow_date:
        plan.append(("follow_date", follow_date))
    elif follow_weeks:
        plan.append(("follow_weeks", follow_weeks))
    else:
        plan.append(("return", None))

    def plan_target(kind, v):
        return {"med": lambda: plan_med(v), "test": lambda: f"order {v}", "advice": lambda: v,
                "referral": lambda: f"refer to {v}", "follow_date": lambda: f"follow-up on {v.isoformat()}",
                "follow_weeks": lambda: f"follow-up in {v} week{'s' if v > 1 else ''}",
                "return": lambda: "return if symptoms worsen"}[kind]()

    def plan_note(kind, v, t):
        if kind == "med":
            return med_text(rng, v, t)
        if kind == "test":
            return (TEST_TERSE.get(v, v) if t and rng.random() < 0.7 else
                    rng.choice([v, f"check {v}", f"order {v}"] if t else [f"will obtain a {v}", f"ordered {v}", f"check {v}"]))
        if kind == "advice":
            return ADVICE[v][0] if t else rng.choice(ADVICE[v])
        if kind == "referral":
            return f"refer {v}" if t else rng.choice([f"referral to {v}", f"refer to {v}"])
        if kind == "follow_date":
            return rng.choice(["f/u", "RTC", "follow-up", "recheck"] if t else ["follow-up on", "return visit", "see again on"]) + " " + date_text(rng, v)
        if kind == "follow_weeks":
            return rng.choice([f"f/u {v} wk{'s' if v > 1 else ''}", f"RTC {v}w"]) if t else f"follow-up in {NUM_WORDS[v]} week{'s' if v > 1 else ''}"
        return rng.choice(["RTC if worse", "return precautions given", "ER if worse"]) if t else rng.choice(
            ["return if symptoms get worse", "come back sooner if worse"])

    target = {
        "subjective": {"complaint": cond.cc, "duration_days": duration, "symptoms": symptoms, "history": history},
        "objective": {**vit, "exam": findings},
        "assessment": cond.assessment,
        "plan": [plan_target(k, v) for k, v in plan],
    }

    dos = date_text(rng, visit)
    t = style != "narrative"
    if style == "terse":
        head = rng.choice([f"DOS {dos}. ", f"{dos} ", "", f"Clinic visit {dos}. "])
        dur = "" if duration is None else " " + dur_text(rng, duration, True)
        pmh = ", ".join(HISTORY[h] for h in history) if history else rng.choice(["none", "neg", "nil"])
        vitals = " ".join(vital_parts(rng, vit, "terse", rr))
        parts = [f"{head}{pt_terse(rng, p)} {'here for' if cond.chronic else 'c/o'} {cond.cc}{dur}.",
                 rng.choice(["Also ", "Assoc ", "+ ", "Reports "]) + ", ".join(terse(s) for s in symptoms) + ".",
                 f"PMH: {pmh}."]
        if vitals:
            parts.append(f"{rng.choice(['V/S', 'Vitals', 'VS'])}: {vitals}.")
        parts.append("Exam: " + "; ".join(terse(f) for f in findings) + ".")
        parts.append(f"A: {cond.abbr}.")
        parts.append("P: " + "; ".join(plan_note(k, v, True) for k, v in plan) + ".")
        note = " ".join(parts)
    elif style == "bulleted":
        head = rng.choice([f"Visit {dos}\n", f"Date: {dos}\n", ""])
        dur = "" if duration is None else ", " + dur_text(rng, duration, True)
        lines = [f"{head}S: {pt_terse(rng, p)}, {cond.cc}{dur}"]
        lines += [f"- {s}" for s in symptoms]
        lines.append("PMH: " + (", ".join(HISTORY[h] if rng.random() < 0.5 else h for h in history) if history else "none"))
        vitals = ", ".join(vital_parts(rng, vit, "terse", rr))
        lines.append("O: " + (vitals if vitals else "vitals not recorded"))
        lines += [f"- {f}" for f in findings]
        lines.append(f"A: {rng.choice([cond.abbr, cond.assessment])}")
        lines.append("P:")
        lines += [f"- {plan_note(k, v, True)}" for k, v in plan]
        note = "\n".join(lines)
    else:
        name, desc = pt_words(rng, p)
        he, his = pronoun(p)
        when = "" if duration is None else " " + rng.choice([
            f"for {NUM_WORDS[duration] if duration < len(NUM_WORDS) else duration} days",
            "since yesterday" if duration == 1 else f"that started {NUM_WORDS[duration] if duration < len(NUM_WORDS) else duration} days ago"])
        intro = rng.choice([f"Seen on {dos}. ", "", f"Visit date {dos}. "])
        s = f"{intro}{name} is a {desc} who comes in {'for' if cond.chronic else 'with'} {cond.cc}{when}. "
        s += rng.choice([f"{he} also reports ", f"{he} describes ", "Associated with "]) + join_words(symptoms) + ". "
        s += (f"History of {join_words(history)}. " if history else rng.choice(["No significant past history. ", "Otherwise healthy. "]))
        vp = vital_parts(rng, vit, "narrative", rr)
        if vp:
            s += "Vitals: " + ", ".join(vp) + ". "
        s += rng.choice(["On exam there is ", "Exam shows ", "Examination notable for "]) + join_words(findings) + ". "
        s += rng.choice(["Impression: ", "Assessment is ", "Most consistent with "]) + cond.assessment + ". "
        s += "Plan: " + "; ".join(plan_note(k, v, False) for k, v in plan) + "."
        note = s
    return note, target


def join_words(items):
    items = list(items)
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


# ----------------------------------------------------------------------------- pharmacy notes

PHARM_HEAD = ["Pharmacy note", "Rx verification", "Dispensing note", "Discharge med reconciliation",
              "Outpatient pharmacy", "Phone order", "Counseling note", "New Rx received", "E-prescription review"]
PHARM_CLOSE = ["Counseled on side effects.", "Pt verbalized understanding.", "Interaction check clear.",
               "Verified with prescriber.", "Ready for pickup after 4 pm.", "Label printed, reviewed with patient.",
               "Insurance approved.", "Copay explained.", "Reviewed how to take each medication.",
               "No questions from patient.", "Patient declined counseling.", "Auxiliary labels applied."]
ALLERGY = ["NKDA", "allergic to penicillin (rash)", "sulfa allergy", "codeine intolerance (nausea)",
           "no known allergies", "latex allergy", "allergy to shellfish noted"]
NONE_REASONS = [
    "No new prescriptions today; patient asked about store hours.",
    "Prior authorization still pending, nothing dispensed.",
    "Patient takes no prescription medications.",
    "Vaccine record reviewed only; no medication orders.",
    "Refill request for {drug} denied: patient must be seen first.",
    "Patient asked whether {drug} is safe with grapefruit juice; advised, no order placed.",
    "{drug} was stopped by the prescriber last month; nothing new ordered.",
    "Called to transfer records to another pharmacy. No orders.",
    "Questions about a missed dose of {drug} answered; no prescription changes.",
    "Blood pressure screening at the kiosk; no medications ordered.",
    "Patient reports {drug} was discontinued at the hospital. No active orders received.",
    "OTC advice only: recommended rest and fluids. No medications dispensed.",
]
DISTRACTORS = [
    "Previously on {drug}, discontinued last year.", "Pt asked about {drug}; advised not needed.",
    "Stopped {drug} due to side effects.", "Hold {drug} per prescriber until follow-up.",
]


def meds_example(rng):
    p = patient(rng)
    style = rng.choice(["terse", "narrative", "bulleted"])
    n = rng.choices([0, 1, 2, 3], weights=[1, 4, 3, 2])[0]
    names = rng.sample(sorted(DRUGS), n + 1)
    meds = [med_order(rng, DRUGS[nm]) for nm in names[:n]]
    other = names[n]  # a drug mentioned but not ordered (distractor / refusal reason)
    t = style != "narrative"
    head = rng.choice(PHARM_HEAD)
    when = rng.choice(["", f" {date_text(rng, rand_date(rng))}"])
    who = pt_terse(rng, p)
    prescriber = rng.choice(DOCTORS)
    lines = []
    if style == "terse":
        lines.append(f"{head}{when}. {who}. {rng.choice(['Allergies: ', 'All: ', ''])}{rng.choice(ALLERGY)}.")
        if meds:
            lines.append(rng.choice(["Rx: ", "Orders: ", f"Per {prescriber}: ", "Dispensed: "]) +
                         "; ".join(med_text(rng, m, True) for m in meds) + ".")
    elif style == "bulleted":
        lines.append(f"{head}{when}")
        lines.append(f"Patient: {who} | {rng.choice(ALLERGY)}")
        if meds:
            lines.append(rng.choice(["Orders:", "Meds:", f"From {prescriber}:"]))
            lines += [f"- {med_text(rng, m, True)}" for m in meds]
    else:
        name, desc = pt_words(rng, p)
        lines.append(f"{head}{when}: {name}, a {desc}, {rng.choice(['came in', 'called', 'was discharged today'])}."
                     f" {rng.choice(['Allergies: ', 'Allergy status: ', ''])}{rng.choice(ALLERGY)}.")
        if meds:
            texts = [med_text(rng, m, False) for m in meds]
            lines.append(rng.choice([f"{prescriber} prescribed ", "New orders: ", "We dispensed "]) + join_words(texts) + ".")
    if not meds:
        lines.append(rng.choice(NONE_REASONS).format(drug=other))
    elif rng.random() < 0.2:
        lines.append(rng.choice(DISTRACTORS).format(drug=other))
    lines += rng.sample(PHARM_CLOSE, rng.randint(0, 2))
    note = ("\n" if style == "bulleted" else " ").join(lines)
    return note, {"medications": meds}


# ----------------------------------------------------------------------------- preference pairs

def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def py_repr(obj) -> str:
    """What a model imitating Python dict printing produces: single quotes, True, None."""
    return repr(obj)


CHATTER_BEFORE = ["Sure! Here is the JSON you asked for:\n\n", "Here's the extracted data:\n", "Of course.\n",
                  "Below is the structured output.\n\n", "Okay, I extracted the following:\n"]
CHATTER_AFTER = ["\n\nLet me know if you need anything else!", "\n\nHope this helps.", "",
                 "\n\nNote: please verify doses with the prescriber.", "\nI can also format it as a table."]


def rejected_for(rng, kind: str, target: dict, task: str) -> str | None:
    """A realistic wrong answer of the given kind, or None if the kind doesn't apply."""
    good = dumps(target)
    if kind == "single_quotes":
        return py_repr(target)
    if kind == "chatter":
        return rng.choice(CHATTER_BEFORE) + good + rng.choice(CHATTER_AFTER)
    if kind == "fence":
        body = json.dumps(target, ensure_ascii=False, indent=rng.choice([None, 2]))
        return f"```json\n{body}\n```"
    if kind == "truncated":
        cut = rng.randint(len(good) // 2, len(good) - 5)
        return good[:cut]
    bad = json.loads(good)
    if task == "medications":
        meds = bad["medications"]
        if kind == "missing_field":
            if not meds:
                return dumps({})
            field = rng.choice(["duration_days", "route", "unit", "as_needed"])
            for m in meds:
                m.pop(field, None)
            return dumps(bad)
        if kind == "wrong_value":
            dosed = [m for m in meds if isinstance(m["dose"], (int, float))]
            if not dosed:
                # nothing to mis-dose: the usual failure is an invented order
                meds.append({"name": "acetaminophen", "dose": 500, "unit": "mg", "route": "oral",
                             "frequency": "every 6 hours", "duration_days": None, "as_needed": True})
                return dumps(bad)
            m = rng.choice(dosed)
            change = rng.choice(["x10", "half", "unit"])
            if change == "x10":
                m["dose"] = m["dose"] * 10
            elif change == "half" and m["dose"] > 1:
                m["dose"] = m["dose"] / 2 if m["dose"] % 2 else m["dose"] // 2
            else:
                m["unit"] = {"mg": "mcg", "mcg": "mg", "g": "mg"}.get(m["unit"], "mL")
            return dumps(bad)
    else:
        if kind == "missing_field":
            if rng.random() < 0.5:
                bad.pop("assessment")
            else:
                bad["objective"].pop(rng.choice(["spo2", "exam", "bp"]))
            return dumps(bad)
        if kind == "wrong_value":
            obj = bad["objective"]
            missing = [k for k in ("temp_c", "heart_rate", "spo2") if obj[k] is None]
            if missing and rng.random() < 0.5:
                # invents a vital the note never gave
                k = rng.choice(missing)
                obj[k] = {"temp_c": 37.0, "heart_rate": 80, "spo2": 98}[k]
            else:
                meds_in_plan = [i for i, s in enumerate(bad["plan"]) if re.search(r" \d+(\.\d+)? (mg|mcg|g|units) ", s)]
                if meds_in_plan:
                    i = rng.choice(meds_in_plan)
                    bad["plan"][i] = re.sub(r" (\d+(?:\.\d+)?) (mg|mcg|g|units) ",
                                            lambda mm: f" {num_text_plain(float(mm.group(1)) * 10)} {mm.group(2)} ",
                                            bad["plan"][i], count=1)
                else:
                    bad["subjective"]["duration_days"] = (bad["subjective"]["duration_days"] or 3) + 7
            return dumps(bad)
    return None


REJECT_KINDS = ["single_quotes", "missing_field", "wrong_value", "chatter", "fence", "truncated"]


# ----------------------------------------------------------------------------- assembly

def shingles(text: str) -> set:
    words = re.findall(r"[a-z0-9]+", text.lower())
    return {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def draw(rng, make, count: int, avoid: list | None = None):
    """`count` examples from `make`, redrawing exact and near duplicates of the note."""
    out, sigs = [], list(avoid or [])
    seen: set[str] = set()
    while len(out) < count:
        note, target = make(rng)
        if note in seen:
            continue
        sig = shingles(note)
        if any(len(sig & o) / len(sig | o) >= NEAR_DUP_JACCARD for o in sigs):
            continue
        seen.add(note)
        sigs.append(sig)
        out.append((note, target))
    return out, sigs


def sft_row(system: str, note: str, target: dict) -> dict:
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": note},
                         {"role": "assistant", "content": dumps(target)}]}


def split(rows: list, n_val: int, n_test: int):
    return rows[:len(rows) - n_val - n_test], rows[len(rows) - n_val - n_test:len(rows) - n_test], rows[len(rows) - n_test:]


def build() -> dict[str, dict[str, list[dict]]]:
    """All sets as {name: {split: rows}}; pure function of SEED."""
    rng = random.Random(SEED)
    soap, soap_sigs = draw(rng, soap_example, 360)
    meds, meds_sigs = draw(rng, meds_example, 360)
    soap_rows = [sft_row(SOAP_SYSTEM, n, t) for n, t in soap]
    meds_rows = [sft_row(MEDS_SYSTEM, n, t) for n, t in meds]

    # Preference prompts are fresh notes (not reused from the SFT sets), half per task.
    pref_soap, _ = draw(rng, soap_example, 80, avoid=soap_sigs)
    pref_meds, _ = draw(rng, meds_example, 80, avoid=meds_sigs)
    pairs = []
    items = [("soap", SOAP_SYSTEM, n, t) for n, t in pref_soap] + [("medications", MEDS_SYSTEM, n, t) for n, t in pref_meds]
    rng.shuffle(items)
    for i, (task, system, note, target) in enumerate(items):
        kinds = REJECT_KINDS[i % len(REJECT_KINDS):] + REJECT_KINDS[:i % len(REJECT_KINDS)]
        rejected = None
        for kind in kinds:
            rejected = rejected_for(rng, kind, target, task)
            if rejected is not None and rejected != dumps(target):
                break
        assert rejected is not None and rejected != dumps(target)
        pairs.append({"prompt": [{"role": "system", "content": system}, {"role": "user", "content": note}],
                      "chosen": [{"role": "assistant", "content": dumps(target)}],
                      "rejected": [{"role": "assistant", "content": rejected}]})

    out = {}
    for name, rows, n_val, n_test in (("clinical_soap", soap_rows, 36, 36), ("pharmacy_meds", meds_rows, 36, 36),
                                      ("preference", pairs, 16, 16)):
        tr, va, te = split(rows, n_val, n_test)
        out[name] = {"train": tr, "validation": va, "test": te}
    return out


def write(out_dir: Path) -> list[Path]:
    written = []
    for name, splits in build().items():
        (out_dir / name).mkdir(parents=True, exist_ok=True)
        for split_name, rows in splits.items():
            path = out_dir / name / f"{split_name}.jsonl"
            text = "".join(dumps(r) + "\n" for r in rows)
            path.write_text(text, encoding="utf-8", newline="\n")
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else HERE
    for path in write(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
