//! Building a draft invoice from a plan, usage and adjustments in one go.
//!
//! [`InvoiceBuilder`] collects the inputs (base fee, per-metric usage,
//! proration and adjustment amounts, coupons, tax rate, account credit) and
//! [`InvoiceBuilder::build`] turns them into a draft [`Invoice`], reporting the
//! first invalid input as an [`InvoiceError`]. The draft can still be edited
//! before it is finalized.

use rust_decimal::Decimal;

use super::{
    CouponRedemption, Invoice, InvoiceError, InvoiceId, InvoiceLine, InvoiceLineKind,
    InvoicePeriod, UsageSource,
};
use crate::catalog::{BillingInterval, Catalog, IncludedQuantity, MetricId, Plan};
use crate::money::{Currency, Money, MoneyError};
use crate::price::PriceModel;

/// One charge waiting to be turned into a line.
#[derive(Debug)]
enum PendingCharge<'a> {
    BaseFee {
        plan: &'a Plan,
        interval: BillingInterval,
    },
    PlanUsage {
        plan: &'a Plan,
        metric: MetricId,
        used: Decimal,
        sources: Vec<UsageSource>,
        period: Option<InvoicePeriod>,
    },
    PricedUsage {
        metric: MetricId,
        used: Decimal,
        included: IncludedQuantity,
        price: PriceModel,
    },
    Line(InvoiceLine),
}

/// Collects the inputs of a draft invoice; see the module docs.
#[derive(Debug)]
pub struct InvoiceBuilder<'a> {
    id: InvoiceId,
    tenant: String,
    currency: Currency,
    period: InvoicePeriod,
    catalog: Option<&'a Catalog>,
    charges: Vec<PendingCharge<'a>>,
    coupons: Vec<CouponRedemption>,
    tax_rate_percent: Decimal,
    credit_available: Option<Money>,
}

impl<'a> InvoiceBuilder<'a> {
    /// A builder for an invoice of `tenant` over `period`, in `currency`.
    pub fn new(
        id: InvoiceId,
        tenant: impl Into<String>,
        currency: Currency,
        period: InvoicePeriod,
    ) -> Self {
        InvoiceBuilder {
            id,
            tenant: tenant.into(),
            currency,
            period,
            catalog: None,
            charges: Vec::new(),
            coupons: Vec::new(),
            tax_rate_percent: Decimal::ZERO,
            credit_available: None,
        }
    }

    /// A builder in the catalog's currency that names metrics as the catalog
    /// does (see [`InvoiceBuilder::metric_names`]).
    pub fn for_catalog(
        id: InvoiceId,
        tenant: impl Into<String>,
        catalog: &'a Catalog,
        period: InvoicePeriod,
    ) -> Self {
        InvoiceBuilder::new(id, tenant, catalog.currency, period).metric_names(catalog)
    }

