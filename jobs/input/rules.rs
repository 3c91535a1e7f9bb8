//! The row rules as data: their names, what breaks each, and its default policy. The config
//! reads these to check `[quality.policy]`; [`crate::input::quality`] applies them.

use serde::{Deserialize, Serialize};

/// What happens to the rows that break a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Stop the run before anything is written.
    Reject,
    /// Set the rows aside into `rejects`, and run on the others.
    Quarantine,
}

/// One row rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub name: &'static str,
    pub doc: &'static str,
    pub default: Policy,
}

/// Every rule, in the order a row is judged: a row breaking several counts under the first.
pub const RULES: &[Rule] = &[
    Rule {
        name: "null_id",
        doc: "a required id column (the key, or the customer an order belongs to) is null or empty",
        default: Policy::Reject,
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

/// The view of rows set aside, which `sql/quality/rejects.sql` publishes.
pub const REJECTS_VIEW: &str = "quality_rejects";

/// The rule of that name.
pub fn rule(name: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.name == name)
}
