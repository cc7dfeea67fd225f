"""Name pools by ethnic origin, ethnicity code tables, and vectorised name sampling.

Sources: faker's locale provider *lists* (en_GB, en_IE, en_IN, en_PK, en_NG, ro_RO, pl_PL) sampled with
numpy, never Faker called per row. Faker has no usable romanised Chinese, Polish-surname, Somali or
Arabic-in-Latin lists, so small frequency tables for those are written here (common UK-registered spellings).
Every name must encode in Windows-1252, because two partner feeds use that encoding.
"""

from __future__ import annotations

import importlib
from functools import cache

import numpy as np
import pandas as pd

# ONS 2021 19-category ethnicity -> codes used by different partners, the high-level group, the name
# pool and the share of the county (roughly England 2021, a little less diverse, as in a shire county).
# columns: key, ONS 2021 label, NHS ethnic category (Data Dictionary), DfE CIN code, group, pool, share
ETHNICITIES: list[tuple[str, str, str, str, str, str, float]] = [
    ("WBRI", "White: English, Welsh, Scottish, Northern Irish or British", "A", "WBRI", "White", "british", 0.800),
    ("WIRI", "White: Irish", "B", "WIRI", "White", "irish", 0.008),
    ("WROM", "White: Roma", "C", "WROM", "White", "romanian", 0.002),
    ("WOTH", "White: Other White", "C", "WOTH", "White", "eastern_european", 0.050),
    ("MWBC", "Mixed or Multiple: White and Black Caribbean", "D", "MWBC", "Mixed", "british", 0.008),
    ("MWBA", "Mixed or Multiple: White and Black African", "E", "MWBA", "Mixed", "african", 0.004),
    ("MWAS", "Mixed or Multiple: White and Asian", "F", "MWAS", "Mixed", "british", 0.007),
    ("MOTH", "Mixed or Multiple: Other Mixed", "G", "MOTH", "Mixed", "british", 0.006),
    ("AIND", "Asian or Asian British: Indian", "H", "AIND", "Asian", "indian", 0.030),
    ("APKN", "Asian or Asian British: Pakistani", "J", "APKN", "Asian", "muslim_south_asian", 0.022),
    ("ABAN", "Asian or Asian British: Bangladeshi", "K", "ABAN", "Asian", "muslim_south_asian", 0.008),
    ("CHNE", "Asian or Asian British: Chinese", "R", "CHNE", "Asian", "chinese", 0.007),
    ("AOTH", "Asian or Asian British: Other Asian", "L", "AOTH", "Asian", "indian", 0.008),
    ("BCRB", "Black, Black British, Caribbean or African: Caribbean", "M", "BCRB", "Black", "british", 0.006),
    ("BAFR", "Black, Black British, Caribbean or African: African", "N", "BAFR", "Black", "african", 0.016),
    ("BOTH", "Black, Black British, Caribbean or African: Other Black", "P", "BOTH", "Black", "african", 0.002),
    ("OARB", "Other ethnic group: Arab", "S", "OOTH", "Other", "arab", 0.004),
    ("OOTH", "Other ethnic group: Any other ethnic group", "S", "OOTH", "Other", "arab", 0.002),
]

ETHNICITY_TABLE = pd.DataFrame(
    ETHNICITIES, columns=["key", "ons_label", "nhs_code", "dfe_code", "group", "pool", "share"]
)

