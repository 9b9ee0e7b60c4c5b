"""The core's risk rules, registered through ``trader_audit_order`` like any plugin's."""

from __future__ import annotations

from trader.hookspecs import hookimpl
from trader.types import AuditContext, OrderRequest, PortfolioSnapshot, RiskLimits, RiskVerdict

RULE = "core"


@hookimpl
def trader_audit_order(
    order: OrderRequest, portfolio: PortfolioSnapshot, limits: RiskLimits, context: AuditContext
) -> list[RiskVerdict]:
    from trader.engine.risk import core_verdicts

    return core_verdicts(order, portfolio, limits, context)
