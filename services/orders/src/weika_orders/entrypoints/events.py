"""The orders service's event handlers, one per topic, in one visible table.

None yet. Next: coupons issued (redemption) and goods delivered (catalog) move a paid order to
`delivered`; group-failed (marketing) refunds it.
"""

from __future__ import annotations

from weika_kit.consumer import Handler
from weika_kit.db import Database


def handlers(db: Database) -> dict[str, dict[str, Handler]]:
    return {}