_OWN_TABLES: dict[str, dict[str, list[str]]] = {
    # Weighted by listed order (first = most common) with a Zipf-like weight.
    "muslim_south_asian": {
        "male": ["Mohammed", "Muhammad", "Ahmed", "Ali", "Omar", "Hamza", "Yusuf", "Ibrahim", "Bilal", "Imran",
                 "Zain", "Hassan", "Usman", "Adam", "Ayaan", "Zakariya", "Abdul", "Tariq", "Faisal", "Kamran",
                 "Shahid", "Asif", "Rizwan", "Nadeem", "Arif", "Saif", "Junaid", "Mohammad", "Shakeel", "Amir"],
        "female": ["Fatima", "Aisha", "Maryam", "Zainab", "Amina", "Khadija", "Ayesha", "Sana", "Hira", "Noor",
                   "Safa", "Iqra", "Alisha", "Sadia", "Nadia", "Samina", "Rukhsana", "Shazia", "Yasmin", "Zara",
                   "Hafsa", "Mariam", "Anisa", "Rabia", "Shabana", "Nasreen", "Farah", "Saima", "Aleena", "Inaya"],
        "family": ["Khan", "Hussain", "Ahmed", "Ali", "Akhtar", "Begum", "Iqbal", "Mahmood", "Rahman", "Shah",
                   "Butt", "Malik", "Rashid", "Aslam", "Bibi", "Mohammed", "Miah", "Islam", "Uddin", "Chowdhury",
                   "Hassan", "Qureshi", "Raza", "Sheikh", "Javed", "Nawaz", "Siddiqui", "Choudhury", "Ullah",
                   "Riaz", "Anwar", "Saleem", "Ashraf", "Yousaf", "Zaman", "Abbas", "Haq", "Latif", "Kauser"],
    },
    "eastern_european": {
        "family": ["Nowak", "Kowalski", "Kowalska", "Wisniewski", "Wojcik", "Kowalczyk", "Kaminski", "Lewandowski",
                   "Zielinski", "Szymanski", "Wozniak", "Dabrowski", "Kozlowski", "Jankowski", "Mazur",
                   "Kwiatkowski", "Krawczyk", "Piotrowski", "Grabowski", "Nowakowski", "Pawlowski", "Michalski",
                   "Nowicki", "Adamczyk", "Dudek", "Zajac", "Wieczorek", "Jablonski", "Krol", "Majewski",
                   "Olszewski", "Jaworski", "Wrobel", "Malinowski", "Pawlak", "Witkowski", "Walczak", "Stepien",
                   "Gorski", "Rutkowski", "Petrov", "Ivanov", "Kazlauskas", "Jankauskas", "Berzins", "Kalnins"],
    },
    "chinese": {
        "male": ["Wei", "Jun", "Hao", "Ming", "Jian", "Lei", "Yang", "Chen", "Jie", "Tao", "Bo", "Kai", "Long",
                 "Peng", "Qiang", "Yi", "Zhen", "Hui", "Feng", "Xin"],
        "female": ["Li", "Jing", "Ying", "Xia", "Mei", "Yan", "Fang", "Hui", "Lin", "Na", "Xiu", "Yu", "Ting",
                   "Min", "Lan", "Qing", "Rui", "Xue", "Yun", "Zhi"],
        "family": ["Wang", "Li", "Zhang", "Chen", "Liu", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
                   "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Wong", "Chan", "Leung", "Cheung", "Lam",
                   "Ng", "Ho", "Tang", "Lau", "Yip"],
    },
    "african_extra": {
        "male": ["Mohamed", "Abdi", "Ahmed", "Abdullahi", "Kwame", "Kofi", "Tendai", "Tinashe", "Oluwaseun",
                 "Chinedu", "Ifeanyi", "Tunde", "Yaw", "Mustafa", "Abdirahman", "Daniel", "David", "Joseph",
                 "Isaac", "Michael"],
        "female": ["Amina", "Fadumo", "Hodan", "Nimo", "Ama", "Abena", "Chipo", "Rutendo", "Ngozi", "Chioma",
                   "Adaeze", "Funmilayo", "Blessing", "Precious", "Faith", "Esther", "Ruth", "Hawa", "Sahra",
                   "Deborah"],
        "family": ["Mohamed", "Abdi", "Hassan", "Farah", "Ali", "Osman", "Yusuf", "Mensah", "Owusu", "Boateng",
                   "Asante", "Moyo", "Ncube", "Dube", "Okafor", "Eze", "Nwosu", "Adebayo", "Ogunleye", "Okoro",
                   "Balogun", "Bello", "Mwangi", "Otieno", "Kamara", "Sesay", "Conteh", "Bangura"],
    },
    "arab": {
        "male": ["Mohammed", "Ahmad", "Omar", "Khalid", "Youssef", "Karim", "Samir", "Tarek", "Hani", "Rami",
                 "Fadi", "Nabil", "Walid", "Majid", "Bashir", "Jamal", "Said", "Hamid", "Anas", "Ziad"],
        "female": ["Fatima", "Layla", "Mariam", "Nour", "Rania", "Huda", "Salma", "Yasmin", "Dina", "Lina",
                   "Rana", "Samira", "Amal", "Hana", "Reem", "Maha", "Aya", "Jana", "Sara", "Noura"],
        "family": ["Al-Sayed", "Haddad", "Hassan", "Khalil", "Mansour", "Nasser", "Saleh", "Abdallah", "Ibrahim",
                   "Mahmoud", "Mustafa", "Darwish", "Aziz", "Hamdan", "Al-Masri", "Farouk", "Qasim", "Yassin",
                   "Karam", "Bakr"],
    },
}


