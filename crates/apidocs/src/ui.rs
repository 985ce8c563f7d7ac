//! Swagger UI: the page, and which files of the pinned `swagger-ui-dist` it serves.

/// The npm package version of `swagger-ui-dist` the page loads (pinned with its integrity
/// hash in `scripts/setup-apidocs.sh`, which installs it; no CDN).
pub const SWAGGER_UI_VERSION: &str = "5.35.0";

/// Where Seldon served Swagger UI, after the gateway prefix `/seldon/<ns>/<sdep>`.
pub const DOC_PATH: &str = "/api/v1.0/doc/";

/// The files of `swagger-ui-dist` the page needs; nothing else of the folder is served.
pub const SWAGGER_UI_ASSETS: &[&str] = &[
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "favicon-16x16.png",
    "favicon-32x32.png",
];

/// The `content-type` of an asset of [`SWAGGER_UI_ASSETS`]; `None` for any other name.
pub fn asset_content_type(name: &str) -> Option<&'static str> {
    if !SWAGGER_UI_ASSETS.contains(&name) {
        return None;
    }
    Some(match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        _ => "image/png",
    })
}

/// The page at `…/api/v1.0/doc/`: Swagger UI from the files beside it, loading
/// `openapi.json` beside it. Every URL is relative, so the page works behind any prefix.
pub fn index_html(title: &str) -> String {
    let title = escape_html(title);
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="swagger-ui.css">
  <link rel="icon" type="image/png" href="favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui-bundle.js"></script>
  <script src="swagger-ui-standalone-preset.js"></script>
  <script src="swagger-initializer.js"></script>
</body>
</html>
"#
    )
}

/// `swagger-initializer.js`: starts Swagger UI on `openapi.json` (a file, not inline script,
/// so a strict content security policy can be set on the page).
pub const INITIALIZER_JS: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    validatorUrl: null
  });
};
"##;

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_assets_are_served() {
        assert_eq!(
            asset_content_type("swagger-ui-bundle.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            asset_content_type("swagger-ui.css"),
            Some("text/css; charset=utf-8")
        );
        assert_eq!(asset_content_type("favicon-16x16.png"), Some("image/png"));
        for other in [
            "package.json",
            "../x",
            "index.html",
            "swagger-ui.js.map",
            "",
        ] {
            assert_eq!(asset_content_type(other), None, "{other}");
        }
    }

    #[test]
    fn the_page_loads_the_assets_relatively_and_escapes_its_title() {
        let page = index_html("ns/<x> & \"y\"");
        assert!(page.contains("<title>ns/&lt;x&gt; &amp; &quot;y&quot;</title>"));
        for asset in [
            "swagger-ui.css",
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
        ] {
            assert!(page.contains(&format!("\"{asset}\"")), "{asset}");
        }
        assert!(!page.contains("http"), "no absolute URL, no CDN");
        assert!(INITIALIZER_JS.contains("url: \"openapi.json\""));
        assert!(
            INITIALIZER_JS.contains("validatorUrl: null"),
            "no call to swagger.io's validator"
        );
    }
}
