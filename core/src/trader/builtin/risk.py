"""The core's risk rules as a ``trader_audit_order`` plugin, for listing and for direct hook calls.

:class:`~trader.engine.risk.RiskAuditAgent` does not call this plugin: it calls the same
rules (:func:`~trader.engine.risk.core_verdicts`) directly, first, on its own copies, and
skips this module (by identity) among the hook's implementations. So the core's rules
apply whether or not this plugin is registered, and a plugin named ``core_risk`` is not them.
"""

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