def _faker(locale: str, attr: str) -> list[str]:
    mod = importlib.import_module(f"faker.providers.person.{locale}")
    value = getattr(mod.Provider, attr)
    return list(value.keys()) if isinstance(value, dict) else list(value)


def _zipf_weights(n: int, s: float = 0.7) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _cp1252_only(names: list[str]) -> list[str]:
    out = []
    for name in names:
        try:
            name.encode("cp1252")
        except UnicodeEncodeError:
            continue
        if name and name.replace("-", "").replace("'", "").replace(" ", "").isalpha():
            out.append(name)
    return list(dict.fromkeys(out))


@cache
def name_pools() -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """pool -> {"male"|"female"|"family": (names, probabilities)}."""
    gb_family = _faker("en_GB", "last_names")
    gb_weights = np.array(list(importlib.import_module("faker.providers.person.en_GB").Provider.last_names.values()))
    raw: dict[str, dict[str, list[str]]] = {
        "british": {"male": _faker("en_GB", "first_names_male") + _faker("en_IE", "first_names_male")[:80],
                    "female": _faker("en_GB", "first_names_female") + _faker("en_IE", "first_names_female")[:80],
                    "family": gb_family},
        "irish": {"male": _faker("en_IE", "first_names_male"), "female": _faker("en_IE", "first_names_female"),
                  "family": _faker("en_IE", "last_names")},
        "romanian": {"male": _faker("ro_RO", "first_names_male"), "female": _faker("ro_RO", "first_names_female"),
                     "family": _faker("ro_RO", "last_names")},
        "eastern_european": {"male": _faker("pl_PL", "first_names_male"),
                             "female": _faker("pl_PL", "first_names_female"),
                             "family": _OWN_TABLES["eastern_european"]["family"]},
        "indian": {"male": _faker("en_IN", "first_names_male"), "female": _faker("en_IN", "first_names_female"),
                   "family": _faker("en_IN", "last_names")},
        "muslim_south_asian": {**_OWN_TABLES["muslim_south_asian"]},
        "chinese": {**_OWN_TABLES["chinese"]},
        "african": {"male": _OWN_TABLES["african_extra"]["male"] + _faker("en_NG", "first_names_male"),
                    "female": _OWN_TABLES["african_extra"]["female"] + _faker("en_NG", "first_names_female"),
                    "family": _OWN_TABLES["african_extra"]["family"] + _faker("en_NG", "last_names")},
        "arab": {**_OWN_TABLES["arab"]},
    }
    pools: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    rng = np.random.default_rng(20240101)  # fixed: the pools' frequency order is part of the generator
    for pool, parts in raw.items():
        pools[pool] = {}
        for kind, names in parts.items():
            clean = _cp1252_only(names)
            if pool == "british" and kind == "family":
                w = np.array([gb_weights[gb_family.index(n)] for n in clean], dtype=float)
                w = w / w.sum()
            else:
                if pool in ("irish", "indian", "romanian", "eastern_european") and kind != "family":
                    # faker's lists are unordered: give them a fixed random frequency order
                    clean = list(np.array(clean)[rng.permutation(len(clean))])
                w = _zipf_weights(len(clean))
            pools[pool][kind] = (np.array([str(n) for n in clean], dtype=object), w)
    return pools


def sample_names(rng: np.random.Generator, pools_idx: np.ndarray, pool_names: list[str], kind: str | np.ndarray
                 ) -> np.ndarray:
    """Vectorised: one name per row, drawn from the row's pool. ``kind`` is "family" or an array of sexes."""
    pools = name_pools()
    out = np.empty(len(pools_idx), dtype=object)
    for i, pool in enumerate(pool_names):
        for k in (("family",) if isinstance(kind, str) else ("male", "female")):
            mask = pools_idx == i
            if not isinstance(kind, str):
                mask &= kind == ("M" if k == "male" else "F")
            n = int(mask.sum())
            if n:
                names, w = pools[pool][k]
                out[mask] = names[rng.choice(len(names), size=n, p=w)]
    return out
