"""Small UMLS Metathesaurus (RRF) and SNOMED CT RF2 snapshot files, written in exactly the release formats.

The rows are modelled on real releases (pneumonia, lung disease, lung structure), with the cases loaders must
handle: a French atom, suppressed and obsolete atoms, an inactive concept, stated and inferred relationships,
US and GB language preferences.
"""

from pathlib import Path

MRCONSO = """\
C0000005|FRE|P|L0270109|PF|S0362243|Y|A0016458||M0019694|D012711|MSHFRE|EN|D012711|Albumine macroagrégée (131I)|3|N||
C0000005|ENG|P|L0000005|PF|S0007492|Y|A26634265||M0019694|D012711|MSH|PEP|D012711|(131)I-Macroaggregated Albumin|0|O||
C0024109|ENG|P|L0024109|PF|S0059130|Y|A0084282||M0012655|D008168|MSH|MH|D008168|Lung|0|N|256|
C0024109|ENG|S|L0848432|PF|S1003587|Y|A2879946|1235543015|39607008||SNOMEDCT_US|PT|39607008|Lung structure|9|N|256|
C0024115|ENG|P|L0024115|PF|S0059135|Y|A0084290||M0012661|D008171|MSH|MH|D008171|Lung Diseases|0|N|256|
C0024115|ENG|S|L0339520|PF|S0451564|Y|A2882409|33081016|19829001||SNOMEDCT_US|PT|19829001|Disorder of lung|9|N|256|
C0032285|ENG|S|L0032300|PF|S0077745|Y|A0106305||M0017214|D011014|MSH|ET|D011014|Pneumonitis|0|N|256|
C0032285|ENG|P|L0032285|PF|S0077735|Y|A0106282||M0017214|D011014|MSH|MH|D011014|Pneumonia|0|N|256|
C0032285|ENG|P|L0032285|VO|S0077736|Y|A2878223|350049016|233604007||SNOMEDCT_US|FN|233604007|Pneumonia (disorder)|9|N||
C0032285|ENG|P|L0032285|PF|S0077735|N|A2878224|621810017|233604007||SNOMEDCT_US|PT|233604007|pneumonia|9|N|256|
C0032285|ENG|S|L1185398|PF|S1413618|Y|A3295563|395716016|266391003||SNOMEDCT_US|OAP|266391003|Pneumonia NOS|9|O|256|
C0032285|ENG|S|L6155431|PF|S7078340|Y|A32769573|||J18.9|ICD10CM|PT|J18.9|Pneumonia, unspecified organism|0|N||
C0032285|FRE|P|L0216867|PF|S0299426|Y|A0341268||M0017214|D011014|MSHFRE|MH|D011014|Pneumonie|3|N||
C0032300|ENG|P|L0032300|PF|S0077766|Y|A0106338||M0017222|D011018|MSH|MH|D011018|Pneumonia, Lobar|0|N|256|
"""
MRDEF = """\
C0032285|A0106282|AT38152019||MSH|Inflammation of any part of the lung parenchyma.|N||
C0032285|A0341268|AT231204543||MSHFRE|Inflammation du parenchyme pulmonaire.|N||
C0032285|A0106282|AT38152020||MSH|An old definition.|O||
"""
MRSTY = """\
C0000005|T116|A1.4.1.2.1.7|Amino Acid, Peptide, or Protein|AT17648347|256|
C0024109|T023|A1.2.3.1|Body Part, Organ, or Organ Component|AT17683839|256|
C0024115|T047|B2.2.1.2.1|Disease or Syndrome|AT17688150|256|
C0032285|T047|B2.2.1.2.1|Disease or Syndrome|AT17740328|256|
C0032300|T047|B2.2.1.2.1|Disease or Syndrome|AT17741061|256|
"""
MRREL = """\
C0024109|A2879946|SCUI|RO|C0032285|A2878223|SCUI|has_finding_site|R102717135||SNOMEDCT_US|SNOMEDCT_US|0|N|N||
C0024115|A2882409|SCUI|CHD|C0032285|A2878223|SCUI|isa|R27651234||SNOMEDCT_US|SNOMEDCT_US|0|Y|N||
C0032285|A0106282|SDUI|PAR|C0024115|A0084290|SDUI||R31753398||MSH|MSH|||N||
C0032285|A2878223|SCUI|PAR|C0024115|A2882409|SCUI|inverse_isa|R27651235||SNOMEDCT_US|SNOMEDCT_US|0|N|N||
C0032285|A2878223|SCUI|RO|C0024109|A2879946|SCUI|finding_site_of|R102717136||SNOMEDCT_US|SNOMEDCT_US|0|Y|N||
C0032285|A0106282|SDUI|CHD|C0032300|A0106338|SDUI||R31753399||MSH|MSH|||N||
C0032285|A0106282|SDUI|PAR|C0032285|A0106282|SDUI||R31753400||MSH|MSH|||N||
C0032300|A0106338|SDUI|PAR|C0032285|A0106282|SDUI||R31753401||MSH|MSH|||N||
"""


