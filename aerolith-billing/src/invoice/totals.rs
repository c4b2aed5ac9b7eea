//! Totals: discounts, tax and account credit derived from the charge lines,
//! and the check that every total is the sum of its lines.
//!
//! Order of computation, each step rounded half-even once per line:
//! subtotal = Σ charge lines; each active coupon discounts the subtotal,
//! capped by what is left; tax = rate × (subtotal − discounts), also when
//! that is negative (a downgrade's credit gives back the tax its charge
//! carried); credit = min(available, amount so far); total = Σ all lines.

use rust_decimal::Decimal;

use super::{Coupon, CouponKind, Invoice, InvoiceError, InvoiceLine, InvoiceLineKind};
use crate::money::{Money, MoneyError};

/// The totals and computed lines derived from the charge lines and inputs.
struct Computed {
    lines: Vec<InvoiceLine>,
    subtotal: Money,
    discount_total: Money,
    tax_total: Money,
    credit_applied: Money,
    total: Money,
}

impl Invoice {
    /// Recomputes discounts, tax, credit and the totals from the charge lines.
    pub(super) fn recompute(&mut self) -> Result<(), InvoiceError> {
        let computed = self.compute()?;
        self.lines = computed.lines;
        self.subtotal = computed.subtotal;
        self.discount_total = computed.discount_total;
        self.tax_total = computed.tax_total;
        self.credit_applied = computed.credit_applied;
        self.total = computed.total;
        self.amount_due = computed.total.checked_max(Money::zero(self.currency))?;
        debug_assert!(
            self.check_totals().is_ok(),
            "freshly computed totals must match the lines"
        );
        Ok(())
    }

    fn compute(&self) -> Result<Computed, InvoiceError> {
        let currency = self.currency;
        let zero = Money::zero(currency);
        let mut lines: Vec<InvoiceLine> = self
            .lines
            .iter()
            .filter(|line| !line.kind.is_computed())
            .cloned()
            .collect();
        let subtotal = Money::checked_sum(currency, lines.iter().map(|line| line.amount))?;

        // Discounts: each active coupon on the subtotal, capped by what is left.
        let mut discountable = subtotal.checked_max(zero)?;
        let mut discount_total = zero;
        for redemption in self
            .coupons
            .iter()
            .filter(|redemption| redemption.applies_to_period(self.period_start_unix_ms))
        {
            let line = discount_line(&redemption.coupon, subtotal, discountable)?;
            let discount = line.amount.checked_neg()?;
            if discount.is_zero() {
                // Nothing to take off (e.g. a $0 trial invoice): no line, so
                // the coupon is not counted as applied and is not used up.
                continue;
            }
            discountable = discountable.checked_sub(discount)?;
            discount_total = discount_total.checked_add(discount)?;
            lines.push(line);
        }

        // Tax on what is left after discounts; on a negative amount (a
        // downgrade credit) the tax line is negative too.
        let taxable = subtotal.checked_sub(discount_total)?;
        let mut tax_total = zero;
        if !taxable.is_zero() && self.tax_rate_percent > Decimal::ZERO {
            let rate = self.tax_rate_percent / Decimal::ONE_HUNDRED;
            let base = taxable.to_decimal();
            let exact = base.checked_mul(rate).ok_or(MoneyError::OutOfRange {
                amount: base,
                currency,
            })?;
            tax_total = Money::from_decimal(exact, currency)?;
            lines.push(InvoiceLine {
                kind: InvoiceLineKind::Tax {
                    rate_percent: self.tax_rate_percent,
                },
                description: format!("Tax ({}%)", self.tax_rate_percent.normalize()),
                quantity: base,
                unit_price: Some(rate),
                amount: tax_total,
                period: None,
                pricing: Vec::new(),
                sources: Vec::new(),
            });
        }

        // Account credit after tax, up to the amount due.
        let before_credit = taxable.checked_add(tax_total)?;
        let credit_applied = self
            .credit_available
            .checked_min(before_credit.checked_max(zero)?)?;
        if credit_applied.is_positive() {
            let amount = credit_applied.checked_neg()?;
            lines.push(InvoiceLine::single(
                InvoiceLineKind::Credit,
                "Account credit applied".to_owned(),
                amount,
                None,
            ));
        }
        let total = before_credit.checked_sub(credit_applied)?;
        Ok(Computed {
            lines,
            subtotal,
            discount_total,
            tax_total,
            credit_applied,
            total,
        })
    }

