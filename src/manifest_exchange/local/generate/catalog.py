"""What the synthetic traffic is made of: routes out of Taiwan, carriers, names, document formats.

Airports' countries, coordinates and time zones come from the shipped airport table
(:mod:`manifest_exchange.reference`), never from here.
"""

from __future__ import annotations

# (departure, arrival, carriers operating it, relative daily frequency)
ROUTES: list[tuple[str, str, tuple[str, ...], int]] = [
    ("TPE", "NRT", ("CI", "BR", "JX", "IT", "JL", "NH", "MM", "GK"), 16),
    ("TPE", "HND", ("CI", "BR", "JL", "NH"), 8),
    ("TSA", "HND", ("CI", "BR", "JL", "NH"), 6),
    ("TPE", "KIX", ("CI", "BR", "JX", "IT", "MM", "GK"), 12),
    ("KHH", "KIX", ("CI", "BR", "IT", "MM"), 4),
    ("TPE", "NGO", ("CI", "BR", "JX", "IT"), 4),
    ("TPE", "FUK", ("CI", "BR", "JX", "IT"), 5),
    ("KHH", "NRT", ("CI", "BR", "IT"), 3),
    ("TPE", "CTS", ("CI", "BR", "JX", "IT"), 4),
    ("TPE", "OKA", ("CI", "BR", "JX", "IT", "MM"), 5),
    ("KHH", "OKA", ("IT", "MM"), 2),
    ("TPE", "SDJ", ("CI", "BR", "JX", "IT"), 2),
    ("TPE", "HIJ", ("CI",), 1),
    ("TPE", "OKJ", ("IT",), 1),
    ("TPE", "KMJ", ("CI", "JX", "IT"), 2),
    ("TPE", "KOJ", ("CI", "IT"), 1),
    ("TPE", "TAK", ("IT",), 1),
    ("TPE", "ISG", ("CI",), 1),
    ("RMQ", "NRT", ("IT",), 1),
    ("RMQ", "KIX", ("IT",), 1),
    ("TNN", "KIX", ("IT",), 1),
    ("HUN", "KIX", ("IT",), 1),
    # Other destinations share the feed; they are out of the tw-jp agreement's scope.
    ("TPE", "HKG", ("CI", "BR", "CX"), 8),
    ("TPE", "ICN", ("CI", "BR", "KE", "OZ", "JX"), 7),
    ("TPE", "BKK", ("CI", "BR", "TG", "JX"), 5),
    ("TPE", "SIN", ("CI", "BR", "SQ", "JX"), 4),
    ("TPE", "MNL", ("CI", "BR", "PR", "JX"), 4),
    ("TPE", "SGN", ("CI", "BR", "VN", "JX"), 3),
    ("KHH", "HKG", ("CI", "CX"), 2),
    ("TPE", "LAX", ("CI", "BR", "JX"), 2),
    ("TPE", "SFO", ("CI", "BR", "UA"), 2),
    ("TPE", "SYD", ("CI",), 1),
    ("TPE", "BNE", ("CI",), 1),
]

# Departures from Japan that do not go to Taiwan, for the reciprocal (jp-tw) direction's feed
# (the Japan -> Taiwan routes are the Taiwan -> Japan ones flown back).
ROUTES_FROM_JAPAN_ELSEWHERE: list[tuple[str, str, tuple[str, ...], int]] = [
    ("NRT", "ICN", ("JL", "NH", "KE"), 10),
    ("HND", "HKG", ("JL", "NH", "CX"), 8),
    ("KIX", "BKK", ("JL", "TG"), 5),
    ("NRT", "HNL", ("JL", "NH"), 5),
    ("HND", "SIN", ("JL", "NH", "SQ"), 4),
]

# Multi-leg (progressive) flights: the whole itinerary under one flight number.
PROGRESSIVE_ROUTES: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("KHH", "TPE", "NRT"), ("CI", "BR")),  # domestic first leg: the leg leaving Taiwan is TPE-NRT
    (("TPE", "NRT", "HNL"), ("CI", "JL")),  # enters Japan at NRT, continues to Honolulu
    (("TPE", "KIX", "GUM"), ("BR",)),
    (("TPE", "OKA", "KIX"), ("JX",)),
]