def write_umls(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True)
    contents = {"MRCONSO": MRCONSO, "MRDEF": MRDEF, "MRSTY": MRSTY, "MRREL": MRREL} | files
    for name, text in contents.items():
        if text is not None:
            (folder / f"{name}.RRF").write_text(text, encoding="utf-8")
    return folder


CORE = "900000000000207008"  # SNOMED CT core module
PRIMITIVE = "900000000000074008"
FSN, SYNONYM, TEXT_DEFINITION = "900000000000003001", "900000000000013009", "900000000000550004"
CASE = "900000000000448009"  # case insensitive
IS_A, FINDING_SITE = "116680003", "363698007"
INFERRED, STATED, EXISTENTIAL = "900000000000011006", "900000000000010007", "900000000000451002"
US, GB = "900000000000509007", "900000000000508004"
PREFERRED, ACCEPTABLE = "900000000000548007", "900000000000549004"


def rf2(*fields: str) -> str:
    return "\t".join(fields)


CONCEPTS = [
    rf2("id", "effectiveTime", "active", "moduleId", "definitionStatusId"),
    rf2("19829001", "20020131", "1", CORE, PRIMITIVE),
    rf2("233604007", "20020131", "1", CORE, PRIMITIVE),
    rf2("266391003", "20090731", "0", CORE, PRIMITIVE),
    rf2("39607008", "20020131", "1", CORE, PRIMITIVE),
]
DESCRIPTIONS = [
    rf2(
        "id", "effectiveTime", "active", "moduleId", "conceptId", "languageCode", "typeId", "term", "caseSignificanceId"
    ),
    rf2("33081016", "20170731", "1", CORE, "19829001", "en", SYNONYM, "Disorder of lung", CASE),
    rf2("824843014", "20170731", "1", CORE, "19829001", "en", FSN, "Disorder of lung (disorder)", CASE),
    rf2("350049016", "20020131", "1", CORE, "233604007", "en", FSN, "Pneumonia (disorder)", CASE),
    rf2("621810017", "20020131", "1", CORE, "233604007", "en", SYNONYM, "Pneumonia", CASE),
    rf2("2975781017", "20170731", "1", CORE, "233604007", "en", SYNONYM, "Pneumonitis", CASE),
    rf2("3021590011", "20170731", "1", CORE, "233604007", "en", SYNONYM, "Lung infection (GB)", CASE),
    rf2("395716016", "20020131", "0", CORE, "233604007", "en", SYNONYM, "Pneumonia NOS", CASE),
    rf2("395717013", "20090731", "1", CORE, "266391003", "en", FSN, "Pneumonia NOS (disorder)", CASE),
    rf2("1235543015", "20170731", "1", CORE, "39607008", "en", SYNONYM, "Lung structure", CASE),
    rf2("2843400016", "20170731", "1", CORE, "39607008", "en", FSN, "Lung structure (body structure)", CASE),
]
DEFINITIONS = [
    DESCRIPTIONS[0],
    rf2(
        "3783981016",
        "20190131",
        "1",
        CORE,
        "233604007",
        "en",
        TEXT_DEFINITION,
        "Inflammation of lung parenchyma.",
        CASE,
    ),
]
RELATIONSHIPS = [
    rf2(
        "id", "effectiveTime", "active", "moduleId", "sourceId", "destinationId", "relationshipGroup", "typeId",
        "characteristicTypeId", "modifierId",
    ),
    rf2("1960237023", "20020131", "1", CORE, "233604007", "19829001", "0", IS_A, INFERRED, EXISTENTIAL),
    rf2("3190469021", "20020131", "1", CORE, "233604007", "39607008", "1", FINDING_SITE, INFERRED, EXISTENTIAL),
    rf2("5600010024", "20020131", "1", CORE, "233604007", "50043002", "0", IS_A, STATED, EXISTENTIAL),
    rf2("2468501028", "20020131", "0", CORE, "233604007", "205237003", "0", IS_A, INFERRED, EXISTENTIAL),
    rf2("3478270023", "20020131", "1", CORE, "19829001", "50043002", "0", IS_A, STATED, EXISTENTIAL),
]  # fmt: skip
LANGUAGE = [
    rf2("id", "effectiveTime", "active", "moduleId", "refsetId", "referencedComponentId", "acceptabilityId"),
    rf2("b5b7c6e2-1a1b-5d5e-9f0a-000000000001", "20020131", "1", CORE, US, "621810017", PREFERRED),
    rf2("b5b7c6e2-1a1b-5d5e-9f0a-000000000002", "20170731", "1", CORE, US, "2975781017", ACCEPTABLE),
    rf2("b5b7c6e2-1a1b-5d5e-9f0a-000000000003", "20020131", "1", CORE, US, "350049016", PREFERRED),
    rf2("b5b7c6e2-1a1b-5d5e-9f0a-000000000004", "20170731", "1", CORE, GB, "3021590011", PREFERRED),
    rf2("b5b7c6e2-1a1b-5d5e-9f0a-000000000005", "20170731", "1", CORE, US, "33081016", PREFERRED),
    rf2("b5b7c6e2-1a1b-5d5e-9f0a-000000000006", "20170731", "0", CORE, US, "1235543015", PREFERRED),
]


