"""The engine: one per process, the page's only door into the backend.

Everything the frontend uses is named here (an import-linter contract in ``pyproject.toml``
keeps the frontend to this surface): the engine and its options, the pair service and the
records it returns, uploads behind the same read interface, and the constants the page
labels its figures with.
"""

from backend import analytics
from backend.alerts.evaluate import KIND_LABELS as ALERT_KIND_LABELS
from backend.alerts.rules import CHANNEL_KINDS, PAIR_KINDS, RULE_KINDS, RulesError, rule_toml
from backend.config import ConfigError
from backend.engine.baskets import BASKET_SIZES, basket_stats
from backend.engine.baskets import needs as basket_needs
from backend.engine.core import Engine, EngineHealth, EngineOptions
from backend.engine.pair_service import (
    AlertGate,
    LevelRule,
    PairAlert,
    PairReport,
    PairRequest,
    PairService,
    csv_header,
)
from backend.engine.pairs import (
    MEAN_REVERSION_P,
    REGRESSION_METHODS,
    SCAN_DEEP,
    SCAN_FAST,
    SCAN_MAX_Q,
    SCAN_MIN_CORR,
    PairParams,
)
from backend.engine.sources import SOURCES
from backend.engine.uploads import UploadedData, UploadError, parse_upload
from backend.storage import StorageError
from backend.store.records import Bars
from backend.store.timeframes import SCAN_TIMEFRAMES, TIMEFRAMES_MS

__all__ = [
    "ALERT_KIND_LABELS",
    "CHANNEL_KINDS",
    "PAIR_KINDS",
    "REGRESSION_METHODS",
    "RULE_KINDS",
    "RulesError",
    "rule_toml",
    "BASKET_SIZES",
    "MEAN_REVERSION_P",
    "SCAN_DEEP",
    "SCAN_FAST",
    "SCAN_MAX_Q",
    "SCAN_MIN_CORR",
    "SCAN_TIMEFRAMES",
    "SOURCES",
    "TIMEFRAMES_MS",
    "AlertGate",
    "Bars",
    "ConfigError",
    "Engine",
    "EngineHealth",
    "EngineOptions",
    "LevelRule",
    "PairAlert",
    "PairParams",
    "PairReport",
    "PairRequest",
    "PairService",
    "StorageError",
    "UploadError",
    "UploadedData",
    "analytics",
    "basket_needs",
    "basket_stats",
    "csv_header",
    "parse_upload",
]