    /// Uses the catalog's metric display names in line descriptions
    /// ("API calls" instead of "api_calls"). The catalog's currency must be
    /// the invoice's, or [`InvoiceBuilder::build`] fails.
    pub fn metric_names(mut self, catalog: &'a Catalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Charges the plan's base price for `interval`, over the whole period.
    pub fn base_fee(mut self, plan: &'a Plan, interval: BillingInterval) -> Self {
        self.charges.push(PendingCharge::BaseFee { plan, interval });
        self
    }

    /// Bills `used` units of `metric` against the plan's included quantity,
    /// pricing the overage with the plan's overage price. No line when there
    /// is no overage; an error at build when there is overage but no price.
    pub fn usage(mut self, plan: &'a Plan, metric: MetricId, used: Decimal) -> Self {
        self.charges.push(PendingCharge::PlanUsage {
            plan,
            metric,
            used,
            sources: Vec::new(),
            period: None,
        });
        self
    }

    /// Like [`InvoiceBuilder::usage`], for usage metered over `period`
    /// (which may differ from the invoice's, e.g. the previous period billed
    /// in arrears), keeping the raw ledger quantities it came from on the
    /// line.
    pub fn metered_usage(
        mut self,
        plan: &'a Plan,
        metric: MetricId,
        used: Decimal,
        sources: Vec<UsageSource>,
        period: InvoicePeriod,
    ) -> Self {
        self.charges.push(PendingCharge::PlanUsage {
            plan,
            metric,
            used,
            sources,
            period: Some(period),
        });
        self
    }

    /// Bills usage with an explicit included quantity and price.
    pub fn priced_usage(
        mut self,
        metric: MetricId,
        used: Decimal,
        included: IncludedQuantity,
        price: PriceModel,
    ) -> Self {
        self.charges.push(PendingCharge::PricedUsage {
            metric,
            used,
            included,
            price,
        });
        self
    }

    /// A proration charge (positive) or credit (negative).
    pub fn proration(
        mut self,
        description: impl Into<String>,
        amount: Money,
        period: Option<InvoicePeriod>,
    ) -> Self {
        self.charges
            .push(PendingCharge::Line(InvoiceLine::proration(
                description,
                amount,
                period,
            )));
        self
    }

    /// A manual charge (positive) or credit (negative).
    pub fn adjustment(mut self, description: impl Into<String>, amount: Money) -> Self {
        self.charges
            .push(PendingCharge::Line(InvoiceLine::adjustment(
                description,
                amount,
            )));
        self
    }

    /// Attaches a coupon redemption.
    pub fn coupon(mut self, redemption: CouponRedemption) -> Self {
        self.coupons.push(redemption);
        self
    }

    /// The tenant's tax rate in percent (e.g. `8.25`).
    pub fn tax_rate_percent(mut self, rate_percent: Decimal) -> Self {
        self.tax_rate_percent = rate_percent;
        self
    }

    /// The tenant's account credit balance, applied after tax.
    pub fn credit_available(mut self, credit: Money) -> Self {
        self.credit_available = Some(credit);
        self
    }

    /// Builds the draft.
    pub fn build(self) -> Result<Invoice, InvoiceError> {
        let currency = self.currency;
        if let Some(catalog) = self.catalog.filter(|catalog| catalog.currency != currency) {
            return Err(MoneyError::CurrencyMismatch {
                left: currency,
                right: catalog.currency,
            }
            .into());
        }
        let mut invoice = Invoice::draft(self.id, self.tenant, self.currency, self.period)?;
        let label = |metric: &MetricId| {
            self.catalog
                .and_then(|catalog| catalog.metric(metric))
                .map_or_else(
                    || metric.to_string(),
                    |definition| definition.display_name.clone(),
                )
        };
        for charge in self.charges {
            let mut usage_sources = Vec::new();
            let mut usage_period = None;
            let line = match charge {
                PendingCharge::BaseFee { plan, interval } => Some(InvoiceLine::base_fee(
                    plan,
                    interval,
                    currency,
                    Some(self.period),
                )?),
                PendingCharge::PlanUsage {
                    plan,
                    metric,
                    used,
                    sources,
                    period,
                } => {
                    usage_sources = sources;
                    usage_period = period;
                    let included = plan.included_for(&metric);
                    match plan.overage_price(&metric) {
                        Some(price) => InvoiceLine::overage(
                            &metric,
                            &label(&metric),
                            used,
                            included,
                            price,
                            currency,
                        )?,
                        None => {
                            if used.is_sign_negative() && !used.is_zero() {
                                return Err(InvoiceError::NegativeUsage { metric, used });
                            }
                            let overage = included.overage(used);
                            if !overage.is_zero() {
                                return Err(InvoiceError::NoOveragePrice {
                                    plan: plan.id.clone(),
                                    metric,
                                    overage,
                                });
                            }
                            None
                        }
                    }
                }
                PendingCharge::PricedUsage {
                    metric,
                    used,
                    included,
                    price,
                } => InvoiceLine::overage(
                    &metric,
                    &label(&metric),
                    used,
                    included,
                    &price,
                    currency,
                )?,
                PendingCharge::Line(line) => Some(line),
            };
            if let Some(mut line) = line {
                // Usage is metered over the whole invoice period.
                if matches!(line.kind, InvoiceLineKind::Overage { .. }) {
                    line.period = Some(usage_period.unwrap_or(self.period));
                    line.sources = usage_sources;
                }
                invoice.add_line(line)?;
            }
        }
        for redemption in self.coupons {
            invoice.add_coupon(redemption)?;
        }
        invoice.set_tax_rate_percent(self.tax_rate_percent)?;
        if let Some(credit) = self.credit_available {
            invoice.set_credit_available(credit)?;
        }
        Ok(invoice)
    }
}
