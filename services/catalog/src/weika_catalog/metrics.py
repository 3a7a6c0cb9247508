"""The catalog service's business metrics, declared once (Prometheus naming, low-cardinality labels)."""

from prometheus_client import Counter

STOCK_RESERVATIONS = Counter("weika_stock_reservations_total",
                             "ReserveStock calls, by outcome (reserved, out_of_stock, purchase_limit_exceeded).",
                             ["outcome"])
CARD_KEYS_LOADED = Counter("weika_card_keys_loaded_total", "Card keys added to inventories, by mode.", ["mode"])
CARD_KEYS_ALLOCATED = Counter("weika_card_keys_allocated_total",
                              "Card keys allocated to paid units (counted when allocated in a delivery attempt).",
                              ["mode"])
CARD_KEY_UNITS_PENDING = Counter("weika_card_key_units_pending_total",
                                 "Paid units that found no card key and wait for the next load.", ["mode"])
DELIVERY_UNITS_WITHDRAWN = Counter("weika_delivery_units_withdrawn_total",
                                   "Undelivered virtual units withdrawn by refunds before the money went back.",
                                   ["mode"])
DELIVERY_UNITS_RESTORED = Counter("weika_delivery_units_restored_total",
                                  "Withdrawn virtual units given back to their order when its refund was refused.",
                                  ["mode"])
PRODUCT_IMPORTS = Counter("weika_product_imports_total", "Excel imports, by outcome (imported, rejected).",
                          ["outcome"])
