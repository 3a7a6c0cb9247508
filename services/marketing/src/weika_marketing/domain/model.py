"""Campaigns and price quotes: plain Python, no database, no gRPC.

A quote starts from the basket's subtotal, evaluates every live campaign, and explains each one: applied
with its amount, or refused with a stable reason code. Stacking: stackable campaigns combine with each
other; a non-stackable one applies alone. The customer gets whichever is worth more — the best
non-stackable campaign on its own, or all stackable ones together — and the losers are refused as
`not_stackable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from weika_marketing.domain import errors

KINDS = ("full_reduction",)
MAX_TIERS = 10
MAX_LINES = 200
MAX_QUANTITY = 100_000
MAX_PRICE = 100_000_000_00  # one hundred million yuan, in fen: anything above is a typo
MAX_NAME = 100


def yuan(fen: int) -> str:
    """Fen as people read it: 19999 -> "199.99"."""
    return f"{fen // 100}.{fen % 100:02d}"


@dataclass(frozen=True)
class Tier:
    """满threshold减reduction, in fen."""

    threshold: int
    reduction: int


@dataclass(frozen=True)
class Campaign:
    id: str
    merchant_id: str
    mode: str
    kind: str
    name: str
    tiers: tuple[Tier, ...]
    stackable: bool
    starts_at: datetime | None
    ends_at: datetime | None
    active: bool
    created_at: datetime

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise errors.UnsupportedCampaignKind(
                f"campaign kind {self.kind!r} is not supported; use one of {', '.join(KINDS)}",
                details={"field": "kind", "kind": self.kind})
        if not self.name or len(self.name) > MAX_NAME:
            raise errors.InvalidCampaign(f"a campaign name must be 1 to {MAX_NAME} characters",
                                         details={"field": "name"})
        self._validate_tiers()
        if self.starts_at is None or self.ends_at is None:
            raise errors.InvalidCampaign("a campaign needs starts_at and ends_at", details={"field": "starts_at"})
        if self.ends_at <= self.starts_at:
            raise errors.CampaignEndsBeforeStart(
                f"the campaign ends ({self.ends_at.isoformat()}) at or before it starts "
                f"({self.starts_at.isoformat()})",
                details={"starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat()})

    def _validate_tiers(self) -> None:
        if not 1 <= len(self.tiers) <= MAX_TIERS:
            raise errors.InvalidCampaign(f"a full-reduction campaign needs 1 to {MAX_TIERS} tiers",
                                         details={"field": "tiers"})
        for index, tier in enumerate(self.tiers):
            where = {"field": f"tiers[{index}]", "threshold": tier.threshold, "reduction": tier.reduction}
            if tier.reduction <= 0 or tier.threshold > MAX_PRICE:
                raise errors.InvalidCampaign(
                    f"tier {index + 1}: the reduction must be positive and the threshold at most {yuan(MAX_PRICE)}",
                    details=where)
            if tier.reduction >= tier.threshold:
                raise errors.ReductionNotBelowThreshold(
                    f"tier {index + 1}: the reduction {yuan(tier.reduction)} must be below its threshold "
                    f"{yuan(tier.threshold)}", details=where)
            if index and (tier.threshold <= self.tiers[index - 1].threshold
                          or tier.reduction <= self.tiers[index - 1].reduction):
                # A higher tier that asks more and gives no more would never be the best one: a typo.
                raise errors.TiersNotAscending(
                    f"tier {index + 1}: thresholds and reductions must both rise from tier to tier",
                    details=where)

    def is_live(self, now: datetime) -> bool:
        return (self.active and self.starts_at is not None and self.ends_at is not None
                and self.starts_at <= now < self.ends_at)

    def best_tier(self, subtotal: int) -> Tier | None:
        """The highest tier the subtotal reaches (tiers rise, so it is also the largest reduction)."""
        met = [tier for tier in self.tiers if tier.threshold <= subtotal]
        return met[-1] if met else None

    def describe(self, tier: Tier) -> str:
        return f"{self.name}: 满{yuan(tier.threshold)}减{yuan(tier.reduction)}"


@dataclass(frozen=True)
class QuoteLine:
    product_id: str
    category_id: str
    quantity: int
    unit_price: int

    def validate(self, index: int) -> None:
        where = {"field": f"lines[{index}]", "product_id": self.product_id}
        if not 1 <= self.quantity <= MAX_QUANTITY:
            raise errors.InvalidQuantity(f"line {index + 1}: quantity must be 1 to {MAX_QUANTITY}, got {self.quantity}",
                                         details={**where, "quantity": self.quantity})
        if not 0 <= self.unit_price <= MAX_PRICE:
            raise errors.InvalidUnitPrice(
                f"line {index + 1}: unit_price must be 0 to {MAX_PRICE} fen, got {self.unit_price}",
                details={**where, "unit_price": self.unit_price})

    @property
    def amount(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class Applied:
    campaign_id: str
    kind: str
    amount: int
    description: str


@dataclass(frozen=True)
class Refused:
    campaign_id: str
    kind: str
    reason_code: str
    description: str
    shortfall: int = 0


@dataclass(frozen=True)
class Quote:
    subtotal: int
    applied: tuple[Applied, ...]
    refused: tuple[Refused, ...]

    @property
    def discount_amount(self) -> int:
        return sum(a.amount for a in self.applied)

    @property
    def total(self) -> int:
        return self.subtotal - self.discount_amount


def validate_lines(lines: list[QuoteLine]) -> None:
    if not lines:
        raise errors.EmptyBasket("a quote needs at least one line", details={"field": "lines"})
    if len(lines) > MAX_LINES:
        raise errors.TooManyLines(f"a quote takes at most {MAX_LINES} lines",
                                  details={"field": "lines", "count": len(lines)})
    for index, line in enumerate(lines):
        line.validate(index)


@dataclass(frozen=True)
class _Candidate:
    campaign: Campaign
    tier: Tier

    @property
    def amount(self) -> int:
        return self.tier.reduction


def quote(lines: list[QuoteLine], campaigns: list[Campaign], now: datetime) -> Quote:
    """Price a basket with every live campaign, by the stacking rules; campaigns come in a stable order."""
    validate_lines(lines)
    subtotal = sum(line.amount for line in lines)
    refused: list[Refused] = []
    candidates: list[_Candidate] = []
    for campaign in campaigns:
        if not campaign.is_live(now):
            continue  # outside its window or switched off: not an offer at all, so nothing to explain
        tier = campaign.best_tier(subtotal)
        if tier is None:
            lowest = campaign.tiers[0]
            shortfall = lowest.threshold - subtotal
            refused.append(Refused(
                campaign.id, campaign.kind, errors.THRESHOLD_NOT_MET,
                f"{campaign.describe(lowest)} — add {yuan(shortfall)} more to qualify", shortfall))
        else:
            candidates.append(_Candidate(campaign, tier))

    winners, losers, reason = _stack(candidates)
    for loser in losers:
        refused.append(Refused(loser.campaign.id, loser.campaign.kind, errors.NOT_STACKABLE,
                               f"{loser.campaign.describe(loser.tier)} — does not combine with {reason}"))
    applied: list[Applied] = []
    left = subtotal
    for winner in winners:
        # Stacked reductions never take the total below zero.
        amount = min(winner.amount, left)
        if amount == 0:
            refused.append(Refused(winner.campaign.id, winner.campaign.kind, errors.NOTHING_LEFT_TO_DISCOUNT,
                                   f"{winner.campaign.describe(winner.tier)} — the basket is already free"))
            continue
        left -= amount
        applied.append(Applied(winner.campaign.id, winner.campaign.kind, amount, winner.campaign.describe(winner.tier)))
    return Quote(subtotal, tuple(applied), tuple(refused))


def _stack(candidates: list[_Candidate]) -> tuple[list[_Candidate], list[_Candidate], str]:
    """Split candidates into those applied and those refused as not stackable (and what they lost to)."""
    # Largest saving first; ties go to the campaign that started first, then by id: the same every time.
    ranked = sorted(candidates, key=lambda c: (-c.amount, c.campaign.starts_at, c.campaign.id))
    stackable = [c for c in ranked if c.campaign.stackable]
    exclusive = [c for c in ranked if not c.campaign.stackable]
    if exclusive and exclusive[0].amount > sum(c.amount for c in stackable):
        best = exclusive[0]
        return [best], exclusive[1:] + stackable, f"{best.campaign.name}, which saves more on its own"
    if stackable:
        return stackable, exclusive, "the stackable campaigns, which together save more"
    return [], [], ""
