//! Plain-text rendering of an invoice, and the number formats it uses.
//!
//! The text form is fixed width ([`TEXT_WIDTH`] columns): a header (number,
//! status, tenant, period, dates), one row per line with quantity, unit price
//! and amount (long descriptions wrap; tiered prices list their components
//! underneath), then the totals. Dates are UTC. The format is pinned by a
//! snapshot test, so a change here is a deliberate change of the document.

use std::fmt::Write as _;

use rust_decimal::Decimal;

use super::{Invoice, InvoiceLine, InvoiceLineKind, InvoiceStatus};
use crate::catalog::IncludedQuantity;
use crate::money::{Currency, Money};

/// Width of the text invoice, in columns.
pub const TEXT_WIDTH: usize = 78;
const DESCRIPTION_WIDTH: usize = 39;
const QUANTITY_WIDTH: usize = 11;
const UNIT_PRICE_WIDTH: usize = 12;
const AMOUNT_WIDTH: usize = 13;
const TOTALS_LABEL_WIDTH: usize = 20;
const CONTINUATION_INDENT: &str = "  ";

/// A quantity with thousands separators and its significant decimals
/// (`150000` -> `150,000`, `12.50` -> `12.5`).
pub(crate) fn format_quantity(quantity: Decimal) -> String {
    let text = quantity.normalize().abs().to_string();
    let (integer, fraction) = match text.split_once('.') {
        Some((integer, fraction)) => (integer.to_owned(), Some(fraction.to_owned())),
        None => (text.clone(), None),
    };
    let mut grouped = String::new();
    if quantity.is_sign_negative() && !quantity.is_zero() {
        grouped.push('-');
    }
    for (index, digit) in integer.chars().enumerate() {
        if index > 0 && (integer.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if let Some(fraction) = fraction {
        grouped.push('.');
        grouped.push_str(&fraction);
    }
    grouped
}

/// An included quantity: `unlimited` or the formatted quantity.
pub(crate) fn format_included(included: IncludedQuantity) -> String {
    match included {
        IncludedQuantity::Unlimited => "unlimited".to_owned(),
        IncludedQuantity::Limited(quantity) => format_quantity(quantity),
    }
}

fn format_time(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms).map_or_else(
        || format!("{unix_ms} ms"),
        |time| time.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

fn format_rate(fraction: Decimal) -> String {
    match fraction.checked_mul(Decimal::ONE_HUNDRED) {
        Some(percent) => format!("{}%", percent.abs().normalize()),
        // Only a hand-made invoice can hold such a rate; show it as it is.
        None => format!("x{fraction}"),
    }
}

/// Splits text into lines of at most `width` characters at spaces (words
/// longer than `width` are cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !current.is_empty() {
                lines.push(std::mem::take(&mut current));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let needed = if current.is_empty() {
            word.chars().count()
        } else {
            current.chars().count() + 1 + word.chars().count()
        };
        if needed > width && !current.is_empty() {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
}

/// The quantity and unit-price cells of a line.
fn quantity_and_unit_cells(line: &InvoiceLine, currency: Currency) -> (String, String) {
    match &line.kind {
        InvoiceLineKind::Tax { .. }
        | InvoiceLineKind::Discount {
            percent: Some(_), ..
        } => {
            let rate = match (&line.kind, line.unit_price) {
                (
                    InvoiceLineKind::Discount {
                        percent: Some(percent),
                        ..
                    },
                    None,
                ) => format!("{}%", percent.normalize()),
                (_, Some(unit_price)) => format_rate(unit_price),
                (_, None) => String::new(),
            };
            (currency.format_decimal(line.quantity), rate)
        }
        _ => {
            let unit = line.unit_price.map_or_else(
                || "tiered".to_owned(),
                |price| currency.format_decimal(price),
            );
            (format_quantity(line.quantity), unit)
        }
    }
}

fn push_row(out: &mut String, description: &str, quantity: &str, unit: &str, amount: &str) {
    let row = format!(
        "{description:<DESCRIPTION_WIDTH$} {quantity:>QUANTITY_WIDTH$} {unit:>UNIT_PRICE_WIDTH$} {amount:>AMOUNT_WIDTH$}"
    );
    let _ = writeln!(out, "{}", row.trim_end());
}

fn push_line(out: &mut String, line: &InvoiceLine, currency: Currency) {
    let (quantity, unit) = quantity_and_unit_cells(line, currency);
    let description = wrap(&line.description, DESCRIPTION_WIDTH);
    let (first, rest) = description
        .split_first()
        .map_or(("", &[][..]), |(first, rest)| (first.as_str(), rest));
    push_row(out, first, &quantity, &unit, &line.amount.to_string());
    // Continuation rows are indented, so they are re-wrapped to the narrower width.
    let rest = wrap(
        &rest.join(" "),
        DESCRIPTION_WIDTH - CONTINUATION_INDENT.len(),
    );
    for more in rest.iter().filter(|more| !more.is_empty()) {
        push_row(out, &format!("{CONTINUATION_INDENT}{more}"), "", "", "");
    }
    for component in &line.pricing {
        let tier = component
            .tier_index
            .map_or_else(String::new, |index| format!("tier {}: ", index + 1));
        let mut text = format!(
            "{CONTINUATION_INDENT}{tier}{} x {}",
            format_quantity(component.quantity),
            currency.format_decimal(component.unit_price)
        );
        if !component.flat_fee.is_zero() {
            let _ = write!(
                text,
                " + {} fee",
                currency.format_decimal(component.flat_fee)
            );
        }
        let _ = write!(text, " = {}", currency.format_decimal(component.amount));
        let _ = writeln!(out, "{text}");
    }
}

fn push_total(out: &mut String, label: &str, amount: Money) {
    let indent = TEXT_WIDTH - TOTALS_LABEL_WIDTH - AMOUNT_WIDTH - 1;
    let _ = writeln!(
        out,
        "{:indent$}{label:<TOTALS_LABEL_WIDTH$} {:>AMOUNT_WIDTH$}",
        "",
        amount.to_string()
    );
}

/// Renders the whole invoice; see the module docs.
pub(crate) fn render_text(invoice: &Invoice) -> String {
    let currency = invoice.currency();
    let heavy = "=".repeat(TEXT_WIDTH);
    let light = "-".repeat(TEXT_WIDTH);
    let mut out = String::new();
    let title = match invoice.number() {
        Some(number) => format!("INVOICE {number}"),
        None => "INVOICE (draft, not numbered)".to_owned(),
    };
    let status = invoice.status().to_string().to_uppercase();
    let status_width = TEXT_WIDTH - title.chars().count();
    let _ = writeln!(out, "{title}{status:>status_width$}");
    let _ = writeln!(out, "Invoice id:  {}", invoice.id());
    let _ = writeln!(out, "Tenant:      {}", invoice.tenant());
    let _ = writeln!(
        out,
        "Period:      {} to {}",
        format_time(invoice.period_start_unix_ms()),
        format_time(invoice.period_end_unix_ms())
    );
    if let Some(issued_at_unix_ms) = invoice.issued_at_unix_ms() {
        let _ = writeln!(out, "Issued:      {}", format_time(issued_at_unix_ms));
    }
    let _ = writeln!(out, "Currency:    {currency}");
    let _ = writeln!(out, "{heavy}");
    push_row(&mut out, "Description", "Quantity", "Unit price", "Amount");
    let _ = writeln!(out, "{light}");
    for line in invoice.lines() {
        push_line(&mut out, line, currency);
    }
    let _ = writeln!(out, "{light}");
    push_total(&mut out, "Subtotal", invoice.subtotal());
    if !invoice.discount_total().is_zero() {
        push_total(&mut out, "Discounts", negated(invoice.discount_total()));
    }
    if !invoice.tax_total().is_zero() {
        push_total(&mut out, "Tax", invoice.tax_total());
    }
    if !invoice.credit_applied().is_zero() {
        push_total(
            &mut out,
            "Credit applied",
            negated(invoice.credit_applied()),
        );
    }
    push_total(&mut out, "Total", invoice.total());
    push_total(&mut out, "Amount due", invoice.amount_due());
    let _ = writeln!(out, "{heavy}");
    match invoice.status() {
        InvoiceStatus::Paid => {
            let paid_at = invoice
                .paid_at_unix_ms()
                .map_or_else(String::new, format_time);
            let reference = invoice.payment_reference().unwrap_or_default();
            let _ = writeln!(out, "Paid {paid_at}, reference {reference}");
        }
        InvoiceStatus::Void => {
            let voided_at = invoice
                .voided_at_unix_ms()
                .map_or_else(String::new, format_time);
            let reason = invoice.void_reason().unwrap_or_default();
            let _ = writeln!(out, "Voided {voided_at}: {reason}");
        }
        InvoiceStatus::Draft | InvoiceStatus::Finalized => {}
    }
    out
}

/// The display of a positive total shown as a deduction.
fn negated(amount: Money) -> Money {
    Money::new(amount.amount_minor.saturating_neg(), amount.currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn quantities_are_grouped_and_trimmed() {
        assert_eq!(format_quantity(dec!(150000)), "150,000");
        assert_eq!(format_quantity(dec!(1234567.500)), "1,234,567.5");
        assert_eq!(format_quantity(dec!(-1000)), "-1,000");
        assert_eq!(format_quantity(dec!(0)), "0");
    }

    #[test]
    fn wrap_breaks_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("abcdefgh", 3), vec!["abc", "def", "gh"]);
        assert_eq!(wrap("", 3), vec![""]);
    }
}
