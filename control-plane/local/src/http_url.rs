//! `http://host[:port][/path][?query]` as given on `up`'s command line (`--otlp-endpoint`,
//! `--logger-url`): the destinations local mode reaches through an Envoy cluster.

/// A parsed `http://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: Option<String>,
}

/// Parses `url`; the error is the reason, for the caller's message.
pub(crate) fn parse(url: &str) -> Result<HttpUrl, String> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| e.to_string())?;
    if parsed.scheme() != "http" {
        return Err(format!(
            "scheme {:?} is not supported, only http",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in the URL are not supported".into());
    }
    if parsed.fragment().is_some() {
        return Err("a fragment has no meaning here".into());
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err("no host".into()),
    };
    Ok(HttpUrl {
        host,
        port: parsed.port_or_known_default().unwrap_or(80),
        path: parsed.path().to_string(),
        query: parsed.query().map(str::to_string),
    })
}

/// `host:port`, with brackets around an IPv6 address.
pub(crate) fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_an_http_url_and_what_is_refused() {
        assert_eq!(
            parse("http://[::1]:4318/a?b=1").unwrap(),
            HttpUrl {
                host: "::1".into(),
                port: 4318,
                path: "/a".into(),
                query: Some("b=1".into())
            }
        );
        assert_eq!(parse("http://h").unwrap().port, 80);
        assert_eq!(authority("::1", 1), "[::1]:1");
        assert_eq!(authority("h", 1), "h:1");
        assert!(parse("http://h/#x").unwrap_err().contains("fragment"));
        assert!(parse("https://h").unwrap_err().contains("only http"));
        assert!(parse("http://u@h").unwrap_err().contains("credentials"));
        assert!(parse("h:1").unwrap_err().contains("not supported"));
    }
}
