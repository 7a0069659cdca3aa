//! What a failed call to the Kubernetes API server means for whoever Infra is answering. The API
//! server being down, restarting or overloaded is an outage: SCIM clients, browsers and the CLI get
//! `503 Service Unavailable` with `Retry-After` (which Okta and Entra ID treat as "retry later"),
//! never a `500` that looks like a bug or a `4xx` that says their request was wrong.

/// What clients are told to wait before retrying during an outage, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Whether `err` means the API server could not be used right now, rather than that it judged the
/// request. Connection failures (refused, reset, timed out) are outages, and so are 5xx and 429
/// answers; so are 401 and 403 to the operator's own ServiceAccount, which a restarting API server
/// answers while its authenticator and authorizer warm up (a lasting one is an RBAC mistake that
/// the log names, which the person retrying cannot fix either).
pub fn is_unavailable(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code >= 500 || matches!(s.code, 401 | 403 | 429),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status { code, message: message.into(), ..Status::failure(message, "") }))
    }

    #[test]
    fn outages_and_verdicts() {
        for code in [500, 502, 503, 504, 429, 401, 403] {
            assert!(is_unavailable(&api(code, "x")), "{code}");
        }
        for code in [400, 404, 409, 413, 422] {
            assert!(!is_unavailable(&api(code, "x")), "{code}");
        }
        assert!(is_unavailable(&kube::Error::Service("connection refused".into())));
    }
}