CARRIER_NAMES: dict[str, str] = {
    "CI": "CHINA AIRLINES",
    "BR": "EVA AIRWAYS",
    "JX": "STARLUX AIRLINES",
    "IT": "TIGERAIR TAIWAN",
    "JL": "JAPAN AIRLINES",
    "NH": "ALL NIPPON AIRWAYS",
    "MM": "PEACH AVIATION",
    "GK": "JETSTAR JAPAN",
    "CX": "CATHAY PACIFIC",
    "KE": "KOREAN AIR",
    "OZ": "ASIANA AIRLINES",
    "TG": "THAI AIRWAYS",
    "SQ": "SINGAPORE AIRLINES",
    "PR": "PHILIPPINE AIRLINES",
    "VN": "VIETNAM AIRLINES",
    "UA": "UNITED AIRLINES",
}

WIDEBODY_CARRIERS = frozenset({"CI", "BR", "JX", "JL", "NH", "CX", "KE", "TG", "SQ", "UA"})

# Nationality mix on flights from Taiwan to Japan (other routes reuse it with fewer JPN).
NATIONALITY_WEIGHTS: list[tuple[str, int]] = [
    ("TWN", 520),
    ("JPN", 220),
    ("KOR", 40),
    ("USA", 35),
    ("HKG", 25),
    ("PHL", 20),
    ("THA", 18),
    ("VNM", 18),
    ("MYS", 14),
    ("SGP", 12),
    ("IDN", 12),
    ("GBR", 12),
    ("DEU", 10),
    ("FRA", 9),
    ("AUS", 9),
    ("CAN", 8),
    ("XXA", 1),
]

SURNAMES: dict[str, list[str]] = {
    "TWN": [
        "CHEN",
        "LIN",
        "HUANG",
        "CHANG",
        "LEE",
        "WANG",
        "WU",
        "LIU",
        "TSAI",
        "YANG",
        "HSU",
        "CHENG",
        "HSIEH",
        "KUO",
        "HUNG",
        "TSENG",
        "CHIU",
        "LIAO",
        "LAI",
        "CHOU",
        "YEH",
        "SU",
    ],
    "JPN": [
        "SATO",
        "SUZUKI",
        "TAKAHASHI",
        "TANAKA",
        "WATANABE",
        "ITO",
        "YAMAMOTO",
        "NAKAMURA",
        "KOBAYASHI",
        "KATO",
        "YOSHIDA",
        "YAMADA",
        "SASAKI",
        "MATSUMOTO",
        "INOUE",
        "KIMURA",
    ],
    "KOR": ["KIM", "LEE", "PARK", "CHOI", "JUNG", "KANG", "CHO", "YOON", "JANG", "LIM"],
    "HKG": ["CHAN", "WONG", "LEUNG", "CHEUNG", "LAU", "HO", "NG", "CHOW", "TSANG", "YIP"],
    "PHL": ["SANTOS", "REYES", "CRUZ", "BAUTISTA", "GARCIA", "MENDOZA", "DELA CRUZ", "TORRES"],
    "THA": ["SAETANG", "SRISUK", "WONGSAWAT", "CHAIYAPORN", "BOONMA", "SUKSAWAT"],
    "VNM": ["NGUYEN", "TRAN", "LE", "PHAM", "HOANG", "PHAN", "VU", "DANG"],
    "MYS": ["TAN", "LIM", "ABDULLAH", "WONG", "RAHMAN", "OOI", "ISMAIL"],
    "SGP": ["TAN", "LIM", "LEE", "NG", "ONG", "WONG", "GOH", "CHUA"],
    "IDN": ["SANTOSO", "WIJAYA", "SUSANTO", "HALIM", "GUNAWAN", "SETIAWAN"],
    "EN": [
        "SMITH",
        "JOHNSON",
        "WILLIAMS",
        "BROWN",
        "JONES",
        "MILLER",
        "DAVIS",
        "WILSON",
        "TAYLOR",
        "ANDERSON",
        "O'NEIL",
        "O'BRIEN",
        "MACDONALD",
        "CLARKE",
        "WALKER",
    ],
    "DEU": [
        "MUELLER",
        "SCHMIDT",
        "SCHNEIDER",
        "FISCHER",
        "WEBER",
        "MEYER",
        "WAGNER",
        "BECKER",
        "MÜLLER",
        "GRÜNEWALD",
    ],
    "FRA": ["MARTIN", "BERNARD", "DUBOIS", "THOMAS", "ROBERT", "PETIT", "DURAND", "LEFÈVRE"],
}

