//! The console's templates, compiled into the binary and rendered with
//! minijinja (already the e-mails' engine): every template is named
//! `*.html`, so every value is HTML-escaped unless a template says
//! otherwise, which only the server-drawn chart does.

use std::sync::LazyLock;

use minijinja::Environment;

use super::ConsoleError;

/// Every template, by name.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("error.html", include_str!("templates/error.html")),
    ("login.html", include_str!("templates/login.html")),
    ("overview.html", include_str!("templates/overview.html")),
    ("live.html", include_str!("templates/live.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("job.html", include_str!("templates/job.html")),
    ("orders.html", include_str!("templates/orders.html")),
    ("order.html", include_str!("templates/order.html")),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        env.add_template(name, source).expect("the built-in console templates are valid minijinja");
    }
    env
});

/// Renders template `name` with `values`.
pub fn render(name: &str, values: minijinja::Value) -> Result<String, ConsoleError> {
    ENVIRONMENT
        .get_template(name)
        .and_then(|template| template.render(values))
        .map_err(|e| ConsoleError::Internal(anyhow::anyhow!("rendering {name}: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_values_are_escaped() {
        for (name, _) in TEMPLATES {
            ENVIRONMENT.get_template(name).expect(name);
        }
        let html =
            render("error.html", minijinja::context! { status => 404, message => "<img src=x onerror=alert(1)>" })
                .expect("render");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }
}
