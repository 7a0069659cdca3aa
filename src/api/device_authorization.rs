use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pending device login (`infra login --device`, RFC 8628), stored so that any server replica
/// can answer the CLI's polls and the approval page. Written by the server only; everything is in
/// `spec` (there is no status subresource) so that one merge patch with a resourceVersion
/// precondition moves it from state to state. It holds no secret: the user code is in the name
/// only as a keyed digest, the device code only as a SHA-256.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "infrahq.com",
    version = "v1alpha1",
    kind = "DeviceAuthorization",
    plural = "deviceauthorizations",
    shortname = "devauth",
    category = "infra",
    namespaced,
    doc = "A device login in flight: a machine without a browser asked to log in (infra login --device) and waits for a signed-in person to approve or deny it on the server's /device page. The name is a keyed digest of the user code; the device code is stored as a SHA-256. Deleted once expired.",
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".spec.state"}"#,
    printcolumn = r#"{"name":"User","type":"string","jsonPath":".spec.decidedBy.user"}"#,
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.decidedBy.provider"}"#,
    printcolumn = r#"{"name":"Address","type":"string","priority":1,"jsonPath":".spec.requester.address"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DeviceAuthorizationSpec {
    /// SHA-256 (hex) of the device code the CLI polls with.
    #[schemars(length(equal = 64))]
    pub device_code_hash: String,
    /// When both codes stop working.
    pub expires_at: Time,
    /// Seconds the CLI must wait between polls; each `slow_down` adds 5.
    #[schemars(range(min = 1, max = 600))]
    pub interval: u32,
    /// The last poll, for `slow_down`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll_time: Option<MicroTime>,
    /// The machine that asked, as the server saw it.
    pub requester: DeviceRequester,
    pub state: DeviceState,
    /// Who approved or denied it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<DeviceDecider>,
}

/// Where a device authorization is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum DeviceState {
    /// Waiting for a person to approve or deny it.
    Pending,
    /// Approved; the CLI's next poll receives a session.
    Approved,
    /// Denied; the CLI's polls are answered `access_denied`.
    Denied,
    /// Approved and the session handed out: the codes are used up.
    Redeemed,
}

/// The machine that asked. Shown on the approval page so the person can tell their own machine
/// from someone else's (RFC 8628 §5.4, remote phishing).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRequester {
    /// The client address the server saw (through `--trusted-proxy-hops` proxies).
    #[schemars(length(max = 64))]
    pub address: String,
    /// The host name the CLI sent (unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub hostname: Option<String>,
    /// The User-Agent the CLI sent (unverified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 200))]
    pub user_agent: Option<String>,
    pub requested_at: Time,
}

/// The signed-in person who approved or denied it, and the login session the new session copies
/// its provider binding from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDecider {
    pub user: String,
    pub provider: String,
    /// The User object and its UID: a User re-created under the same name gets nothing.
    pub user_object: String,
    #[serde(rename = "userUID")]
    pub user_uid: String,
    /// The issuer and token endpoint that vouched for the approving session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    pub decided_at: Time,
}

/// How long after its expiry the controller deletes an authorization the server has not: long
/// enough for a CLI polling at a grown interval to be told `expired_token` rather than
/// `invalid_grant`.
pub const SWEEP_GRACE: SignedDuration = SignedDuration::from_mins(5);

impl DeviceAuthorizationSpec {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        now >= self.expires_at.0
    }

    /// Whether the controller may delete it.
    pub fn is_sweepable(&self, now: Timestamp) -> bool {
        self.expires_at.0.checked_add(SWEEP_GRACE).is_ok_and(|t| now >= t)
    }

    /// Whether a poll at `now` comes sooner than the interval allows. A second of slack: the CLI
    /// waits exactly the interval, and requests do not all take equally long to arrive.
    pub fn polled_too_soon(&self, now: Timestamp) -> bool {
        let Some(last) = &self.last_poll_time else { return false };
        let allowed = SignedDuration::from_secs(i64::from(self.interval)) - SignedDuration::from_secs(1);
        now.duration_since(last.0) < allowed
    }
}