GIVEN_NAMES: dict[str, list[str]] = {
    "TWN": [
        "CHIA HAO",
        "YU TING",
        "SHU FEN",
        "CHIH WEI",
        "MEI LING",
        "CHUN HUNG",
        "HSIN YI",
        "PEI SHAN",
        "YI CHEN",
        "WEN HSIUNG",
        "KUAN YU",
        "YA TING",
        "TSUNG HAN",
        "HUI MIN",
    ],
    "JPN": [
        "HARUTO",
        "YUI",
        "SOTA",
        "HINA",
        "REN",
        "AOI",
        "YUTO",
        "SAKURA",
        "KENJI",
        "YUKI",
        "HIROSHI",
        "AKIKO",
        "TAKESHI",
        "MISAKI",
    ],
    "KOR": ["MIN JUN", "SEO YEON", "JI HO", "HA EUN", "DO YUN", "SU AH", "JI WOO", "MIN SEO"],
    "HKG": ["KA MING", "WAI LAM", "CHI HO", "MAN YEE", "KWOK WAH", "SIU MEI", "TSZ CHING"],
    "PHL": ["JOSE", "MARIA", "JUAN", "ANGELICA", "MARK ANTHONY", "KRISTINE JOY", "JOHN PAUL"],
    "THA": ["SOMCHAI", "SUDA", "NATTAPONG", "PORNTIP", "KITTISAK", "WANIDA"],
    "VNM": ["VAN AN", "THI HOA", "MINH DUC", "THI LAN", "QUOC BAO", "NGOC ANH"],
    "MYS": ["WEI JIE", "SITI NURHALIZA", "AHMAD FAIZ", "MEI YEE", "MUHAMMAD HAFIZ"],
    "SGP": ["WEI MING", "HUI LING", "JUN JIE", "XIN YI", "ZHI HAO"],
    "IDN": ["BUDI", "SITI", "AGUS", "DEWI", "RUDI", "PUTRI"],
    "EN": [
        "JAMES",
        "MARY",
        "ROBERT",
        "PATRICIA",
        "JOHN",
        "JENNIFER",
        "MICHAEL",
        "LINDA",
        "DAVID",
        "ELIZABETH",
        "SARAH JANE",
        "THOMAS EDWARD",
    ],
    "DEU": ["LUKAS", "ANNA", "FELIX", "LEONIE", "JONAS", "LENA", "MAXIMILIAN", "JÖRG"],
    "FRA": ["LUCAS", "EMMA", "HUGO", "CHLOE", "JEAN-PIERRE", "MARIE CLAIRE", "RENÉ"],
}

# Which name pool serves a nationality without its own.
NAME_POOL_FOR = {"USA": "EN", "GBR": "EN", "AUS": "EN", "CAN": "EN", "XXA": "EN"}

# Passport number shapes: L letter, D digit, A letter or digit (ICAO 9303 allows 9 chars in MRZ).
PASSPORT_FORMATS: dict[str, str] = {
    "TWN": "3DDDDDDDD",
    "JPN": "TLDDDDDDD",
    "KOR": "MDDDDDDDD",
    "USA": "5DDDDDDDD",
    "HKG": "KDDDDDDDD",
    "PHL": "PDDDDDDDL",
    "THA": "LLDDDDDDD",
    "VNM": "LDDDDDDD",
    "MYS": "ADDDDDDDD",
    "SGP": "KDDDDDDDL",
    "IDN": "LDDDDDDD",
    "GBR": "DDDDDDDDD",
    "DEU": "CAAAAAAAA",
    "FRA": "DDLLDDDDD",
    "AUS": "PLDDDDDDD",
    "CAN": "LLDDDDDD",
    "XXA": "DDDDDDDDD",
}

# Stateless travellers travel on a document issued by their state of residence.
ISSUER_FOR_STATELESS = "DEU"