    /// Checks the totals invariant: each total equals the sum of its lines,
    /// `total = Σ lines`, and `total = subtotal − discounts + tax − credit`.
    pub fn check_totals(&self) -> Result<(), InvoiceError> {
        let currency = self.currency;
        let sum_of = |predicate: &dyn Fn(&InvoiceLineKind) -> bool| {
            Money::checked_sum(
                currency,
                self.lines
                    .iter()
                    .filter(|line| predicate(&line.kind))
                    .map(|line| line.amount),
            )
        };
        let subtotal = sum_of(&|kind| !kind.is_computed())?;
        let discounts =
            sum_of(&|kind| matches!(kind, InvoiceLineKind::Discount { .. }))?.checked_neg()?;
        let tax = sum_of(&|kind| matches!(kind, InvoiceLineKind::Tax { .. }))?;
        let credit = sum_of(&|kind| matches!(kind, InvoiceLineKind::Credit))?.checked_neg()?;
        let all_lines = sum_of(&|_| true)?;
        let by_parts = subtotal
            .checked_sub(discounts)?
            .checked_add(tax)?
            .checked_sub(credit)?;
        let checks = [
            ("subtotal", self.subtotal, subtotal),
            ("discount_total", self.discount_total, discounts),
            ("tax_total", self.tax_total, tax),
            ("credit_applied", self.credit_applied, credit),
            ("total", self.total, all_lines),
            ("total", self.total, by_parts),
        ];
        for (field, stored, computed) in checks {
            if stored != computed {
                return Err(InvoiceError::TotalsMismatch {
                    id: self.id.clone(),
                    field,
                    stored,
                    computed,
                });
            }
        }
        Ok(())
    }
}

/// The discount line of a coupon: the exact discount rounded half-even, then
/// capped by what is still discountable.
fn discount_line(
    coupon: &Coupon,
    subtotal: Money,
    discountable: Money,
) -> Result<InvoiceLine, InvoiceError> {
    let currency = subtotal.currency;
    let base = subtotal.to_decimal().max(Decimal::ZERO);
    let (wanted, percent, unit_price, description) = match coupon.kind {
        CouponKind::Percent { percent } => {
            let rate = percent / Decimal::ONE_HUNDRED;
            let exact = base.checked_mul(rate).ok_or(MoneyError::OutOfRange {
                amount: base,
                currency,
            })?;
            let description = format!("Coupon {} ({}% off)", coupon.id, percent.normalize());
            (
                Money::from_decimal(exact, currency)?,
                Some(percent),
                -rate,
                description,
            )
        }
        CouponKind::Amount { amount } => {
            let description = format!("Coupon {} ({} off)", coupon.id, amount);
            (amount, None, -amount.to_decimal(), description)
        }
    };
    let discount = wanted.checked_min(discountable)?;
    let capped = discount != wanted;
    let (quantity, unit_price, description) = match (capped, percent) {
        (false, Some(_)) => (base, Some(unit_price), description),
        (false, None) => (Decimal::ONE, Some(unit_price), description),
        (true, Some(_)) => (
            base,
            None,
            format!("{description}, capped at the remaining subtotal"),
        ),
        (true, None) => (
            Decimal::ONE,
            Some(-discount.to_decimal()),
            format!("{description}, capped at the remaining subtotal"),
        ),
    };
    Ok(InvoiceLine {
        kind: InvoiceLineKind::Discount {
            coupon: coupon.id.clone(),
            percent,
        },
        description,
        quantity,
        unit_price,
        amount: discount.checked_neg()?,
        period: None,
        pricing: Vec::new(),
        sources: Vec::new(),
    })
}
