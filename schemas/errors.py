"""Reason codes: the one vocabulary for why a record was rejected.

Every DLQ record, every rejection counter label and every log line uses these codes.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ContractError", "ReasonCode"]


class ReasonCode(StrEnum):
    """Why a record went to a `.dlq` topic."""

    # decoding (schemas)
    BAD_ENCODING = "bad_encoding"  # not JSON / not an Arrow IPC stream / unknown format header
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"  # NaN or infinity
    NEGATIVE_VALUE = "negative_value"
    OUT_OF_RANGE = "out_of_range"
    BAD_ENUM = "bad_enum"  # kind, quality, colour, area ... outside its set
    UNKNOWN_UNIT = "unknown_unit"
    UNKNOWN_ENERGY_TYPE = "unknown_energy_type"
    BAD_TIME = "bad_time"  # unparsable, naive (no offset), or period_start >= ts
    # normalising (streams)
    BAD_QUALITY = "bad_quality"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    TOO_LATE = "too_late"
    # collectors
    DEVICE_ERROR = "device_error"  # exception code / bad status from the device
    # registry and benefit
    UNKNOWN_ACCOUNT = "unknown_account"
    UNKNOWN_BEHAVIOUR = "unknown_behaviour"


class ContractError(ValueError):
    """A record that breaks its contract. Carries a reason code and the field at fault.

    `row`: where the record sat in an Arrow batch of many (None: the message itself), so a
    bad row can go to the DLQ on its own (`schemas.codec.records_from_message` sets it).
    """

    def __init__(
        self, reason: ReasonCode, detail: str, field: str | None = None, row: int | None = None
    ) -> None:
        self.reason = ReasonCode(reason)
        self.detail = detail
        self.field = field
        self.row = row
        where = f" (field {field!r})" if field else ""
        super().__init__(f"{self.reason.value}{where}: {detail}")