/// What the server does with a poll of the token endpoint (RFC 8628 §3.5). Pure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollAnswer {
    /// `expired_token`; the authorization is deleted.
    Expired,
    /// `slow_down`; the interval grows by 5 seconds.
    SlowDown,
    /// `authorization_pending`; the poll's time is recorded.
    Pending,
    /// `access_denied`.
    Denied,
    /// `invalid_grant`: the codes were used already.
    Used,
    /// Claim it (Approved to Redeemed) and hand out a session.
    Redeem,
}

impl DeviceAuthorizationSpec {
    pub fn on_poll(&self, now: Timestamp) -> PollAnswer {
        if self.is_expired(now) {
            return PollAnswer::Expired;
        }
        match self.state {
            DeviceState::Pending if self.polled_too_soon(now) => PollAnswer::SlowDown,
            DeviceState::Pending => PollAnswer::Pending,
            DeviceState::Denied => PollAnswer::Denied,
            DeviceState::Redeemed => PollAnswer::Used,
            DeviceState::Approved => PollAnswer::Redeem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn spec() -> DeviceAuthorizationSpec {
        DeviceAuthorizationSpec {
            device_code_hash: "0".repeat(64),
            expires_at: Time(at(600)),
            interval: 5,
            last_poll_time: None,
            requester: DeviceRequester { address: "203.0.113.7".into(), hostname: None, user_agent: None, requested_at: Time(at(0)) },
            state: DeviceState::Pending,
            decided_by: None,
        }
    }

    #[test]
    fn expiry_and_sweeping() {
        let s = spec();
        assert!(!s.is_expired(at(599)));
        assert!(s.is_expired(at(600)));
        assert!(!s.is_sweepable(at(600)));
        assert!(s.is_sweepable(at(600 + 300)));
    }

    #[test]
    fn polling_faster_than_the_interval_is_too_soon() {
        let mut s = spec();
        assert!(!s.polled_too_soon(at(1)), "the first poll is never too soon");
        s.last_poll_time = Some(MicroTime(at(10)));
        assert!(s.polled_too_soon(at(10)));
        assert!(s.polled_too_soon(at(13)));
        assert!(!s.polled_too_soon(at(14)), "a second of slack");
        assert!(!s.polled_too_soon(at(15)));
        s.interval = 10;
        assert!(s.polled_too_soon(at(15)), "after a slow_down the interval is longer");
        assert!(!s.polled_too_soon(at(19)));
    }

    #[test]
    fn states_serialize_as_their_names() {
        assert_eq!(serde_json::to_value(DeviceState::Pending).unwrap(), "Pending");
        let v = serde_json::to_value(spec()).unwrap();
        assert_eq!(v["state"], "Pending");
        assert_eq!(v["requester"]["address"], "203.0.113.7");
        assert!(v.get("decidedBy").is_none());
    }

    #[test]
    fn poll_answers() {
        let mut s = spec();
        assert_eq!(s.on_poll(at(1)), PollAnswer::Pending);
        s.last_poll_time = Some(MicroTime(at(1)));
        assert_eq!(s.on_poll(at(2)), PollAnswer::SlowDown);
        assert_eq!(s.on_poll(at(6)), PollAnswer::Pending);
        s.state = DeviceState::Approved;
        assert_eq!(s.on_poll(at(2)), PollAnswer::Redeem, "an approval is handed out even to an eager poll");
        s.state = DeviceState::Redeemed;
        assert_eq!(s.on_poll(at(10)), PollAnswer::Used);
        s.state = DeviceState::Denied;
        assert_eq!(s.on_poll(at(10)), PollAnswer::Denied);
        for state in [DeviceState::Pending, DeviceState::Approved, DeviceState::Denied, DeviceState::Redeemed] {
            s.state = state;
            assert_eq!(s.on_poll(at(600)), PollAnswer::Expired, "{state:?}");
        }
    }
}