def write_snomed(root: Path, language: bool = True, **overrides: list[str]) -> Path:
    tables = {
        "Terminology/sct2_Concept_Snapshot_INT_20250101.txt": CONCEPTS,
        "Terminology/sct2_Description_Snapshot-en_INT_20250101.txt": DESCRIPTIONS,
        "Terminology/sct2_TextDefinition_Snapshot-en_INT_20250101.txt": DEFINITIONS,
        "Terminology/sct2_Relationship_Snapshot_INT_20250101.txt": RELATIONSHIPS,
    }
    if language:
        tables["Refset/Language/der2_cRefset_LanguageSnapshot-en_INT_20250101.txt"] = LANGUAGE
    for name, rows in tables.items():
        path = root / "SnomedCT_InternationalRF2_PRODUCTION_20250101T120000Z" / "Snapshot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes("".join(f"{row}\r\n" for row in overrides.get(path.name.split("_")[1], rows)).encode())
    return root


# A two-term OBO ontology; its pneumonia carries the CUI of the imaging knowledge's pneumonia.
OBO = """format-version: 1.2
data-version: releases/2026-01-01
ontology: test

[Term]
id: TEST:1
name: lung disease
def: "A disease of the lung." []

[Term]
id: TEST:2
name: pneumonia
def: "Inflammation of the lung." []
synonym: "lung inflammation" EXACT []
xref: UMLS_CUI:C0032285
is_a: TEST:1 ! lung disease
"""
