"""Exchange agreements: which flights, travellers and columns a partner receives.

An agreement is a TOML file in this folder (``tw-jp.toml`` is the default), so a second partner
is a new file, not new code. :func:`load_agreement` reads one by name or path and checks it;
:func:`list_agreements` reads every file here (what ``exchange_partners`` runs by default, and
what the embedded stack makes partner buckets and keys for).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

AGREEMENTS_DIR = Path(__file__).resolve().parent
DEFAULT_AGREEMENT = "tw-jp"

# The v1 record, in contract order (docs/partner-guide.md); never renamed or dropped.
V1_COLUMNS = (
    "record_id",
    "schema_version",
    "flight_key",
    "carrier_code",
    "flight_number",
    "dep_airport",
    "arr_airport",
    "sched_departure_local",
    "sched_arrival_local",
    "sched_departure_utc",
    "flight_date",
    "traveller_type",
    "surname",
    "given_names",
    "sex",
    "date_of_birth",
    "nationality",
    "residence_country",
    "embark_airport",
    "debark_airport",
    "doc_type",
    "doc_number",
    "doc_issuing_state",
    "doc_expiry_date",
    "doc_match_hmac",
    "hmac_key_id",
    "dq_flags",
    "message_function",
    "manifest_revision",
    "source_object",
    "source_sha256",
    "received_at",
    "published_at",
)
# Version 2 adds columns at the end and changes nothing of v1 (docs/partner-guide.md, "Versions"):
# every nationality sent (v1 keeps the first) and the format the record came in.
V2_COLUMNS = (*V1_COLUMNS, "nationalities", "source_format")
# Version 3 has v2's columns; its drops are laid out for stock readers: the partition columns
# live in the folder names only and the metadata files start with "_" (decision 0024).
V3_COLUMNS = V2_COLUMNS
COLUMNS_BY_VERSION = {"1": V1_COLUMNS, "2": V2_COLUMNS, "3": V3_COLUMNS}
# Columns an agreement may add, by name; anything else is refused when the file is read.
OPTIONAL_COLUMNS = ("pnr_locator", "seat", "passenger_ref")
TRAVELLER_TYPES = ("PASSENGER", "TRANSIT", "CREW")
# The partner's tools acknowledge a drop as they fetch it; an hour leaves room for a poll
# interval and a retry without letting a lost drop go unnoticed for a day.
DEFAULT_RECEIPT_DUE_MINUTES = 60.0


class AgreementError(ValueError):
    """An agreement file is missing or does not describe a valid agreement."""


@dataclass(frozen=True)
class Agreement:
    """What one partner receives.

    Attributes:
        name: short id, also the default partner prefix (``tw-jp``).
        origin_country, destination_country: ISO alpha-3 countries of the departure and
            arrival airports of the flights in scope.
        traveller_types: which of PASSENGER, TRANSIT, CREW are in scope.
        excluded_nationalities: travellers with any of these nationalities are out of scope.
        extra_columns: columns beyond the schema version's that the partner receives.
        partner_location: default ``s3://bucket/prefix`` of the partner's drops; drops go under
            ``v<schema_version>/drops/`` there, so two versions can be published side by side.
        hmac_key_id: the id of the document-matching key agreed with this partner (looked up
            in the pipeline's keyring); None uses the pipeline's default key.
        receipts_location: ``s3://bucket/prefix`` where the partner acknowledges drops
            (``<prefix>/v<schema_version>/<drop_id>.json``): a bucket only that partner writes.
            Default: ``s3://<partner bucket>-receipts/<partner prefix>``.
        receipt_due_minutes: how long after a drop is complete its receipt may take before
            reconciliation reports the drop as unacknowledged.
        require_receipt: the retention purge deletes a source manifest only once every drop it
            went into has a receipt that names the drop's manifest as published.
    """

    name: str
    description: str
    schema_version: str
    origin_country: str
    destination_country: str
    traveller_types: tuple[str, ...]
    excluded_nationalities: tuple[str, ...]
    extra_columns: tuple[str, ...]
    partner_location: str
    hmac_key_id: str | None = None
    receipts_location: str = ""
    receipt_due_minutes: float = DEFAULT_RECEIPT_DUE_MINUTES
    require_receipt: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        """The published columns: the schema version's, then the agreement's extras."""
        return COLUMNS_BY_VERSION[self.schema_version] + self.extra_columns

    @property
    def partner_bucket(self) -> str:
        return _bucket(self.partner_location)

    @property
    def receipts_bucket(self) -> str:
        return _bucket(self.receipts_location)


def _bucket(location: str) -> str:
    return location.removeprefix("s3://").split("/", 1)[0]


def default_receipts_location(partner_location: str) -> str:
    """A bucket of its own beside the partner's (only the partner writes it), same prefix."""
    bucket, _, prefix = partner_location.removeprefix("s3://").partition("/")
    return f"s3://{bucket}-receipts/{prefix}".rstrip("/")


def load_agreement(name_or_path: str = DEFAULT_AGREEMENT) -> Agreement:
    """Read an agreement by name (a file in this folder) or by the path of a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = AGREEMENTS_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in AGREEMENTS_DIR.glob("*.toml"))
        raise AgreementError(f"no agreement {name_or_path!r}; known: {', '.join(known)}")
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        agreement = Agreement(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            schema_version=str(raw.get("schema_version", "1")),
            origin_country=str(raw["origin_country"]).upper(),
            destination_country=str(raw["destination_country"]).upper(),
            traveller_types=tuple(str(t).upper() for t in raw["traveller_types"]),
            excluded_nationalities=tuple(
                str(c).upper() for c in raw.get("excluded_nationalities", [])
            ),
            extra_columns=tuple(str(c) for c in raw.get("extra_columns", [])),
            partner_location=str(raw["partner_location"]),
            hmac_key_id=str(raw["hmac_key_id"]) if raw.get("hmac_key_id") else None,
            receipts_location=str(
                raw.get("receipts_location")
                or default_receipts_location(str(raw["partner_location"]))
            ),
            receipt_due_minutes=float(raw.get("receipt_due_minutes", DEFAULT_RECEIPT_DUE_MINUTES)),
            require_receipt=_boolean(raw.get("require_receipt", False), "require_receipt", path),
        )
    except KeyError as missing:
        raise AgreementError(f"{path}: missing setting {missing}") from None
    _check(agreement, path)
    return agreement


def _check(agreement: Agreement, path: Path) -> None:
    problems = []
    if agreement.schema_version not in COLUMNS_BY_VERSION:
        known = ", ".join(repr(v) for v in COLUMNS_BY_VERSION)
        problems.append(f"schema_version {agreement.schema_version!r} (this build writes {known})")
    for field_name in ("origin_country", "destination_country"):
        value = getattr(agreement, field_name)
        if len(value) != 3 or not value.isalpha():
            problems.append(f"{field_name} {value!r} is not an alpha-3 code")
    unknown_types = set(agreement.traveller_types) - set(TRAVELLER_TYPES)
    if unknown_types or not agreement.traveller_types:
        problems.append(f"traveller_types must be some of {TRAVELLER_TYPES}")
    unknown_columns = set(agreement.extra_columns) - set(OPTIONAL_COLUMNS)
    if unknown_columns:
        problems.append(f"extra_columns {sorted(unknown_columns)} not in {OPTIONAL_COLUMNS}")
    if not agreement.partner_location.startswith("s3://") or not agreement.partner_bucket:
        problems.append("partner_location must be an s3://bucket/prefix URL")
    if not agreement.receipts_location.startswith("s3://") or not agreement.receipts_bucket:
        problems.append("receipts_location must be an s3://bucket/prefix URL")
    elif agreement.receipts_bucket == agreement.partner_bucket:
        # The pipeline writes the partner bucket; receipts must be the partner's word alone.
        problems.append("receipts_location must be a bucket of its own, not the partner bucket")
    if agreement.receipt_due_minutes <= 0:
        problems.append("receipt_due_minutes must be more than 0")
    if agreement.name != path.stem:
        problems.append(f"name {agreement.name!r} differs from the file name {path.stem!r}")
    if problems:
        raise AgreementError(f"{path}: " + "; ".join(problems))


def _boolean(value: object, name: str, path: Path) -> bool:
    # TOML has booleans; a quoted "false" would otherwise read as true.
    if not isinstance(value, bool):
        raise AgreementError(f"{path}: {name} must be true or false")
    return value


def list_agreements(directory: Path = AGREEMENTS_DIR) -> list[Agreement]:
    """Every agreement file in ``directory``, by name."""
    return [load_agreement(str(path)) for path in sorted(directory.glob("*.toml"))]
