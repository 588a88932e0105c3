"""Validates wearhouse's exports in standard formats.

FHIR: each file must parse as an R4 (4.0.1) Bundle with fhir.resources, whose models check
types, cardinalities and choice types; on top of that every Observation is checked for what
wearhouse promises (LOINC codes, UCUM units, times with offsets, the pseudonymous subject, the
device) and those claiming a vital-signs profile for that profile's required category, code
and unit. Open mHealth: every data point must validate against data-point-1.0 and its body
against the schema its header names, read from the official schema library (formats such as
date-time checked). Each run must also see every kind the synthetic cohort holds, so an export
that silently drops one fails.
"""

import argparse
import json
import pathlib
import re
import sys

import fhir.resources
import jsonschema
import referencing
import referencing.jsonschema
from fhir.resources.bundle import Bundle

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
OFFSET = re.compile(r"T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$")
# The R4 vital-signs profiles wearhouse claims: required LOINC code and UCUM unit.
VITAL_SIGN_PROFILES = {
    "http://hl7.org/fhir/StructureDefinition/heartrate": ("8867-4", "/min"),
    "http://hl7.org/fhir/StructureDefinition/oxygensat": ("2708-6", "%"),
    "http://hl7.org/fhir/StructureDefinition/resprate": ("9279-1", "/min"),
}
# Observation.status is bound to this value set (required); the models check only its syntax.
STATUSES = {
    "registered", "preliminary", "final", "amended", "corrected", "cancelled",
    "entered-in-error", "unknown",
}
EXPECTED_LOINC = {"8867-4", "40443-4", "2708-6", "9279-1", "41950-7", "93832-4"}
EXPECTED_OMH = {
    "heart-rate",
    "step-count",
    "physical-activity",
    "sleep-episode",
    "oxygen-saturation",
    "respiratory-rate",
}
BASE = "https://w3id.org/openmhealth/schemas/omh/"


def problem(problems, where, message):
    problems.append(f"{where}: {message}")


def check_observation(o, where, problems):
    if o.get("status") not in STATUSES:
        problem(problems, where, f"status {o.get('status')!r} is not an ObservationStatus code")
    codes = [c.get("code") for c in o.get("code", {}).get("coding", [])]
    if not codes or any(c.get("system") != LOINC for c in o["code"]["coding"]):
        problem(problems, where, f"code is not LOINC: {o.get('code')}")
    q = o.get("valueQuantity", {})
    if q.get("system") != UCUM or not q.get("code"):
        problem(problems, where, f"valueQuantity is not UCUM: {q}")
    times = [o["effectiveDateTime"]] if "effectiveDateTime" in o else []
    times += [o.get("effectivePeriod", {}).get(k) for k in ("start", "end") if "effectivePeriod" in o]
    if not times or not all(t and OFFSET.search(t) for t in times):
        problem(problems, where, f"effective time without an offset: {times}")
    if not o.get("subject", {}).get("identifier", {}).get("value"):
        problem(problems, where, "no pseudonymous subject identifier")
    if not o.get("device"):
        problem(problems, where, "no device")
    for profile in o.get("meta", {}).get("profile", []):
        code, unit = VITAL_SIGN_PROFILES[profile]
        categories = [
            (c.get("system"), c.get("code"))
            for cat in o.get("category", [])
            for c in cat.get("coding", [])
        ]
        if (CATEGORY, "vital-signs") not in categories:
            problem(problems, where, f"{profile} without the vital-signs category")
        if code not in codes:
            problem(problems, where, f"{profile} without LOINC {code}: {codes}")
        if q.get("code") != unit:
            problem(problems, where, f"{profile} in {q.get('code')!r}, not {unit!r}")
    return codes


