//! Error messages with their causes, for places that show an error as one
//! line of text (status messages, `/config`).

/// `error: cause: cause …`: the error and every source below it.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("failed to watch")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_in_order() {
        let error = Outer(std::io::Error::other("connection refused"));
        assert_eq!(super::chain(&error), "failed to watch: connection refused");
    }
}
