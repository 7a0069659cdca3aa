//! Standard `metav1.Condition` bookkeeping, shared by every status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

pub const TRUE: &str = "True";
pub const FALSE: &str = "False";
pub const UNKNOWN: &str = "Unknown";

/// A condition's reason: one variant of a per-kind enum (see [`reasons!`]), so a reconciler matches
/// on variants and a typo is a compile error. `&'static str` is accepted for conditions that have
/// no enum yet.
pub trait Reason: Copy + std::fmt::Debug + PartialEq {
    fn as_str(self) -> &'static str;
}

impl Reason for &'static str {
    fn as_str(self) -> &'static str {
        self
    }
}

/// `as_str` for an enum whose variants are written under their own names.
macro_rules! variant_names {
    ($name:ident { $($variant:ident),* }) => {
        impl $name {
            /// The variant's name, as written into the status.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => stringify!($variant),)* }
            }
        }
    };
}
pub(crate) use variant_names;

/// Declares a reason enum whose variants are written into conditions under their own names.
macro_rules! reasons {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        $crate::api::conditions::variant_names!($name { $($variant),* });

        impl $crate::api::conditions::Reason for $name {
            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }
        }
    };
}
pub(crate) use reasons;

/// Declares a `status.phase` enum: serialized, in the CRD's schema (variant docs included) and
/// printed under its variants' own names.
macro_rules! phases {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        $(#[$meta])*
        #[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }

        $crate::api::conditions::variant_names!($name { $($variant),* });
    };
}
pub(crate) use phases;

/// The outcome of one check, before it becomes a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check<R = &'static str> {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: R,
    pub message: String,
}

impl<R: Reason> Check<R> {
    pub fn passed(type_: &'static str, reason: R, message: impl Into<String>) -> Self {
        Self { type_, status: TRUE, reason, message: message.into() }
    }
    pub fn failed(type_: &'static str, reason: R, message: impl Into<String>) -> Self {
        Self { type_, status: FALSE, reason, message: message.into() }
    }
    pub fn unknown(type_: &'static str, reason: R, message: impl Into<String>) -> Self {
        Self { type_, status: UNKNOWN, reason, message: message.into() }
    }
    pub fn is_true(&self) -> bool {
        self.status == TRUE
    }
}

/// Merges `check` into `conditions`, keeping `lastTransitionTime` when the status did not change
/// (so that `kubectl describe` shows when something actually flipped, not when it was last checked).
/// Returns true when the status changed, which is when an Event is worth recording.
pub fn set<R: Reason>(conditions: &mut Vec<Condition>, check: &Check<R>, generation: Option<i64>, now: Timestamp) -> bool {
    let existing = conditions.iter_mut().find(|c| c.type_ == check.type_);
    match existing {
        Some(c) => {
            let changed = c.status != check.status;
            if changed {
                c.last_transition_time = Time(now);
            }
            c.status = check.status.to_string();
            c.reason = check.reason.as_str().to_string();
            c.message = check.message.clone();
            c.observed_generation = generation;
            changed
        }
        None => {
            conditions.push(Condition {
                type_: check.type_.to_string(),
                status: check.status.to_string(),
                reason: check.reason.as_str().to_string(),
                message: check.message.clone(),
                observed_generation: generation,
                last_transition_time: Time(now),
            });
            true
        }
    }
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == TRUE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn new_condition_is_a_transition() {
        let mut conds = vec![];
        assert!(set(&mut conds, &Check::passed("Ready", "Ok", "fine"), Some(1), at(10)));
        assert_eq!(conds.len(), 1);
        assert_eq!(conds[0].status, "True");
        assert_eq!(conds[0].last_transition_time, Time(at(10)));
        assert_eq!(conds[0].observed_generation, Some(1));
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_message() {
        let mut conds = vec![];
        set(&mut conds, &Check::failed("Ready", "A", "first"), Some(1), at(10));
        let changed = set(&mut conds, &Check::failed("Ready", "B", "second"), Some(2), at(20));
        assert!(!changed);
        assert_eq!(conds[0].last_transition_time, Time(at(10)));
        assert_eq!(conds[0].reason, "B");
        assert_eq!(conds[0].message, "second");
        assert_eq!(conds[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let mut conds = vec![];
        set(&mut conds, &Check::failed("Ready", "A", "x"), Some(1), at(10));
        assert!(set(&mut conds, &Check::passed("Ready", "Ok", "y"), Some(1), at(30)));
        assert_eq!(conds[0].last_transition_time, Time(at(30)));
        assert!(is_true(&conds, "Ready"));
        assert!(!is_true(&conds, "Other"));
    }
}