def validate_fhir(paths, problems):
    seen = set()
    for path in paths:
        doc = json.loads(pathlib.Path(path).read_text())
        try:
            Bundle.parse_obj(doc)
        except Exception as e:  # the models' own message names the element
            problem(problems, path, f"not a valid FHIR R4 Bundle: {e}")
            continue
        if doc.get("type") != "collection":
            problem(problems, path, f"Bundle.type is {doc.get('type')!r}")
        for i, entry in enumerate(doc.get("entry", [])):
            o = entry["resource"]
            if o.get("resourceType") != "Observation":
                problem(problems, f"{path} entry {i}", "not an Observation")
                continue
            seen.update(check_observation(o, f"{path} entry {i}", problems))
    for code in sorted(EXPECTED_LOINC - seen):
        problem(problems, "FHIR exports", f"no Observation with LOINC {code}")


def load_schemas(folder):
    """Every schema of the library under its canonical address. A `-1.x.json` file may be a
    link kept as text (the name of the file it stands for)."""
    resources = []
    for f in sorted(pathlib.Path(folder).glob("*.json")):
        text = f.read_text().strip()
        if not text.startswith("{"):
            text = (f.parent / text).read_text()
        contents = json.loads(text)
        resource = referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT4
        )
        resources.append((BASE + f.name, resource))
    return referencing.Registry().with_resources(resources)


def validator(registry, name):
    schema = registry.contents(BASE + name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(
        {"$ref": BASE + name}, registry=registry, format_checker=cls.FORMAT_CHECKER
    )


def validate_omh_points(points, where, registry, problems, seen):
    data_point = validator(registry, "data-point-1.0.json")
    bodies = {}
    for i, p in enumerate(points):
        for e in data_point.iter_errors(p):
            problem(problems, f"{where} point {i}", f"data-point-1.0: {e.message}")
        sid = p.get("header", {}).get("schema_id", {})
        name = f"{sid.get('name')}-{sid.get('version')}.json"
        if sid.get("namespace") != "omh" or not (pathlib.Path(FOLDER) / name).exists():
            problem(problems, f"{where} point {i}", f"unknown schema {sid}")
            continue
        if name not in bodies:
            bodies[name] = validator(registry, name)
        for e in bodies[name].iter_errors(p["body"]):
            path = "/".join(str(x) for x in e.absolute_path)
            problem(problems, f"{where} point {i}", f"{name} at /{path}: {e.message}")
        seen.add(sid.get("name"))


def without_ids(points):
    out = []
    for p in points:
        p = json.loads(json.dumps(p))
        p["header"].pop("id", None)
        p["header"].pop("creation_date_time", None)
        out.append(p)
    return out


FOLDER = ""


def main():
    global FOLDER
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--schemas", required=True, help="the Open mHealth schema/omh folder")
    ap.add_argument("--fhir", nargs="*", default=[])
    ap.add_argument("--omh", nargs="*", default=[])
    ap.add_argument("--omh-ndjson", nargs="*", default=[])
    args = ap.parse_args()
    FOLDER = args.schemas
    problems = []
    if fhir.resources.__fhir_version__ != "4.0.1":
        problem(problems, "fhir.resources", f"models FHIR {fhir.resources.__fhir_version__}, not R4")
    validate_fhir(args.fhir, problems)
    registry = load_schemas(args.schemas)
    seen = set()
    arrays = {}
    for path in args.omh:
        points = json.loads(pathlib.Path(path).read_text())
        if not isinstance(points, list):
            problem(problems, path, "not a JSON array")
            continue
        arrays[pathlib.Path(path).name.split(".")[0]] = points
        validate_omh_points(points, path, registry, problems, seen)
    for path in args.omh_ndjson:
        lines = pathlib.Path(path).read_text().splitlines()
        points = [json.loads(line) for line in lines]
        validate_omh_points(points, path, registry, problems, seen)
        same = arrays.get(pathlib.Path(path).name.split(".")[0])
        if same is not None and without_ids(same) != without_ids(points):
            problem(problems, path, "differs from the JSON array of the same export")
    for name in sorted(EXPECTED_OMH - seen):
        problem(problems, "Open mHealth exports", f"no {name} data point")
    for p in problems[:50]:
        print(p, file=sys.stderr)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more", file=sys.stderr)
    total = len(args.fhir) + len(args.omh) + len(args.omh_ndjson)
    print(f"{total} files checked, {len(problems)} problem(s); seen OMH {sorted(seen)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
