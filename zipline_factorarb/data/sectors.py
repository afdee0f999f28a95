"""GICS sector codes and asset types shared by the bundles and the pipeline.

Sectors are stored in the asset db as the two-digit GICS sector code, so the
``Sector`` classifier yields the same integers whatever the source file
called them. Codes are those of the GICS standard (2018 structure); the
pre-2018 "Telecommunication Services" sector maps to Communication Services.
"""

UNKNOWN_SECTOR = -1

GICS_SECTORS = {
    10: "Energy",
    15: "Materials",
    20: "Industrials",
    25: "Consumer Discretionary",
    30: "Consumer Staples",
    35: "Health Care",
    40: "Financials",
    45: "Information Technology",
    50: "Communication Services",
    55: "Utilities",
    60: "Real Estate",
}

_ALIASES = {
    "telecommunication services": 50,
    "telecommunications services": 50,
    "telecom": 50,
    "communications": 50,
    "technology": 45,
    "it": 45,
    "information tech": 45,
    "healthcare": 35,
    "consumer cyclical": 25,
    "consumer defensive": 30,
    "basic materials": 15,
    "financial services": 40,
    "financial": 40,
    "real-estate": 60,
}

_BY_NAME = {name.lower(): code for code, name in GICS_SECTORS.items()}
_BY_NAME.update(_ALIASES)

ASSET_TYPES = ("stock", "etf", "index")
ASSET_TYPE_CODES = {name: code for code, name in enumerate(ASSET_TYPES)}
UNKNOWN_ASSET_TYPE = -1


def sector_code(value):
    """Map a GICS sector name, alias or code to its two-digit code.

    Empty values give :data:`UNKNOWN_SECTOR`; anything else that is not a
    GICS sector raises ``KeyError`` with the accepted names.
    """
    if value is None:
        return UNKNOWN_SECTOR
    if isinstance(value, float):
        if value != value:  # NaN
            return UNKNOWN_SECTOR
        value = int(value)
    if isinstance(value, int):
        if value in GICS_SECTORS:
            return value
        raise KeyError(_unknown_sector(value))
    text = str(value).strip()
    if not text or text.lower() in ("nan", "none", "unknown", "-1"):
        return UNKNOWN_SECTOR
    if text.isdigit() and int(text) in GICS_SECTORS:
        return int(text)
    try:
        return _BY_NAME[text.lower()]
    except KeyError:
        raise KeyError(_unknown_sector(text)) from None


def _unknown_sector(value):
    names = ", ".join(f"{code} {name}" for code, name in GICS_SECTORS.items())
    return f"unknown sector {value!r}; use a GICS sector name or code ({names}) or leave it empty"


def asset_type_code(value):
    """Map ``stock`` / ``etf`` / ``index`` (any case) to its integer code."""
    text = str(value).strip().lower()
    if text in ASSET_TYPE_CODES:
        return ASSET_TYPE_CODES[text]
    raise KeyError(f"unknown asset type {value!r}; use one of {', '.join(ASSET_TYPES)}")
