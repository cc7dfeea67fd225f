"""A tiny self-contained synthetic county for matching tests and benchmarks.

The team's full generator lives in ``orchestration/lib/synthetic``; this one exists so the matching stage can be
tested and benchmarked on its own at any size in seconds, with the defects matching must survive: typos,
nicknames, day/month swaps, missing fields, moved households, twins, shared names, free-text address styles.
Vectorised with numpy; no network, no data files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GIVEN_M = ["james", "william", "robert", "thomas", "richard", "michael", "david", "daniel", "joseph", "charles",
           "edward", "george", "henry", "samuel", "benjamin", "matthew", "andrew", "christopher", "jonathan",
           "oliver", "harry", "jack", "jacob", "noah", "leo", "arthur", "oscar", "alfie", "freddie", "archie",
           "peter", "stephen", "anthony", "patrick", "nicholas", "timothy", "alexander", "frederick", "lewis"]
GIVEN_F = ["elizabeth", "margaret", "catherine", "jennifer", "susan", "rebecca", "victoria", "olivia", "amelia",
           "isla", "ava", "emily", "sophia", "grace", "lily", "freya", "evie", "ella", "florence", "charlotte",
           "jessica", "hannah", "abigail", "samantha", "alexandra", "patricia", "deborah", "christine", "judith",
           "eleanor", "harriet", "lucy", "chloe", "megan", "rachel", "natalie", "kimberly", "josephine", "zoe"]
NICK = {"william": "bill", "robert": "bob", "richard": "dick", "michael": "mike", "thomas": "tom",
        "james": "jim", "daniel": "dan", "joseph": "joe", "charles": "charlie", "edward": "ted",
        "samuel": "sam", "benjamin": "ben", "matthew": "matt", "andrew": "andy", "christopher": "chris",
        "elizabeth": "liz", "margaret": "peggy", "catherine": "kate", "jennifer": "jenny", "susan": "sue",
        "rebecca": "becky", "victoria": "vicky", "peter": "pete", "stephen": "steve", "anthony": "tony",
        "nicholas": "nick", "timothy": "tim", "alexander": "alex", "patricia": "trish", "deborah": "debbie",
        "samantha": "sam", "abigail": "abby", "jessica": "jess", "frederick": "fred"}
FAMILY = ["smith", "jones", "williams", "taylor", "brown", "davies", "evans", "wilson", "thomas", "johnson",
          "roberts", "robinson", "thompson", "wright", "walker", "white", "edwards", "hughes", "green", "hall",
          "lewis", "harris", "clarke", "patel", "jackson", "wood", "turner", "martin", "cooper", "hill", "ward",
          "morris", "moore", "clark", "lee", "king", "baker", "harrison", "morgan", "allen", "james", "scott",
          "phillips", "watson", "davis", "parker", "price", "bennett", "young", "griffiths", "mitchell", "kelly",
          "cook", "carter", "richardson", "bailey", "collins", "bell", "shaw", "murphy", "miller", "cox",
          "richards", "khan", "marshall", "anderson", "simpson", "ellis", "adams", "singh", "begum", "wilkinson",
          "foster", "chapman", "powell", "webb", "rogers", "gray", "mason", "ali", "hunt", "hussain", "campbell",
          "matthews", "owen", "palmer", "holmes", "mills", "barnes", "knight", "lloyd", "butler", "russell",
          "barker", "fisher", "stevens", "jenkins", "murray", "dixon", "harvey", "graham", "pearson", "ahmed"]
STREET_A = ["church", "station", "mill", "park", "victoria", "high", "queens", "kings", "manor", "school",
            "london", "new", "north", "south", "west", "green", "meadow", "orchard", "chapel", "bridge", "grange",
            "hill", "windsor", "albert", "york", "springfield", "highfield", "beech", "oak", "elm", "willow",
            "ash", "cedar", "rowan", "hawthorn", "holly", "laurel", "maple", "poplar", "sycamore"]
STREET_B = ["road", "street", "lane", "avenue", "close", "drive", "way", "crescent", "gardens", "place"]
ABBREV = {"road": "rd", "street": "st", "lane": "ln", "avenue": "ave", "close": "cl", "drive": "dr",
          "crescent": "cres", "gardens": "gdns", "place": "pl", "way": "way"}
TOWNS = ["ashford", "brampton", "carlton", "denby", "elmstead", "fairford", "glenfield", "hartley"]
LSOAS_PER_TOWN = 6


def _check_digit(nine: np.ndarray) -> np.ndarray:
    weights = np.arange(10, 1, -1)
    total = (nine * weights).sum(axis=1)
    return (11 - total % 11) % 11


def make_county(n_people: int = 2000, seed: int = 7, records_per_person: float = 3.0) -> dict[str, pd.DataFrame]:
    """Return ``postcodes, gazetteer, records, truth`` frames.

    ``records`` is in the standard person record schema (plus ``uprn`` where a feed carries it); ``truth`` maps
    ``record_id -> person_id, household_id, uprn, lsoa_code``.
    """
    rng = np.random.default_rng(seed)
    n_households = max(1, int(n_people / 2.3))
    # --- geography: towns -> LSOAs -> postcodes -> addresses -------------------------------------------------
    n_postcodes = max(8, n_households // 12)
    pc_town = rng.integers(0, len(TOWNS), n_postcodes)
    pc_lsoa = np.array([f"E0100{t:02d}{rng.integers(0, LSOAS_PER_TOWN):02d}" for t in pc_town])
    postcodes = []
    seen = set()
    for i in range(n_postcodes):
        while True:
            pc = (f"{'ABCDEFGH'[pc_town[i]]}{'KLMN'[rng.integers(0, 4)]}{rng.integers(1, 20)} "
                  f"{rng.integers(1, 10)}{chr(65 + rng.integers(0, 26))}{chr(65 + rng.integers(0, 26))}")
            if pc not in seen:
                seen.add(pc)
                break
        postcodes.append(pc)
    postcodes_df = pd.DataFrame({"postcode": postcodes, "lsoa_code": pc_lsoa,
                                 "easting": rng.integers(400000, 500000, n_postcodes),
                                 "northing": rng.integers(200000, 300000, n_postcodes)})
    # each postcode is one street segment; a fifth of streets are blocks of flats
    n_addr = int(n_households * 1.15)
    addr_pc = rng.integers(0, n_postcodes, n_addr)
    street_of_pc = np.array([f"{STREET_A[rng.integers(0, len(STREET_A))]} {STREET_B[rng.integers(0, len(STREET_B))]}"
                             for _ in range(n_postcodes)])
    flats_pc = rng.random(n_postcodes) < 0.2
    counters: dict[int, int] = {}
    saon, paon = [], []
    for p in addr_pc:
        k = counters.get(p, 0) + 1
        counters[p] = k
        if flats_pc[p]:
            saon.append(f"flat {k}")
            paon.append(str(2 + 2 * (p % 7)))
        else:
            saon.append(None)
            paon.append(str(k))
    gaz = pd.DataFrame({
        "uprn": (100000000 + np.arange(n_addr) * 7 + 3).astype(str),
        "saon": saon, "paon": paon, "street": street_of_pc[addr_pc], "locality": None,
        "town": [TOWNS[pc_town[p]] for p in addr_pc], "postcode": [postcodes[p] for p in addr_pc],
        "easting": postcodes_df["easting"].to_numpy()[addr_pc], "northing": postcodes_df["northing"].to_numpy()[addr_pc],
        "lsoa_code": pc_lsoa[addr_pc],
    })
    gaz = gaz.drop_duplicates(["saon", "paon", "street", "postcode"]).reset_index(drop=True)
    # --- people and households --------------------------------------------------------------------------------
    hh_addr = rng.choice(len(gaz), n_households, replace=len(gaz) < n_households)
    person_hh = np.sort(rng.integers(0, n_households, n_people))
    hh_family = rng.choice(FAMILY, n_households)
    sex = rng.choice(["M", "F"], n_people)
    given = np.where(sex == "M", rng.choice(GIVEN_M, n_people), rng.choice(GIVEN_F, n_people))
    family = hh_family[person_hh]
    dob = (np.datetime64("1940-01-01") + rng.integers(0, 365 * 80, n_people)).astype("datetime64[D]")
    # twins: every 40th person gets a sibling in the same household with the same birthday
    twin = np.arange(n_people) % 40 == 1
    twin[0] = False
    dob[twin] = dob[np.where(twin)[0] - 1]
    person_hh[twin] = person_hh[np.where(twin)[0] - 1]
    family[twin] = family[np.where(twin)[0] - 1]
    nine = rng.integers(0, 10, (n_people, 9))
    nine[:, 0] = rng.integers(4, 7, n_people)
    cd = _check_digit(nine)
    ok = cd != 10
    nhs = np.array(["".join(map(str, r)) + str(c) if o else None for r, c, o in zip(nine, cd, ok, strict=True)],
                   dtype=object)
    moved = rng.random(n_people) < 0.1
    new_addr = rng.choice(len(gaz), n_people)
    people = pd.DataFrame({"person_id": [f"T{i:07d}" for i in range(n_people)],
                           "household_id": [f"HH{h:07d}" for h in person_hh], "given": given, "family": family,
                           "dob": pd.to_datetime(dob), "sex": sex, "nhs": nhs,
                           "addr": hh_addr[person_hh], "moved": moved, "new_addr": new_addr})
    # --- records ----------------------------------------------------------------------------------------------
    n_rec = rng.poisson(records_per_person - 1, n_people) + 1
    idx = np.repeat(np.arange(n_people), n_rec)
    n = len(idx)
    sources = np.array(["nhs.ae_attendances", "police.person_records", "county_council.social_care_referrals",
                        "district_councils.homelessness_presentations", "fire.safe_and_well_visits"])
    src = rng.choice(sources, n)
    p = people.iloc[idx].reset_index(drop=True)
    use_new = p["moved"].to_numpy() & (rng.random(n) < 0.5)
    addr_row = np.where(use_new, p["new_addr"].to_numpy(), p["addr"].to_numpy())
    g = gaz.iloc[addr_row].reset_index(drop=True)
    given_out = p["given"].to_numpy().astype(object).copy()
    u = rng.random(n)
    nick_mask = (u < 0.08) & np.array([x in NICK for x in given_out])
    given_out[nick_mask] = [NICK[x] for x in given_out[nick_mask]]
    family_out = p["family"].to_numpy().astype(object).copy()
    typo = rng.random(n) < 0.05
    family_out[typo] = [_typo(x, rng) for x in family_out[typo]]
    typo_g = rng.random(n) < 0.04
    given_out[typo_g] = [_typo(x, rng) for x in given_out[typo_g]]
    dob_out = p["dob"].dt.strftime("%Y-%m-%d").to_numpy().astype(object)
    swap = (rng.random(n) < 0.03) & (p["dob"].dt.day.to_numpy() <= 12)
    dob_out[swap] = [f"{d[:4]}-{d[8:10]}-{d[5:7]}" for d in dob_out[swap]]
    dob_out[rng.random(n) < 0.03] = None
    pc_out = g["postcode"].to_numpy().astype(object).copy()
    nospace = rng.random(n) < 0.1
    pc_out[nospace] = [x.replace(" ", "") for x in pc_out[nospace]]
    lower = rng.random(n) < 0.1
    pc_out[lower] = [x.lower() for x in pc_out[lower]]
    pc_out[rng.random(n) < 0.03] = None
    address_out = [_address_text(r, rng) for r in g.itertuples()]
    nhs_out = np.where(src == "nhs.ae_attendances", p["nhs"].to_numpy(), None)
    nhs_out[(rng.random(n) < 0.1)] = None
    cap = rng.random(n) < 0.5
    records = pd.DataFrame({
        "record_id": [f"{s}:{i:08d}" for i, s in enumerate(src)],
        "source": src,
        "given_name": [x.title() if c else x.upper() for x, c in zip(given_out, cap, strict=True)],
        "family_name": [x.title() if c else x.upper() for x, c in zip(family_out, cap, strict=True)],
        "date_of_birth": dob_out, "sex": p["sex"].to_numpy(), "postcode": pc_out, "address": address_out,
        "nhs_number": nhs_out,
        "uprn": np.where(src == "fire.safe_and_well_visits", g["uprn"].to_numpy(), None),
    })
    truth = pd.DataFrame({"record_id": records["record_id"], "person_id": p["person_id"],
                          "household_id": p["household_id"], "uprn": g["uprn"], "lsoa_code": g["lsoa_code"]})
    perm = rng.permutation(n)
    return {"postcodes": postcodes_df, "gazetteer": gaz, "records": records.iloc[perm].reset_index(drop=True),
            "truth": truth.iloc[perm].reset_index(drop=True)}


def _typo(s: str, rng) -> str:
    if len(s) < 4:
        return s
    i = int(rng.integers(1, len(s) - 1))
    kind = rng.integers(0, 3)
    if kind == 0:
        return s[:i] + s[i + 1:]
    if kind == 1:
        return s[:i] + s[i + 1] + s[i] + s[i + 2:]
    return s[:i] + "aeiou"[int(rng.integers(0, 5))] + s[i + 1:]


def _address_text(r, rng) -> str:
    street = r.street
    if rng.random() < 0.4:
        a, b = street.rsplit(" ", 1)
        street = f"{a} {ABBREV.get(b, b)}"
    parts = []
    if isinstance(r.saon, str) and r.saon:
        style = rng.integers(0, 3)
        num = r.saon.split()[-1]
        parts.append({0: f"flat {num},", 1: f"{num}/", 2: f"apartment {num}"}[int(style)])
    parts.append(f"{r.paon} {street}")
    if rng.random() < 0.6:
        parts.append(f", {r.town}")
    text = " ".join(parts).replace(" ,", ",").replace("/ ", "/")
    return text.upper() if rng.random() < 0.5 else text.title()


def write_home(home, county: dict[str, pd.DataFrame], records: pd.DataFrame | None = None) -> None:
    """Lay ``county`` out as a placelink home: reference CSVs, ``truth/records.parquet`` and
    ``link.person_records`` in the identifiable zone (``records`` overrides which records are loaded)."""
    import duckdb

    from orchestration.lib.config import get_settings

    s = get_settings(home=home).ensure()
    s.truth.mkdir(parents=True, exist_ok=True)
    county["gazetteer"].to_csv(s.reference / "gazetteer.csv", index=False)
    county["postcodes"].to_csv(s.reference / "postcodes.csv", index=False)
    t = county["truth"]
    src_id = t["record_id"].str.split(":", n=1, expand=True)
    partner_feed = src_id[0].str.split(".", n=1, expand=True)
    pd.DataFrame({"partner": partner_feed[0], "feed": partner_feed[1], "record_id": src_id[1],
                  "person_id": t["person_id"], "household_id": t["household_id"], "uprn": t["uprn"],
                  "lsoa_code": t["lsoa_code"]}).to_parquet(s.truth / "records.parquet", index=False)
    recs = county["records"] if records is None else records
    con = duckdb.connect(str(s.identifiable_db))
    con.register("_recs", recs)
    con.execute("CREATE SCHEMA IF NOT EXISTS link").fetchall()
    con.execute("""CREATE OR REPLACE TABLE link.person_records AS SELECT record_id, source, given_name, family_name,
        try_cast(date_of_birth AS DATE) AS date_of_birth, sex, postcode, address, nhs_number,
        try_cast(uprn AS BIGINT) AS uprn, NULL::VARCHAR AS age_band, NULL::DATE AS event_date,
        NULL::DATE AS "partition" FROM _recs""").fetchall()
    con.close()
