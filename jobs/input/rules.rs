//! The row rules as data: their names, what breaks each, and its default policy;
//! [`crate::input::quality`] applies them under the policies `[quality.policy]` sets.

use crate::config::{Policy, QualityConfig};

/// One row rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub name: &'static str,
    pub doc: &'static str,
    pub default: Policy,
}

/// Every rule, in the order a row is judged: a row breaking several counts under the first.
pub(crate) const RULES: &[Rule] = &[
    Rule {
        name: "null_id",
        doc: "a required id column (the key, or the customer an order belongs to) is null or empty",
        default: Policy::Reject,
    },
    Rule {
        name: "null_event_time",
        doc: "the row's event time (order_ts, signup_ts, session_ts, ...) is null: it cannot be placed before or after any run date",
        default: Policy::Quarantine,
    },
    Rule {
        name: "out_of_range_time",
        doc: "the row's event time is before quality.earliest (none by default) or on or after quality.latest (by default the day after tomorrow, UTC)",
        default: Policy::Quarantine,
    },
    Rule {
        name: "bad_amount",
        doc: "a money column is negative, NaN or infinite, or null where required",
        default: Policy::Quarantine,
    },
    Rule {
        name: "null_status",
        doc: "orders.status is null in a file that has the column (a file without the column reads completed, as the contract says)",
        default: Policy::Quarantine,
    },
    Rule {
        name: "unknown_status",
        doc: "orders.status is not completed, cancelled or refunded",
        default: Policy::Reject,
    },
    Rule {
        name: "duplicate_key",
        doc: "the table's key appears more than once; the first copy (by every column) is kept",
        default: Policy::Quarantine,
    },
    Rule {
        name: "orphan_customer",
        doc: "orders.customer_id is not in customers",
        default: Policy::Quarantine,
    },
    Rule {
        name: "before_signup",
        doc: "orders.order_ts is before the customer's signup_ts",
        default: Policy::Quarantine,
    },
    Rule {
        name: "orphan_order",
        doc: "shipments.order_id is not in orders",
        default: Policy::Quarantine,
    },
];

/// Columns with a text default whose null values are a row rule, not the default: only a file
/// that lacks the column reads the default. A null order status would otherwise be completed
/// revenue.
pub(crate) const NULL_IS_A_RULE: &[(&str, &str)] = &[("orders", "status")];

/// Whether `table.column`'s null values are judged by a row rule.
pub(crate) fn null_is_a_rule(table: &str, column: &str) -> bool {
    NULL_IS_A_RULE.contains(&(table, column))
}

/// The view of rows set aside, which `sql/quality/rejects.sql` publishes.
pub(crate) const REJECTS_VIEW: &str = "quality_rejects";

/// The rule of that name.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}

/// The policy a run applies to a rule: the config's, else the rule's default.
pub fn policy(quality: &QualityConfig, rule_name: &str) -> Policy {
    quality
        .policy
        .get(rule_name)
        .copied()
        .or_else(|| rule(rule_name).map(|r| r.default))
        .unwrap_or(Policy::Reject)
}

/// Checks that `[quality.policy]` names only rules that exist.
pub(crate) fn check_policies(quality: &QualityConfig) -> Result<(), String> {
    match quality.policy.keys().find(|name| rule(name).is_none()) {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "quality.policy.{unknown}: no such rule; the rules are {}",
            RULES.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
        )),
    }
}
